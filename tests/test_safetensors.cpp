// The safetensors reader: a good file and a sharded checkpoint read back exactly; every malformed
// file (every truncation, bad header length, bad JSON, bad dtype/shape/offsets, overlaps,
// duplicates, bad index) gives an Error naming the problem -- never a crash or an out-of-bounds
// read (this test also runs under ASan/UBSan).
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "slm/safetensors.hpp"
#include "test_convert_helpers.hpp"

using namespace testconv;
namespace st = slm::safetensors;

namespace {

// Parses a copy of the bytes in a buffer of exactly their size; "" when accepted.
std::string parse_error(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + 1]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  auto f = st::File::from_buffer(copy.get(), bytes.size(), "t.safetensors");
  return f.ok() ? "" : f.error().message;
}

std::vector<StTensor> good_tensors() {
  return {st_tensor("a", "F32", {2, 3}, {1, 2, 3, 4, 5, 6}), st_tensor("b", "BF16", {4}, {1, -2, 0.5f, 8}),
          st_tensor("c", "F16", {1, 2}, {0.25f, -1})};
}

// A file from a raw header string and the good tensors' bytes.
std::vector<uint8_t> with_header(const std::string& header) { return st_bytes_from_header(header, good_tensors()); }

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offs) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offs + "}";
}

}  // namespace

TEST_CASE("safetensors: a good file reads back") {
  const auto ts = good_tensors();
  const auto bytes = st_bytes_from_header(st_header(ts), ts);
  auto f = st::File::from_buffer(bytes.data(), bytes.size());
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  REQUIRE(f->tensors().size() == 3);
  CHECK(f->metadata().at("format") == "pt");
  const st::Tensor* a = f->find("a");
  REQUIRE(a != nullptr);
  CHECK(a->dtype == st::DType::F32);
  CHECK(a->shape == std::vector<int64_t>{2, 3});
  CHECK(a->row_length() == 3);
  CHECK(a->n_rows() == 2);
  std::vector<float> v(6);
  REQUIRE(st::read_f32(*a, 0, 6, v.data()).ok());
  CHECK(v == std::vector<float>{1, 2, 3, 4, 5, 6});
  std::vector<float> b(4);
  REQUIRE(st::read_f32(*f->find("b"), 0, 4, b.data()).ok());
  CHECK(b == std::vector<float>{1, -2, 0.5f, 8});
  std::vector<float> c(2);
  REQUIRE(st::read_f32(*f->find("c"), 0, 2, c.data()).ok());
  CHECK(c == std::vector<float>{0.25f, -1});
  CHECK(st::read_f32(*a, 5, 2, v.data()).message().find("out of range") != std::string::npos);
  CHECK(f->find("nope") == nullptr);
  // Scalars (shape []) and empty tensors are legal.
  const std::vector<StTensor> odd = {st_tensor("s", "F32", {}, {7}), StTensor{"e", "F32", {0, 4}, {}}};
  const auto ob = st_bytes_from_header(st_header(odd), odd);
  auto g = st::File::from_buffer(ob.data(), ob.size());
  REQUIRE(g.ok());
  CHECK(g->find("s")->n_elements == 1);
  CHECK(g->find("e")->n_elements == 0);
}

TEST_CASE("safetensors: every truncation of a good file is an error") {
  const auto ts = good_tensors();
  const auto bytes = st_bytes_from_header(st_header(ts), ts);
  for (size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    CHECK(parse_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(n))) != "");
  }
}

TEST_CASE("safetensors: malformed headers name the problem") {
  struct Case {
    std::string header, expect;
  };
  const std::string a = entry("a", "F32", "[2,3]", "[0,24]");
  const std::vector<Case> cases = {
      {"[1,2]", "expected an object"},
      {"{\"a\":", "header"},
      {"{\"a\":3}", "expected an object"},
      {"{" + entry("a", "F33", "[2,3]", "[0,24]") + "}", "unknown dtype 'F33'"},
      {"{\"a\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", "dtype"},
      {"{" + entry("a", "F32", "[2,-3]", "[0,24]") + "}", "non-negative integers"},
      {"{" + entry("a", "F32", "[2,1.5]", "[0,24]") + "}", "non-negative integers"},
      {"{" + entry("a", "F32", "[1,2,3,4,5,6,7,8,9]", "[0,24]") + "}", "dimensions"},
      {"{" + entry("a", "F32", "[4294967296,4294967296,4294967296]", "[0,24]") + "}", "overflows"},
      {"{" + entry("a", "F32", "[2,3]", "[0,20]") + "}", "needs 6 x 4"},
      {"{" + entry("a", "F32", "[2,3]", "[24,0]") + "}", "end before they begin"},
      {"{" + entry("a", "F32", "[2,3]", "[0,24,1]") + "}", "two non-negative integers"},
      {"{" + entry("a", "F32", "[2,3]", "[0,-24]") + "}", "two non-negative integers"},
      {"{" + entry("a", "F32", "[100]", "[0,400]") + "}", "past the data section"},
      {"{" + a + "," + entry("b", "F32", "[2]", "[20,28]") + "}", "overlap"},
      {"{" + a + "," + a + "}", "listed twice"},
      {"{\"__metadata__\":[]," + a + "}", "__metadata__"},
      {"{\"__metadata__\":{\"k\":1}," + a + "}", "__metadata__ key 'k'"},
      {"{" + entry("", "F32", "[2,3]", "[0,24]") + "}", "empty name"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.header);
    const std::string e = parse_error(with_header(c.header));
    CHECK(e.find(c.expect) != std::string::npos);
    CHECK(e.find("t.safetensors") != std::string::npos);
  }
  // Header length fields that lie.
  std::vector<uint8_t> huge(16, 0);
  huge[5] = 1;  // 2^40
  CHECK(parse_error(huge).find("limit") != std::string::npos);
  std::vector<uint8_t> past = with_header("{}");
  past[0] = 0xF0;  // header longer than the file
  CHECK(parse_error(past).find("past the end") != std::string::npos);
  CHECK(parse_error({1, 2, 3}).find("8-byte header length") != std::string::npos);
  // Non-float tensors are read as headers but refused by read_f32.
  const std::vector<StTensor> ints = {StTensor{"i", "I32", {2}, std::vector<uint8_t>(8, 0)}};
  const auto ib = st_bytes_from_header(st_header(ints), ints);
  auto f = st::File::from_buffer(ib.data(), ib.size());
  REQUIRE(f.ok());
  float out[2];
  CHECK(st::read_f32(*f->find("i"), 0, 2, out).message().find("I32") != std::string::npos);
}

TEST_CASE("safetensors: checkpoint directories (index, shards) and their errors") {
  const fs::path dir = temp_dir("st-ckpt");
  DenseSpec s;
  s.n_layer = 1;
  s.shards = 2;
  const Checkpoint c = write_dense_checkpoint(dir, s);
  auto ck = st::Checkpoint::open_dir(dir.string());
  REQUIRE_MESSAGE(ck.ok(), ck.error().message);
  CHECK(ck->n_files() == 2);
  CHECK(ck->tensors().size() == c.w.size());
  const st::Tensor* t = ck->find("model.layers.0.mlp.up_proj.weight");
  REQUIRE(t != nullptr);
  std::vector<float> v(t->n_elements);
  REQUIRE(st::read_f32(*t, 0, t->n_elements, v.data()).ok());
  CHECK(v == c.w.at("model.layers.0.mlp.up_proj.weight"));
  // The index names a tensor the shard does not hold.
  write_file(dir / "model.safetensors.index.json",
             "{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\"}}");
  auto e1 = st::Checkpoint::open_dir(dir.string());
  REQUIRE(!e1.ok());
  CHECK(e1.error().message.find("'x'") != std::string::npos);
  // The index points outside the directory.
  write_file(dir / "model.safetensors.index.json", "{\"weight_map\":{\"x\":\"../evil.safetensors\"}}");
  CHECK(!st::Checkpoint::open_dir(dir.string()).ok());
  // A missing shard.
  write_file(dir / "model.safetensors.index.json", "{\"weight_map\":{\"x\":\"gone.safetensors\"}}");
  CHECK(!st::Checkpoint::open_dir(dir.string()).ok());
  // Without an index: a name in two files.
  fs::remove(dir / "model.safetensors.index.json");
  write_safetensors(dir / "dup.safetensors", {st_tensor("model.norm.weight", "F32", {1}, {1})});
  auto e2 = st::Checkpoint::open_dir(dir.string());
  REQUIRE(!e2.ok());
  CHECK(e2.error().message.find("in both") != std::string::npos);
  // An empty directory.
  fs::remove_all(dir);
  fs::create_directories(dir);
  CHECK(st::Checkpoint::open_dir(dir.string()).error().message.find("no *.safetensors") != std::string::npos);
  fs::remove_all(dir);
}
