// A small strict JSON (RFC 8259) parser into a DOM, and a writer for tools.
//
// Used to read Hugging Face tokenizer.json / tokenizer_config.json (up to ~10 MB, 150k-entry
// objects and arrays) and to print machine-readable tool output. Parsing is single-pass, never
// throws (only std::bad_alloc can escape, as everywhere), and reports errors as slm::Error naming
// the byte offset, line and column.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "slm/status.hpp"

namespace slm::json {

enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };
const char* kind_name(Kind k);  // "null", "bool", "number", "string", "array", "object"

struct Member;

// One JSON value. Accessors of the wrong kind return a neutral value (false, 0, "", empty span,
// nullptr) rather than failing, so callers check kind() (or use the get_* helpers that return an
// Error naming the key) when the input is untrusted.
class Value {
 public:
  Value() = default;  // null

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }
  // A number whose exact value is an int64: written without fraction or exponent and in range,
  // or written otherwise (1.0, 1e3) but integral and exactly representable (|v| <= 2^53).
  bool is_integer() const { return kind_ == Kind::Number && exact_int_; }

  bool as_bool() const { return kind_ == Kind::Bool && bool_; }
  double as_double() const { return kind_ == Kind::Number ? number_ : 0.0; }
  // The exact integer when is_integer(); otherwise 0.
  int64_t as_int() const { return is_integer() ? int_ : 0; }
  std::string_view as_string() const {
    return kind_ == Kind::String ? std::string_view(string_) : std::string_view();
  }

  // Arrays: the elements. Objects: the members in file order (duplicate keys are kept).
  std::span<const Value> items() const { return items_; }
  std::span<const Member> members() const;  // (defined below Member, which must be complete)
  // Element count of an array or object; 0 otherwise.
  size_t size() const;
  // Array element i, or nullptr when out of range or not an array.
  const Value* at(size_t i) const;
  // First member named `key` (linear scan: index large objects yourself), or nullptr.
  const Value* find(std::string_view key) const;

  // Builders, for tests and tools that assemble a document.
  // (Defined out of line: Value's destructor needs Member complete, which clang checks here.)
  static Value null();
  static Value boolean(bool b);
  static Value number(double d);
  static Value integer(int64_t i);
  static Value string(std::string s);
  static Value array();  // empty
  static Value array(std::vector<Value> items);
  static Value object();  // empty
  static Value object(std::vector<Member> members);
  // Appends to an array / object (no effect on other kinds).
  void push_back(Value v);
  void add_member(std::string key, Value v);

 private:
  friend class Parser;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool exact_int_ = false;
  int64_t int_ = 0;
  double number_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::vector<Member> members_;
};

struct Member {
  std::string key;
  Value value;
};

inline std::span<const Member> Value::members() const { return members_; }

// Typed lookups on an object that return an Error naming the key and the kind found.
Expected<std::string_view> get_string(const Value& object, std::string_view key);
Expected<int64_t> get_int(const Value& object, std::string_view key);
Expected<double> get_number(const Value& object, std::string_view key);
Expected<bool> get_bool(const Value& object, std::string_view key);
// The member `key` of kind `kind` (Array or Object usually).
Expected<const Value*> get(const Value& object, std::string_view key, Kind kind);

// ============================================================================================
// Parsing
// ============================================================================================

struct ParseOptions {
  size_t max_depth = 256;           // nesting of arrays/objects (bounds the recursion)
  size_t max_bytes = size_t{1} << 30;  // refuse larger inputs outright (1 GiB)
};

// Parses exactly one JSON text (leading/trailing whitespace allowed, nothing else). Rejected:
// comments, trailing commas, single quotes, NaN/Infinity, leading zeros, control characters in
// strings, invalid UTF-8, invalid escapes, lone surrogates. A UTF-8 byte-order mark is rejected
// too (RFC 8259 section 8.1 lets a parser ignore it; we report it rather than guess).
// Error messages look like: "JSON: byte 1234 (line 5, column 7): expected ':' after object key".
Expected<Value> parse(std::string_view text, const ParseOptions& options = {});
// Maps the file read-only and parses it; errors are prefixed with the path.
Expected<Value> parse_file(const std::string& path, const ParseOptions& options = {});

// ============================================================================================
// Writing
// ============================================================================================

// The body of a JSON string literal for `s` (no surrounding quotes): ", \ and control characters
// escaped; valid UTF-8 passed through; each byte of invalid UTF-8 becomes U+FFFD so the output
// is always valid JSON.
std::string escape(std::string_view s);
// escape(s) in double quotes.
std::string quote(std::string_view s);
// Serializes a value. indent < 0: compact on one line; otherwise pretty with `indent` spaces.
// Non-finite numbers (only possible through builders) are written as null.
std::string to_string(const Value& v, int indent = -1);

// A streaming writer with automatic commas, for tools that print large documents without
// building a DOM. Usage: w.begin_object(); w.key("n"); w.value(3); w.end_object(); w.str().
// Misuse (a value where a key is due, unbalanced ends) is the caller's bug; the output is then
// not valid JSON, nothing crashes.
class Writer {
 public:
  explicit Writer(int indent = -1) : indent_(indent) {}
  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  void key(std::string_view k);
  void value(std::string_view s);
  void value(const char* s) { value(std::string_view(s)); }
  void value(const std::string& s) { value(std::string_view(s)); }
  void value(bool b);
  void value(double d);  // non-finite -> null; integral values print without exponent noise
  void value(int64_t i);
  void value(uint64_t u);
  void value(int i) { value(static_cast<int64_t>(i)); }
  void value(unsigned u) { value(static_cast<uint64_t>(u)); }
  void null();
  void value(const Value& v);  // a whole DOM value
  // A raw, already-valid JSON fragment as the next value.
  void raw(std::string_view json);

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void before_value();
  void newline();
  std::string out_;
  int indent_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace slm::json
