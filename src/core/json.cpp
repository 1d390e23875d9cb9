// Strict RFC 8259 JSON: a recursive-descent parser into slm::json::Value, and writers.
#include "slm/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "slm/mapped_file.hpp"

namespace slm::json {

// ============================================================================================
// Value
// ============================================================================================

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Null: return "null";
    case Kind::Bool: return "bool";
    case Kind::Number: return "number";
    case Kind::String: return "string";
    case Kind::Array: return "array";
    case Kind::Object: return "object";
  }
  return "?";
}

size_t Value::size() const {
  if (kind_ == Kind::Array) return items_.size();
  if (kind_ == Kind::Object) return members_.size();
  return 0;
}

const Value* Value::at(size_t i) const {
  if (kind_ != Kind::Array || i >= items_.size()) return nullptr;
  return &items_[i];
}

const Value* Value::find(std::string_view key) const {
  if (kind_ != Kind::Object) return nullptr;
  for (const Member& m : members_) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

// 2^53: every integer of at most this magnitude is exact in a double.
static constexpr double kMaxExactDouble = 9007199254740992.0;

Value Value::null() { return Value(); }
Value Value::array() { return array(std::vector<Value>()); }
Value Value::object() { return object(std::vector<Member>()); }

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.bool_ = b;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::Number;
  v.number_ = d;
  if (std::isfinite(d) && std::fabs(d) <= kMaxExactDouble && d == std::trunc(d)) {
    v.exact_int_ = true;
    v.int_ = static_cast<int64_t>(d);
  }
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Number;
  v.number_ = static_cast<double>(i);
  v.exact_int_ = true;
  v.int_ = i;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.string_ = std::move(s);
  return v;
}

Value Value::array(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::Array;
  v.items_ = std::move(items);
  return v;
}

Value Value::object(std::vector<Member> members) {
  Value v;
  v.kind_ = Kind::Object;
  v.members_ = std::move(members);
  return v;
}

void Value::push_back(Value v) {
  if (kind_ == Kind::Array) items_.push_back(std::move(v));
}

void Value::add_member(std::string key, Value v) {
  if (kind_ == Kind::Object) members_.push_back(Member{std::move(key), std::move(v)});
}

// ============================================================================================
// Typed lookups
// ============================================================================================

static Expected<const Value*> member_of_kind(const Value& object, std::string_view key,
                                             Kind kind) {
  if (!object.is_object()) {
    return errorf("JSON: looking up \"%.*s\" in a %s, not an object", static_cast<int>(key.size()),
                  key.data(), kind_name(object.kind()));
  }
  const Value* v = object.find(key);
  if (v == nullptr) {
    return errorf("JSON: missing key \"%.*s\"", static_cast<int>(key.size()), key.data());
  }
  if (v->kind() != kind) {
    return errorf("JSON: key \"%.*s\" is a %s, expected a %s", static_cast<int>(key.size()),
                  key.data(), kind_name(v->kind()), kind_name(kind));
  }
  return v;
}

Expected<const Value*> get(const Value& object, std::string_view key, Kind kind) {
  return member_of_kind(object, key, kind);
}

Expected<std::string_view> get_string(const Value& object, std::string_view key) {
  auto v = member_of_kind(object, key, Kind::String);
  if (!v) return std::move(v).error();
  return (*v)->as_string();
}

Expected<int64_t> get_int(const Value& object, std::string_view key) {
  auto v = member_of_kind(object, key, Kind::Number);
  if (!v) return std::move(v).error();
  if (!(*v)->is_integer()) {
    return errorf("JSON: key \"%.*s\" is %g, expected an integer", static_cast<int>(key.size()),
                  key.data(), (*v)->as_double());
  }
  return (*v)->as_int();
}

Expected<double> get_number(const Value& object, std::string_view key) {
  auto v = member_of_kind(object, key, Kind::Number);
  if (!v) return std::move(v).error();
  return (*v)->as_double();
}

Expected<bool> get_bool(const Value& object, std::string_view key) {
  auto v = member_of_kind(object, key, Kind::Bool);
  if (!v) return std::move(v).error();
  return (*v)->as_bool();
}

// ============================================================================================
// UTF-8
// ============================================================================================

// Length of the valid UTF-8 sequence starting at p (at most `avail` bytes), or 0 when invalid:
// overlong forms, UTF-16 surrogates (U+D800..DFFF) and code points above U+10FFFF are invalid
// (RFC 3629 section 4 table).
static size_t utf8_sequence_length(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  auto cont = [&](size_t k) { return k < avail && (p[k] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 2) return 0;
    const unsigned char c1 = p[1];
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // surrogate
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 2) return 0;
    const unsigned char c1 = p[1];
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // above U+10FFFF
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;  // 0x80..0xC1 (continuation / overlong lead) and 0xF5..0xFF
}

static void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// ============================================================================================
// Parser
// ============================================================================================

class Parser {
 public:
  Parser(std::string_view text, const ParseOptions& options)
      : p_(reinterpret_cast<const unsigned char*>(text.data())),
        begin_(p_),
        end_(p_ + text.size()),
        options_(options) {}

  Expected<Value> run() {
    Value root;
    skip_ws();
    if (p_ + 3 <= end_ && p_[0] == 0xEF && p_[1] == 0xBB && p_[2] == 0xBF) {
      return fail("UTF-8 byte-order mark is not allowed");
    }
    if (!parse_value(root, 0)) return std::move(error_);
    skip_ws();
    if (p_ != end_) return fail("unexpected data after the JSON value");
    return root;
  }

 private:
  // Records an error at the current (or a given) position; the bool forms return false so the
  // recursive functions read `return failed(...)`.
  Error fail(const char* what) { return fail_at(p_, what); }
  Error fail_at(const unsigned char* where, const char* what) {
    size_t line = 1, column = 1;
    for (const unsigned char* q = begin_; q < where; ++q) {
      if (*q == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    error_ = errorf("JSON: byte %zu (line %zu, column %zu): %s",
                    static_cast<size_t>(where - begin_), line, column, what);
    return error_;
  }
  bool failed(const char* what) {
    fail(what);
    return false;
  }
  bool failed_at(const unsigned char* where, const char* what) {
    fail_at(where, what);
    return false;
  }

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool literal(const char* word, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) {
      return failed("invalid literal (expected true, false or null)");
    }
    p_ += n;
    return true;
  }

  bool parse_value(Value& out, size_t depth) {
    if (p_ == end_) return failed("unexpected end of input, expected a value");
    switch (*p_) {
      case '{': return parse_object(out, depth + 1);
      case '[': return parse_array(out, depth + 1);
      case '"':
        out.kind_ = Kind::String;
        return parse_string(out.string_);
      case 't':
        out = Value::boolean(true);
        return literal("true", 4);
      case 'f':
        out = Value::boolean(false);
        return literal("false", 5);
      case 'n':
        out = Value();
        return literal("null", 4);
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return parse_number(out);
        return failed("unexpected character, expected a value");
    }
  }

  bool parse_object(Value& out, size_t depth) {
    if (depth > options_.max_depth) return failed("nesting deeper than the depth limit");
    out.kind_ = Kind::Object;
    ++p_;  // '{'
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (p_ == end_ || *p_ != '"') return failed("expected a string key in object");
      Member& m = out.members_.emplace_back();
      if (!parse_string(m.key)) return false;
      skip_ws();
      if (p_ == end_ || *p_ != ':') return failed("expected ':' after object key");
      ++p_;
      skip_ws();
      if (!parse_value(m.value, depth)) return false;
      skip_ws();
      if (p_ == end_) return failed("unexpected end of input in object, expected ',' or '}'");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      return failed("expected ',' or '}' in object");
    }
  }

  bool parse_array(Value& out, size_t depth) {
    if (depth > options_.max_depth) return failed("nesting deeper than the depth limit");
    out.kind_ = Kind::Array;
    ++p_;  // '['
    skip_ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      skip_ws();
      Value& item = out.items_.emplace_back();
      if (!parse_value(item, depth)) return false;
      skip_ws();
      if (p_ == end_) return failed("unexpected end of input in array, expected ',' or ']'");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      return failed("expected ',' or ']' in array");
    }
  }

  // Four hex digits at p_ (advanced past them) into *cp.
  bool hex4(uint32_t* cp) {
    if (end_ - p_ < 4) return failed("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = p_[k];
      uint32_t d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return failed("invalid hex digit in \\u escape");
      v = v * 16 + d;
    }
    p_ += 4;
    *cp = v;
    return true;
  }

  // A string literal at p_ (the opening quote) into out. Runs of plain bytes are appended in one
  // go, so a long string costs one copy.
  bool parse_string(std::string& out) {
    const unsigned char* start = p_;
    ++p_;  // opening quote
    for (;;) {
      const unsigned char* run = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\' && *p_ >= 0x20 && *p_ < 0x80) ++p_;
      out.append(reinterpret_cast<const char*>(run), static_cast<size_t>(p_ - run));
      if (p_ == end_) return failed_at(start, "unterminated string");
      const unsigned char c = *p_;
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return failed("control character in string (must be escaped)");
      if (c >= 0x80) {
        const size_t n = utf8_sequence_length(p_, static_cast<size_t>(end_ - p_));
        if (n == 0) return failed("invalid UTF-8 in string");
        out.append(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        continue;
      }
      // Backslash escape.
      const unsigned char* esc = p_;
      ++p_;
      if (p_ == end_) return failed_at(start, "unterminated string");
      const unsigned char e = *p_++;
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return failed_at(esc, "lone low surrogate in \\u escape");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by \u and a low surrogate (RFC 8259 section 7).
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
              return failed_at(esc, "lone high surrogate in \\u escape");
            }
            p_ += 2;
            uint32_t lo = 0;
            if (!hex4(&lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) {
              return failed_at(esc, "high surrogate not followed by a low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          return failed_at(esc, "invalid escape in string");
      }
    }
  }

  // RFC 8259 section 6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool parse_number(Value& out) {
    const unsigned char* start = p_;
    auto digits = [&] {
      const unsigned char* s = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      return static_cast<size_t>(p_ - s);
    };
    if (*p_ == '-') ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return failed_at(start, "invalid number");
    if (*p_ == '0') {
      ++p_;
      if (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        return failed_at(start, "invalid number (leading zero)");
      }
    } else {
      digits();
    }
    bool integral_syntax = true;
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      integral_syntax = false;
      if (digits() == 0) return failed_at(start, "invalid number (no digits after '.')");
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      integral_syntax = false;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (digits() == 0) return failed_at(start, "invalid number (no digits in exponent)");
    }
    const char* first = reinterpret_cast<const char*>(start);
    const char* last = reinterpret_cast<const char*>(p_);
    double d = 0;
    const auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow to infinity is not representable; underflow to zero is harmless.
      // A non-zero mantissa overflowed unless the exponent is negative.
      bool nonzero = false;
      for (const char* q = first; q < last && *q != 'e' && *q != 'E'; ++q) {
        if (*q >= '1' && *q <= '9') nonzero = true;
      }
      const char* e = first;
      while (e < last && *e != 'e' && *e != 'E') ++e;
      const bool negative_exponent = e + 1 < last && e[1] == '-';
      if (nonzero && !negative_exponent) return failed_at(start, "number out of range");
      d = 0;
    } else if (r.ec != std::errc() || r.ptr != last) {
      return failed_at(start, "invalid number");
    }
    out = Value::number(d);
    if (integral_syntax) {
      int64_t i = 0;
      const auto ri = std::from_chars(first, last, i);
      if (ri.ec == std::errc() && ri.ptr == last) {
        out.exact_int_ = true;
        out.int_ = i;
      } else {
        out.exact_int_ = false;  // beyond int64: keep only the double
      }
    }
    return true;
  }

  const unsigned char* p_;
  const unsigned char* begin_;
  const unsigned char* end_;
  const ParseOptions& options_;
  Error error_;
};

Expected<Value> parse(std::string_view text, const ParseOptions& options) {
  if (text.size() > options.max_bytes) {
    return errorf("JSON: input of %zu bytes exceeds the limit of %zu bytes", text.size(),
                  options.max_bytes);
  }
  return Parser(text, options).run();
}

Expected<Value> parse_file(const std::string& path, const ParseOptions& options) {
  auto map = MappedFile::open(path);
  if (!map) return std::move(map).error();
  std::string_view text(reinterpret_cast<const char*>(map->data()), map->size());
  auto v = parse(text, options);
  if (!v) return errorf("%s: %s", path.c_str(), v.error().message.c_str());
  return v;
}

// ============================================================================================
// Writing
// ============================================================================================

static void append_escaped(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char* run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') ++p;
    out.append(reinterpret_cast<const char*>(run), static_cast<size_t>(p - run));
    if (p == end) break;
    const unsigned char c = *p;
    if (c >= 0x80) {
      const size_t n = utf8_sequence_length(p, static_cast<size_t>(end - p));
      if (n == 0) {
        out.append("\xEF\xBF\xBD");  // U+FFFD for one invalid byte
        ++p;
      } else {
        out.append(reinterpret_cast<const char*>(p), n);
        p += n;
      }
      continue;
    }
    ++p;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
}

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_escaped(out, s);
  return out;
}

std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  append_escaped(out, s);
  out.push_back('"');
  return out;
}

// Shortest text that reads back as the same double (std::to_chars round-trips).
static void append_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out.append("null");
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void Writer::newline() {
  if (indent_ < 0) return;
  out_.push_back('\n');
  out_.append(first_.size() * static_cast<size_t>(indent_), ' ');
}

void Writer::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
    newline();
  }
}

void Writer::begin_object() {
  before_value();
  out_.push_back('{');
  first_.push_back(true);
}

void Writer::end_object() {
  const bool empty = first_.empty() || first_.back();
  if (!first_.empty()) first_.pop_back();
  if (!empty) newline();
  out_.push_back('}');
}

void Writer::begin_array() {
  before_value();
  out_.push_back('[');
  first_.push_back(true);
}

void Writer::end_array() {
  const bool empty = first_.empty() || first_.back();
  if (!first_.empty()) first_.pop_back();
  if (!empty) newline();
  out_.push_back(']');
}

void Writer::key(std::string_view k) {
  before_value();
  out_.push_back('"');
  append_escaped(out_, k);
  out_.append(indent_ < 0 ? "\":" : "\": ");
  after_key_ = true;
}

void Writer::value(std::string_view s) {
  before_value();
  out_.push_back('"');
  append_escaped(out_, s);
  out_.push_back('"');
}

void Writer::value(bool b) {
  before_value();
  out_.append(b ? "true" : "false");
}

void Writer::value(double d) {
  before_value();
  append_double(out_, d);
}

void Writer::value(int64_t i) {
  before_value();
  out_.append(std::to_string(i));
}

void Writer::value(uint64_t u) {
  before_value();
  out_.append(std::to_string(u));
}

void Writer::null() {
  before_value();
  out_.append("null");
}

void Writer::raw(std::string_view json) {
  before_value();
  out_.append(json);
}

void Writer::value(const Value& v) {
  switch (v.kind()) {
    case Kind::Null: null(); break;
    case Kind::Bool: value(v.as_bool()); break;
    case Kind::Number:
      if (v.is_integer()) value(v.as_int());
      else value(v.as_double());
      break;
    case Kind::String: value(v.as_string()); break;
    case Kind::Array:
      begin_array();
      for (const Value& item : v.items()) value(item);
      end_array();
      break;
    case Kind::Object:
      begin_object();
      for (const Member& m : v.members()) {
        key(m.key);
        value(m.value);
      }
      end_object();
      break;
  }
}

std::string to_string(const Value& v, int indent) {
  Writer w(indent);
  w.value(v);
  return w.take();
}

}  // namespace slm::json
