// GGUF writer -> reader round trips, typed accessors, and the real files in ../shared/data.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "slm/gguf.hpp"

using namespace slm::gguf;
using slm::DType;

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// Deterministic bytes for tensor data (a different pattern per seed).
std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

size_t tensor_bytes(DType t, std::initializer_list<int64_t> shape) {
  int64_t rows = 1;
  for (auto it = shape.begin() + 1; it != shape.end(); ++it) rows *= *it;
  return slm::row_bytes(t, *shape.begin()).value() * static_cast<size_t>(rows);
}

template <class T>
std::vector<uint8_t> raw_bytes(std::initializer_list<T> items) {
  std::vector<uint8_t> out(items.size() * sizeof(T));
  std::memcpy(out.data(), items.begin(), out.size());
  return out;
}

}  // namespace

// ============================================================================================
// Metadata round trip
// ============================================================================================

TEST_CASE("every value type round-trips") {
  Writer w;
  w.add_uint8("u8", 255);
  w.add_int8("i8", -128);
  w.add_uint16("u16", 65535);
  w.add_int16("i16", -32768);
  w.add_uint32("u32", 4294967295u);
  w.add_int32("i32", std::numeric_limits<int32_t>::min());
  w.add_uint64("u64", std::numeric_limits<uint64_t>::max());
  w.add_int64("i64", std::numeric_limits<int64_t>::min());
  w.add_float32("f32", 1e-5f);
  w.add_float64("f64", 3.141592653589793);
  w.add_bool("yes", true);
  w.add_bool("no", false);
  w.add_string("s", std::string_view("nul\0inside", 10));
  w.add_string("empty", "");
  const std::vector<std::string> strs = {"<unk>", "", "\xC4\xA0the", "a b"};
  w.add_string_array("strs", strs);
  const std::vector<std::string_view> views = {"x", "yz"};
  w.add_string_array("views", views);
  w.add_string_array("no_strings", std::span<const std::string>());
  const std::vector<int32_t> i32s = {-1, 0, 2147483647};
  w.add_int32_array("i32s", i32s);
  const std::vector<uint32_t> u32s = {7, 8};
  w.add_uint32_array("u32s", u32s);
  const std::vector<float> f32s = {0.5f, -2.25f, 1e30f};
  w.add_float32_array("f32s", f32s);
  const auto u8s = raw_bytes<uint8_t>({1, 2, 255});
  w.add_array_raw("u8s", ValueType::UINT8, u8s.data(), 3);
  const auto i8s = raw_bytes<int8_t>({-1, 5});
  w.add_array_raw("i8s", ValueType::INT8, i8s.data(), 2);
  const auto u16s = raw_bytes<uint16_t>({65535});
  w.add_array_raw("u16s", ValueType::UINT16, u16s.data(), 1);
  const auto i16s = raw_bytes<int16_t>({-300, 300});
  w.add_array_raw("i16s", ValueType::INT16, i16s.data(), 2);
  const auto u64s = raw_bytes<uint64_t>({1ull << 40});
  w.add_array_raw("u64s", ValueType::UINT64, u64s.data(), 1);
  const auto i64s = raw_bytes<int64_t>({-(1ll << 40), 3});
  w.add_array_raw("i64s", ValueType::INT64, i64s.data(), 2);
  const auto f64s = raw_bytes<double>({0.1, -0.2});
  w.add_array_raw("f64s", ValueType::FLOAT64, f64s.data(), 2);
  const auto bools = raw_bytes<uint8_t>({1, 0, 1});
  w.add_array_raw("bools", ValueType::BOOL, bools.data(), 3);
  w.add_array_raw("no_u32", ValueType::UINT32, nullptr, 0);

  auto buf = w.write_buffer();
  REQUIRE(buf.ok());
  auto f = File::from_buffer(buf->data(), buf->size());
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  CHECK(f->version() == 3);
  CHECK(f->alignment() == 32);
  CHECK(f->tensors().empty());
  CHECK(f->metadata().size() == 29);
  CHECK(f->metadata()[0].key == "u8");  // order kept
  CHECK(f->metadata()[0].offset == 24);  // right after the header

  CHECK(f->get_uint("u8").value() == 255);
  CHECK(f->get_int("i8").value() == -128);
  CHECK(f->get_uint("u16").value() == 65535);
  CHECK(f->get_int("i16").value() == -32768);
  CHECK(f->get_uint("u32").value() == 4294967295u);
  CHECK(f->get_int("i32").value() == std::numeric_limits<int32_t>::min());
  CHECK(f->get_uint("u64").value() == std::numeric_limits<uint64_t>::max());
  CHECK(f->get_int("i64").value() == std::numeric_limits<int64_t>::min());
  CHECK(f->get_float("f32").value() == static_cast<double>(1e-5f));
  CHECK(f->get_float("f64").value() == 3.141592653589793);
  CHECK(f->get_bool("yes").value());
  CHECK_FALSE(f->get_bool("no").value());
  CHECK(f->get_string("s").value() == std::string_view("nul\0inside", 10));
  CHECK(f->get_string("empty").value().empty());
  auto sa = f->get_string_array("strs");
  REQUIRE(sa.ok());
  REQUIRE(sa->size() == 4);
  CHECK((*sa)[0] == "<unk>");
  CHECK((*sa)[1].empty());
  CHECK((*sa)[2] == "\xC4\xA0the");
  CHECK(f->get_string_array("views")->size() == 2);
  CHECK(f->get_string_array("no_strings")->empty());
  CHECK(f->get_int_array("i32s").value() == std::vector<int64_t>{-1, 0, 2147483647});
  CHECK(f->get_int_array("u32s").value() == std::vector<int64_t>{7, 8});
  CHECK(f->get_float_array("f32s").value() == std::vector<double>{0.5, -2.25, double(1e30f)});
  CHECK(f->get_int_array("u8s").value() == std::vector<int64_t>{1, 2, 255});
  CHECK(f->get_int_array("i8s").value() == std::vector<int64_t>{-1, 5});
  CHECK(f->get_int_array("u16s").value() == std::vector<int64_t>{65535});
  CHECK(f->get_int_array("i16s").value() == std::vector<int64_t>{-300, 300});
  CHECK(f->get_int_array("u64s").value() == std::vector<int64_t>{1ll << 40});
  CHECK(f->get_int_array("i64s").value() == std::vector<int64_t>{-(1ll << 40), 3});
  CHECK(f->get_float_array("f64s").value() == std::vector<double>{0.1, -0.2});
  CHECK(f->get_float_array("i16s").value() == std::vector<double>{-300, 300});  // ints widen
  const Value* bv = f->find("bools");
  REQUIRE(bv != nullptr);
  CHECK(bv->elem_type == ValueType::BOOL);
  CHECK(bv->count == 3);
  CHECK(bv->integer_at(0) == 1);
  CHECK(bv->integer_at(1) == 0);
  CHECK(bv->integer_at(3) == 0);  // out of range: 0, no crash
  CHECK(f->get_int_array("no_u32")->empty());
  // integer_at on floats truncates and saturates (a raw cast would be undefined behaviour).
  const Value* fv = f->find("f32s");
  REQUIRE(fv != nullptr);
  CHECK(fv->integer_at(0) == 0);
  CHECK(fv->integer_at(1) == -2);
  CHECK(fv->integer_at(2) == std::numeric_limits<int64_t>::max());
  CHECK(fv->number_at(7) == 0.0);
  CHECK(f->find("strs")->number_at(0) == 0.0);  // not a scalar array: 0, no crash
  CHECK(f->find("absent") == nullptr);
}

TEST_CASE("typed accessors name the key and the mismatch") {
  Writer w;
  w.add_int32("neg", -3);
  w.add_uint64("big", std::numeric_limits<uint64_t>::max());
  w.add_string("name", "x");
  w.add_float32("eps", 1e-6f);
  const std::vector<std::string> strs = {"a"};
  w.add_string_array("strs", strs);
  const auto big = raw_bytes<uint64_t>({1ull << 63});
  w.add_array_raw("bigs", ValueType::UINT64, big.data(), 1);
  auto buf = w.write_buffer();
  REQUIRE(buf.ok());
  auto f = File::from_buffer(buf->data(), buf->size());
  REQUIRE(f.ok());

  CHECK(f->get_int("neg").value() == -3);
  CHECK(contains(f->get_uint("neg").error().message, "key 'neg' is -3, expected an unsigned"));
  CHECK(contains(f->get_int("big").error().message, "key 'big'"));
  CHECK(contains(f->get_int("big").error().message, "too large for int64"));
  CHECK(contains(f->get_uint("name").error().message, "key 'name' is a string, expected an unsigned integer"));
  CHECK(contains(f->get_float("neg").error().message, "key 'neg' is a i32, expected a float"));
  CHECK(contains(f->get_string("missing").error().message, "missing key 'missing'"));
  CHECK(contains(f->get_int_array("strs").error().message, "is an array of string"));
  CHECK(contains(f->get_string_array("name").error().message, "expected an array of strings"));
  CHECK(contains(f->get_int_array("bigs").error().message, "too large for int64"));
  CHECK(contains(f->get_bool("eps").error().message, "expected a bool"));
  CHECK(f->get_uint_or("missing", 7).value() == 7);
  CHECK(f->get_uint_or("big", 7).value() == std::numeric_limits<uint64_t>::max());
  CHECK_FALSE(f->get_uint_or("name", 7).ok());  // present but mistyped is still an error
  CHECK(f->get_float_or("missing", 0.25).value() == 0.25);
  CHECK(f->get_float_or("eps", 0.25).value() == static_cast<double>(1e-6f));
  CHECK(f->get_bool_or("missing", true).value());
  CHECK_FALSE(f->get_bool_or("eps", true).ok());
}

TEST_CASE("nested arrays and add_value copy a whole file's metadata") {
  // Build a nested value by hand: [[1,2],[["a"]]] as an array of arrays.
  const auto ints = raw_bytes<int32_t>({1, 2});
  Value inner1;
  inner1.type = ValueType::ARRAY;
  inner1.elem_type = ValueType::INT32;
  inner1.count = 2;
  inner1.raw = ints.data();
  Value innermost;
  innermost.type = ValueType::ARRAY;
  innermost.elem_type = ValueType::STRING;
  innermost.strings = {"a"};
  innermost.count = 1;
  Value inner2;
  inner2.type = ValueType::ARRAY;
  inner2.elem_type = ValueType::ARRAY;
  inner2.items = {innermost};
  inner2.count = 1;
  Value outer;
  outer.type = ValueType::ARRAY;
  outer.elem_type = ValueType::ARRAY;
  outer.items = {inner1, inner2};
  outer.count = 2;

  Writer w;
  w.add_value("nested", outer);
  w.add_string("s", "text");
  w.add_float64("d", -1.5);
  w.set_alignment(64);
  auto buf = w.write_buffer();
  REQUIRE(buf.ok());
  auto f = File::from_buffer(buf->data(), buf->size());
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  CHECK(f->alignment() == 64);
  CHECK(f->get_uint("general.alignment").value() == 64);
  const Value* n = f->find("nested");
  REQUIRE(n != nullptr);
  REQUIRE(n->items.size() == 2);
  CHECK(n->items[0].integer_at(1) == 2);
  REQUIRE(n->items[1].items.size() == 1);
  REQUIRE(n->items[1].items[0].strings.size() == 1);
  CHECK(n->items[1].items[0].strings[0] == "a");

  // Copy every key into a new writer: identical bytes (alignment key included).
  Writer copy;
  for (const KeyValue& kv : f->metadata()) copy.add_value(kv.key, kv.value);
  auto buf2 = copy.write_buffer();
  REQUIRE(buf2.ok());
  CHECK(*buf2 == *buf);
}

// ============================================================================================
// Tensors
// ============================================================================================

TEST_CASE("tensors of several types and alignments round-trip") {
  for (uint32_t alignment : {1u, 8u, 32u, 64u, 4096u}) {
    CAPTURE(alignment);
    Writer w;
    w.set_alignment(alignment);
    w.add_string("general.architecture", "test");
    struct Spec {
      const char* name;
      DType type;
      std::vector<int64_t> shape;
    };
    const std::vector<Spec> specs = {
        {"a.f32", DType::F32, {3, 5}},
        {"b.f16", DType::F16, {7}},
        {"c.q4_0", DType::Q4_0, {64, 2, 3}},
        {"d.q8_0", DType::Q8_0, {32, 1, 1, 2}},
        {"e.q4_k", DType::Q4_K, {256, 3}},
        {"f.iq2_xs", DType::IQ2_XS, {256}},  // no to_float: still listed
        {"g.bf16", DType::BF16, {1}},
    };
    std::vector<std::vector<uint8_t>> datas;
    for (size_t k = 0; k < specs.size(); ++k) {
      const Spec& s = specs[k];
      int64_t rows = 1;
      for (size_t d = 1; d < s.shape.size(); ++d) rows *= s.shape[d];
      const size_t n = slm::row_bytes(s.type, s.shape[0]).value() * static_cast<size_t>(rows);
      datas.push_back(pattern(n, static_cast<uint32_t>(k + alignment)));
      REQUIRE(w.add_tensor(s.name, s.type, s.shape, datas.back().data(), n).ok());
    }
    // One produced at write time.
    const std::vector<int64_t> pshape = {4, 4};
    const auto pdata = pattern(64, 99);
    REQUIRE(w.add_tensor("h.produced", DType::F32, pshape, [&](std::span<uint8_t> out) {
                 REQUIRE(out.size() == pdata.size());
                 std::memcpy(out.data(), pdata.data(), out.size());
                 return slm::Status::success();
               }).ok());

    auto buf = w.write_buffer();
    REQUIRE(buf.ok());
    auto f = File::from_buffer(buf->data(), buf->size());
    REQUIRE_MESSAGE(f.ok(), f.error().message);
    CHECK(f->alignment() == alignment);
    CHECK(f->data_offset() % alignment == 0);
    REQUIRE(f->tensors().size() == specs.size() + 1);
    for (size_t k = 0; k < specs.size(); ++k) {
      const TensorInfo& t = f->tensors()[k];
      CAPTURE(specs[k].name);
      CHECK(t.name == specs[k].name);
      CHECK(t.type == specs[k].type);
      CHECK(t.n_dims == specs[k].shape.size());
      for (size_t d = 0; d < 4; ++d) {
        CHECK(t.ne[d] == (d < specs[k].shape.size() ? specs[k].shape[d] : 1));
      }
      CHECK(t.offset % alignment == 0);
      CHECK(t.n_bytes == datas[k].size());
      CHECK(std::memcmp(t.data, datas[k].data(), t.n_bytes) == 0);
      CHECK(t.data == f->bytes() + f->data_offset() + t.offset);
    }
    const TensorInfo* p = f->find_tensor("h.produced");
    REQUIRE(p != nullptr);
    CHECK(p->n_elements == 16);
    CHECK(p->rows() == 4);
    CHECK(std::memcmp(p->data, pdata.data(), 64) == 0);
    CHECK(f->find_tensor("nope") == nullptr);
    CHECK(f->find_tensor("c.q4_0")->n_elements == 64 * 6);
    CHECK(f->find_tensor("c.q4_0")->rows() == 6);
  }
}

TEST_CASE("write_file and open agree with write_buffer") {
  Writer w;
  w.set_alignment(16);
  w.add_uint32("k", 1);
  const auto d1 = pattern(tensor_bytes(DType::Q8_0, {32, 3}), 1);
  REQUIRE(w.add_tensor("t1", DType::Q8_0, std::vector<int64_t>{32, 3}, d1.data(), d1.size()).ok());
  const auto d2 = pattern(12, 2);
  REQUIRE(w.add_tensor("t2", DType::F32, std::vector<int64_t>{3},
                       [&](std::span<uint8_t> out) {
                         std::memcpy(out.data(), d2.data(), out.size());
                         return slm::Status::success();
                       })
              .ok());
  const std::string path =
      (std::filesystem::temp_directory_path() / ("slm_test_gguf_" + std::to_string(getpid()) + ".gguf"))
          .string();
  REQUIRE(w.write_file(path).ok());
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  auto buf = w.write_buffer();
  REQUIRE(buf.ok());
  CHECK(std::filesystem::file_size(path) == buf->size());
  auto f = File::open(path);
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  CHECK(f->size() == buf->size());
  CHECK(std::memcmp(f->bytes(), buf->data(), buf->size()) == 0);
  CHECK(std::memcmp(f->find_tensor("t2")->data, d2.data(), 12) == 0);
  // A moved File keeps its views valid (the map moves, the bytes stay put).
  File moved = std::move(*f);
  CHECK(moved.get_uint("k").value() == 1);
  CHECK(std::memcmp(moved.find_tensor("t1")->data, d1.data(), d1.size()) == 0);
  std::filesystem::remove(path);

  auto missing = File::open(path);
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error().message, path));
}

TEST_CASE("writer misuse is reported, not crashed on") {
  const std::vector<int64_t> shape = {32};
  const auto d = pattern(128, 1);
  {
    Writer w;
    w.add_uint32("k", 1);
    w.add_string("k", "again");
    auto buf = w.write_buffer();
    REQUIRE_FALSE(buf.ok());
    CHECK(contains(buf.error().message, "key 'k' added twice"));
  }
  {
    Writer w;
    w.set_alignment(48);
    CHECK(contains(w.write_buffer().error().message, "alignment 48 is not a power of two"));
  }
  {
    Writer w;
    w.add_int32("general.alignment", 64);
    CHECK(contains(w.write_buffer().error().message, "must be a u32"));
  }
  {
    Writer w;
    w.add_array_raw("x", ValueType::STRING, d.data(), 1);
    CHECK(contains(w.write_buffer().error().message, "scalar element type"));
  }
  Writer w;
  REQUIRE(w.add_tensor("t", DType::F32, shape, d.data(), d.size()).ok());
  CHECK(contains(w.add_tensor("t", DType::F32, shape, d.data(), d.size()).message(),
                 "tensor 't' added twice"));
  CHECK(contains(w.add_tensor("u", DType::F32, shape, d.data(), 100).message(),
                 "given 100 bytes, its shape needs 128"));
  CHECK(contains(w.add_tensor("u", DType::Q4_0, std::vector<int64_t>{16}, d.data(), 9).message(),
                 "not a multiple of the block size"));
  CHECK(contains(w.add_tensor("u", DType::F32, std::vector<int64_t>{4, 0}, d.data(), 0).message(),
                 "dimension 1 is 0"));
  CHECK(contains(w.add_tensor("u", DType::F32, std::vector<int64_t>{1, 1, 1, 1, 1}, d.data(), 4)
                     .message(),
                 "5 dimensions"));
  CHECK(contains(w.add_tensor("u", static_cast<DType>(4), shape, d.data(), 128).message(),
                 "unknown type id 4"));
  CHECK(contains(w.add_tensor("u", DType::F32, std::vector<int64_t>{1ll << 62, 1ll << 62},
                              d.data(), 0)
                     .message(),
                 "overflows"));
  // A failing producer fails the write and names the tensor.
  REQUIRE(w.add_tensor("p", DType::F32, shape,
                       [](std::span<uint8_t>) { return slm::Status(slm::errorf("disk full")); })
              .ok());
  auto buf = w.write_buffer();
  REQUIRE_FALSE(buf.ok());
  CHECK(contains(buf.error().message, "tensor 'p': disk full"));
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("slm_test_gguf_fail_" + std::to_string(getpid()) + ".gguf"))
                               .string();
  CHECK_FALSE(w.write_file(path).ok());
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
}

// ============================================================================================
// Real files (../shared/data, present in dev checkouts and CI; skipped with a message otherwise)
// ============================================================================================

namespace {
std::filesystem::path shared_data() {
  const char* src = std::getenv("SLM_SOURCE_DIR");
  if (src == nullptr) return {};
  std::filesystem::path p = std::filesystem::path(src) / ".." / "shared" / "data";
  std::error_code ec;
  return std::filesystem::is_directory(p, ec) ? p : std::filesystem::path();
}
}  // namespace

TEST_CASE("stories260K.gguf: known facts") {
  const auto data = shared_data();
  if (data.empty()) {
    MESSAGE("../shared/data not found (SLM_SOURCE_DIR unset or no shared/): check did not run");
    return;
  }
  auto f = File::open((data / "models" / "stories260K.gguf").string());
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  CHECK(f->version() == 3);
  CHECK(f->get_string("general.architecture").value() == "llama");
  CHECK(f->get_string("tokenizer.ggml.model").value() == "llama");
  CHECK(f->get_uint("llama.block_count").value() == 5);
  CHECK(f->get_uint("llama.embedding_length").value() == 64);
  CHECK(f->get_uint("llama.feed_forward_length").value() == 172);
  CHECK(f->get_uint("llama.attention.head_count").value() == 8);
  CHECK(f->get_uint("llama.attention.head_count_kv").value() == 4);
  CHECK(f->get_uint("llama.context_length").value() == 2048);
  CHECK(f->get_float("llama.attention.layer_norm_rms_epsilon").value() ==
        doctest::Approx(1e-5).epsilon(1e-6));
  CHECK(f->get_uint("tokenizer.ggml.bos_token_id").value() == 1);
  CHECK(f->get_uint("tokenizer.ggml.eos_token_id").value() == 2);
  auto tokens = f->get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.ok());
  REQUIRE(tokens->size() == 512);
  CHECK((*tokens)[0] == "<unk>");
  CHECK((*tokens)[3] == "<0x00>");
  CHECK((*tokens)[258] == "<0xFF>");
  CHECK(f->get_float_array("tokenizer.ggml.scores")->size() == 512);
  REQUIRE(f->tensors().size() == 48);
  uint64_t total = 0;
  for (const TensorInfo& t : f->tensors()) {
    CHECK(t.type == DType::F32);
    total += t.n_bytes;
  }
  CHECK(f->data_offset() + total == f->size());  // packed: F32 sizes are multiples of 32
  const TensorInfo* emb = f->find_tensor("token_embd.weight");
  REQUIRE(emb != nullptr);
  CHECK(emb->ne[0] == 64);
  CHECK(emb->ne[1] == 512);
  CHECK(f->find_tensor("blk.4.ffn_down.weight")->ne[0] == 172);
}

TEST_CASE("every .gguf in ../shared/data opens; vocab arrays are consistent") {
  const auto data = shared_data();
  if (data.empty()) {
    MESSAGE("../shared/data not found (SLM_SOURCE_DIR unset or no shared/): check did not run");
    return;
  }
  // Vocabulary sizes of the families (from their tokenizer configs).
  const std::pair<const char*, size_t> known[] = {
      {"ggml-vocab-llama-spm.gguf", 32000}, {"ggml-vocab-gpt-2.gguf", 50257},
      {"ggml-vocab-bert-bge.gguf", 30522},  {"ggml-vocab-deepseek-llm.gguf", 102400},
      {"ggml-vocab-deepseek-coder.gguf", 32256}, {"stories260K.gguf", 512}};
  int opened = 0;
  for (const char* dir : {"models", "vocab"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(data / dir, ec)) {
      if (e.path().extension() != ".gguf") continue;
      CAPTURE(e.path().string());
      auto f = File::open(e.path().string());
      REQUIRE_MESSAGE(f.ok(), f.error().message);
      ++opened;
      auto tokens = f->get_string_array("tokenizer.ggml.tokens");
      REQUIRE(tokens.ok());
      CHECK(f->get_string("tokenizer.ggml.model").ok());
      if (f->find("tokenizer.ggml.token_type") != nullptr) {
        CHECK(f->get_int_array("tokenizer.ggml.token_type")->size() == tokens->size());
      }
      if (f->find("tokenizer.ggml.scores") != nullptr) {
        CHECK(f->get_float_array("tokenizer.ggml.scores")->size() == tokens->size());
      }
      for (const auto& [name, size] : known) {
        if (e.path().filename() == name) CHECK(tokens->size() == size);
      }
    }
  }
  MESSAGE("opened " << opened << " GGUF files");
  CHECK(opened >= 6);
}

TEST_CASE("copying a real file through the Writer reproduces it byte for byte") {
  // The files in ../shared/data were written by llama.cpp's tools: same key order, tensor
  // order, alignment padding (none after the header of a file without tensors).
  const auto data = shared_data();
  if (data.empty()) {
    MESSAGE("../shared/data not found (SLM_SOURCE_DIR unset or no shared/): check did not run");
    return;
  }
  int copied = 0;
  for (const char* dir : {"models", "vocab"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(data / dir, ec)) {
      if (e.path().extension() != ".gguf") continue;
      CAPTURE(e.path().string());
      auto f = File::open(e.path().string());
      REQUIRE(f.ok());
      Writer w;
      w.set_alignment(f->alignment());
      for (const KeyValue& kv : f->metadata()) w.add_value(kv.key, kv.value);
      for (const TensorInfo& t : f->tensors()) {
        const std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
        REQUIRE(w.add_tensor(t.name, t.type, shape, t.data, t.n_bytes).ok());
      }
      auto buf = w.write_buffer();
      REQUIRE(buf.ok());
      CHECK(buf->size() == f->size());
      CHECK((buf->size() == f->size() && std::memcmp(buf->data(), f->bytes(), f->size()) == 0));
      ++copied;
    }
  }
  CHECK(copied >= 6);
}
