// Malformed GGUF files: every one must give an Error naming the problem, never a crash, an
// out-of-bounds read or a huge allocation (this test also runs under ASan/UBSan in CI). Also runs
// the slm-gguf tool on a good and a bad file.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/json.hpp"

using namespace slm::gguf;
using slm::DType;

namespace {

// ============================================================================================
// A byte builder for files the Writer refuses to produce
// ============================================================================================

struct Bytes {
  std::vector<uint8_t> v;

  template <class T>
  Bytes& put(T x) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    v.insert(v.end(), b, b + sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t x) { return put(x); }
  Bytes& u32(uint32_t x) { return put(x); }
  Bytes& u64(uint64_t x) { return put(x); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    v.insert(v.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& zeros(size_t n) {
    v.resize(v.size() + n, 0);
    return *this;
  }
  Bytes& pad_to(size_t a) { return zeros((a - v.size() % a) % a); }

  // Header: magic, version, tensor count, key/value count.
  static Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Bytes b;
    b.u32(kMagic).u32(version).u64(n_tensors).u64(n_kv);
    return b;
  }
  Bytes& kv_u32(std::string_view key, uint32_t x) {
    return str(key).u32(static_cast<uint32_t>(ValueType::UINT32)).u32(x);
  }
  Bytes& kv_str(std::string_view key, std::string_view s) {
    return str(key).u32(static_cast<uint32_t>(ValueType::STRING)).str(s);
  }
  // A tensor info: name, dims (ne[0] first), type id, offset.
  Bytes& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
};

// Parses a copy of the bytes in a buffer of exactly their size (so ASan sees any over-read);
// returns the error message, or "" when the file was accepted.
std::string parse_error(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + 1]);  // +1: valid for size 0
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  auto f = File::from_buffer(bytes.empty() ? nullptr : copy.get(), bytes.size());
  if (f.ok()) return "";
  return f.error().message;
}

std::string parse_error(const Bytes& b) { return parse_error(b.v); }

// A valid manual file: one key, one F32 tensor of 4 elements.
Bytes minimal() {
  Bytes b = Bytes::header(1, 1);
  b.kv_str("general.name", "x").tensor("t", {4}, 0, 0).pad_to(32).zeros(16);
  return b;
}

#define CHECK_ERROR(bytes, needle)                          \
  do {                                                      \
    const std::string msg_ = parse_error(bytes);            \
    CAPTURE(msg_);                                          \
    CHECK_MESSAGE(!msg_.empty(), "file was accepted");      \
    CHECK(msg_.find(needle) != std::string::npos);          \
  } while (0)

// A small valid file from the Writer: keys of several types, three tensors (one quantized),
// laid out so the last tensor ends exactly at the end of the file (no trailing padding: every
// strict prefix then lacks bytes the reader needs).
std::vector<uint8_t> writer_file() {
  Writer w;
  w.add_string("general.architecture", "llama");
  w.add_uint32("llama.block_count", 2);
  w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_bool("flag", true);
  w.add_int64("neg", -5);
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "hello"};
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  const std::vector<float> scores = {0, -1, -2, -3};
  w.add_float32_array("tokenizer.ggml.scores", scores);
  std::vector<uint8_t> f32(8 * 4, 1), q40(18 * 2, 2), f16(16 * 2, 3);
  REQUIRE(w.add_tensor("a.weight", DType::F32, std::vector<int64_t>{8}, f32.data(), f32.size()).ok());
  REQUIRE(w.add_tensor("b.weight", DType::Q4_0, std::vector<int64_t>{32, 2}, q40.data(), q40.size()).ok());
  REQUIRE(w.add_tensor("c.weight", DType::F16, std::vector<int64_t>{16}, f16.data(), f16.size()).ok());
  auto buf = w.write_buffer();
  REQUIRE(buf.ok());
  return std::move(*buf);
}

}  // namespace

// ============================================================================================
// Truncation
// ============================================================================================

TEST_CASE("the byte builder makes a valid file (so the variants below test one fault each)") {
  CHECK(parse_error(minimal()) == "");
}

TEST_CASE("every truncation prefix of a valid file is an error") {
  const std::vector<uint8_t> full = writer_file();
  auto f = File::from_buffer(full.data(), full.size());
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  const TensorInfo& last = f->tensors().back();
  REQUIRE(f->data_offset() + last.offset + last.n_bytes == full.size());
  for (size_t n = 0; n < full.size(); ++n) {
    CAPTURE(n);
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<ptrdiff_t>(n));
    const std::string msg = parse_error(prefix);
    REQUIRE_MESSAGE(!msg.empty(), "a prefix of " << n << " bytes was accepted");
  }
  // A few messages, spot-checked.
  CHECK(parse_error(std::vector<uint8_t>()).find("too small for a GGUF header") != std::string::npos);
  CHECK(parse_error(std::vector<uint8_t>(full.begin(), full.begin() + 30)).find("need at least") !=
        std::string::npos);
  CHECK(parse_error(std::vector<uint8_t>(full.begin(), full.end() - 1)).find("'c.weight'") !=
        std::string::npos);
}

// ============================================================================================
// Header
// ============================================================================================

TEST_CASE("bad magic and versions") {
  Bytes b = minimal();
  b.v[0] = 'X';
  CHECK_ERROR(b, "bad magic");
  CHECK_ERROR(std::vector<uint8_t>(2, 'G'), "too small");
  Bytes v1 = minimal();
  v1.v[4] = 1;
  CHECK_ERROR(v1, "version 1 is not supported");
  Bytes v4 = minimal();
  v4.v[4] = 4;
  CHECK_ERROR(v4, "unknown GGUF version 4");
  Bytes be = minimal();
  be.v[4] = 0;
  be.v[7] = 3;
  CHECK_ERROR(be, "big-endian");
  Bytes v2 = minimal();
  v2.v[4] = 2;
  CHECK(parse_error(v2) == "");  // version 2 has the same layout as 3
}

TEST_CASE("absurd counts") {
  CHECK_ERROR(Bytes::header(1ull << 40, 0), "tensor count 1099511627776 at byte 8 exceeds the limit");
  CHECK_ERROR(Bytes::header(0, ~0ull), "key/value count");
  CHECK_ERROR(Bytes::header(1000, 0).zeros(64), "need at least");
  CHECK_ERROR(Bytes::header(0, 1000).zeros(64), "need at least");
}

// ============================================================================================
// Metadata
// ============================================================================================

TEST_CASE("string lengths past the end") {
  Bytes key = Bytes::header(0, 1);
  key.u64(999999).zeros(12);
  CHECK_ERROR(key, "key #0 at byte 24: key name at byte 24: length 999999 exceeds remaining 12 bytes");
  Bytes val = Bytes::header(0, 1);
  val.str("general.name").u32(8).u64(999999).zeros(12);
  CHECK_ERROR(val, "key 'general.name' at byte 24: string value at byte 48: length 999999 exceeds remaining 12 bytes");
  Bytes huge = Bytes::header(0, 1);
  huge.str("k").u32(8).u64(1ull << 62).zeros(12);
  CHECK_ERROR(huge, "exceeds the limit");
  Bytes in_array = Bytes::header(0, 1);
  in_array.str("toks").u32(9).u32(8).u64(2).str("a").u64(50).zeros(4);
  CHECK_ERROR(in_array, "key 'toks' at byte 24: array at byte 40, element 1: array string");
}

TEST_CASE("duplicate keys, unknown value types, bad bools") {
  Bytes dup = Bytes::header(0, 2);
  dup.kv_u32("a.b", 1).kv_u32("a.b", 2);
  CHECK_ERROR(dup, "key 'a.b' at byte 43: duplicate key");
  Bytes type = Bytes::header(0, 1);
  type.str("k").u32(13).u32(0).zeros(8);
  CHECK_ERROR(type, "key 'k' at byte 24: unknown value type 13");
  Bytes elem = Bytes::header(0, 1);
  elem.str("k").u32(9).u32(77).u64(1).zeros(8);
  CHECK_ERROR(elem, "unknown element type 77");
  Bytes boolean = Bytes::header(0, 1);
  boolean.str("k").u32(7).u8(2).zeros(8);
  CHECK_ERROR(boolean, "neither 0 nor 1");
  Bytes bools = Bytes::header(0, 1);
  bools.str("k").u32(9).u32(7).u64(3).u8(1).u8(0).u8(9);
  CHECK_ERROR(bools, "bool element 2 is 9");
  // Key names with control bytes are printed escaped, on one line.
  Bytes ctl = Bytes::header(0, 2);
  ctl.kv_u32("a\nb", 1).kv_u32("a\nb", 1);
  CHECK_ERROR(ctl, "key 'a\\x0ab'");
}

TEST_CASE("array counts and nesting") {
  Bytes over = Bytes::header(0, 1);
  over.str("k").u32(9).u32(0).u64(Limits::max_array_items + 1).zeros(16);
  CHECK_ERROR(over, "exceeds the limit");
  Bytes big = Bytes::header(0, 1);
  big.str("k").u32(9).u32(4).u64(1000).zeros(16);
  CHECK_ERROR(big, "1000 u32 elements need at least 1000 x 4 bytes but only 16 remain");
  Bytes strings = Bytes::header(0, 1);
  strings.str("k").u32(9).u32(8).u64(1ull << 26).zeros(16);
  CHECK_ERROR(strings, "string elements need at least");
  // Nested arrays: depth 8 is the limit (the key's array is level 1).
  auto nested = [](int levels) {
    Bytes b = Bytes::header(0, 1);
    b.str("n").u32(9);
    for (int k = 1; k < levels; ++k) b.u32(9).u64(1);
    b.u32(0).u64(0);  // innermost: an empty u8 array
    return b;
  };
  CHECK(parse_error(nested(Limits::max_array_depth)) == "");
  CHECK_ERROR(nested(Limits::max_array_depth + 1), "nested deeper than 8");
  CHECK_ERROR(nested(1000), "nested deeper than 8");
  // Many empty nested arrays: bounded in total, whatever the file size.
  Bytes many = Bytes::header(0, 1);
  many.str("m").u32(9).u32(9).u64(Limits::max_nested_items + 1);
  for (uint64_t k = 0; k <= Limits::max_nested_items; ++k) many.u32(0).u64(0);
  CHECK_ERROR(many, "nested arrays hold more than");
}

TEST_CASE("general.alignment") {
  auto with_alignment = [](uint32_t a) {
    Bytes b = Bytes::header(1, 1);
    b.kv_u32("general.alignment", a).tensor("t", {4}, 0, 0).pad_to(a ? a : 1).zeros(16);
    return b;
  };
  CHECK(parse_error(with_alignment(64)) == "");
  CHECK(parse_error(with_alignment(1)) == "");
  CHECK_ERROR(with_alignment(48), "alignment 48 is not a power of two");
  CHECK_ERROR(with_alignment(0), "alignment 0 is not a power of two");
  CHECK_ERROR(with_alignment(1u << 20), "is not a power of two in [1, 65536]");
  Bytes wrong = Bytes::header(0, 1);
  wrong.str("general.alignment").u32(5).u32(32);
  CHECK_ERROR(wrong, "key 'general.alignment' at byte 24: type i32, expected u32");
  // The alignment decides where data starts: with 64, data begins at the next multiple of 64.
  Bytes b = with_alignment(64);
  auto f = File::from_buffer(b.v.data(), b.v.size());
  REQUIRE(f.ok());
  CHECK(f->data_offset() == 128);
  CHECK(f->tensors()[0].data == f->bytes() + 128);
}

// ============================================================================================
// Tensor infos
// ============================================================================================

TEST_CASE("tensor info faults") {
  auto one = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset, size_t data = 64) {
    Bytes b = Bytes::header(1, 0);
    b.tensor("blk.0.attn_q.weight", std::move(dims), type, offset).pad_to(32).zeros(data);
    return b;
  };
  CHECK(parse_error(one({4, 4}, 0, 0)) == "");
  CHECK_ERROR(one({4}, 4, 0), "tensor 'blk.0.attn_q.weight' at byte 24: unknown tensor type id 4");
  CHECK_ERROR(one({4}, 1000, 0), "unknown tensor type id 1000");
  CHECK_ERROR(one({}, 0, 0), "dimension count 0 is not in [1, 4]");
  CHECK_ERROR(one({1, 1, 1, 1, 1}, 0, 0), "dimension count 5 is not in [1, 4]");
  CHECK_ERROR(one({4, 0}, 0, 0), "dimension 1 is 0");
  CHECK_ERROR(one({~0ull}, 0, 0), "dimension 0 is -1 (must be positive)");
  CHECK_ERROR(one({1ull << 32, 1ull << 32}, 0, 0), "element count overflows int64 at dimension 1");
  CHECK_ERROR(one({1ull << 31, 1ull << 31}, 0, 0), "byte size overflows");  // 2^62 x 4 bytes
  CHECK_ERROR(one({16}, 2, 0), "row length 16 is not a multiple of the Q4_0 block size 32");
  CHECK_ERROR(one({4}, 0, 4), "tensor 'blk.0.attn_q.weight': data offset 4 is not a multiple of the alignment 32");
  CHECK_ERROR(one({4}, 0, 64), "tensor 'blk.0.attn_q.weight': data [offset 96 + 64, 16 bytes] runs past end of file (size 160)");
  CHECK_ERROR(one({4}, 0, ~0ull - 31), "runs past end of file");  // offset + start overflows
  CHECK_ERROR(one({64}, 0, 0, 100), "data [offset 96 + 0, 256 bytes] runs past end of file (size 196)");
  // Types the engine cannot compute with still parse (the model loader decides).
  CHECK(parse_error(one({256}, static_cast<uint32_t>(DType::IQ2_XS), 0, 74)) == "");

  Bytes dup = Bytes::header(2, 0);
  dup.tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).pad_to(32).zeros(64);
  CHECK_ERROR(dup, "tensor 't' at byte 57: duplicate tensor name");
  Bytes name = Bytes::header(1, 0);
  name.u64(1ull << 40).zeros(40);
  CHECK_ERROR(name, "tensor #0 at byte 24: tensor name at byte 24: length 1099511627776 exceeds");
}

// ============================================================================================
// The slm-gguf tool on a good and a bad file
// ============================================================================================

#ifdef SLM_GGUF_TOOL
namespace {
struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RunResult run_tool(const std::string& args) {
  const std::string base = (std::filesystem::temp_directory_path() /
                            ("slm_gguf_tool_" + std::to_string(getpid()))).string();
  const std::string cmd = std::string("'") + SLM_GGUF_TOOL + "' " + args + " >'" + base +
                          ".out' 2>'" + base + ".err'";
  RunResult r;
  const int status = std::system(cmd.c_str());
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  std::filesystem::remove(base + ".out");
  std::filesystem::remove(base + ".err");
  return r;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
}
}  // namespace

TEST_CASE("slm-gguf: exit codes, one-line errors, text and JSON output") {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string good = (dir / ("slm_gguf_good_" + std::to_string(getpid()) + ".gguf")).string();
  const std::string bad = (dir / ("slm_gguf_bad_" + std::to_string(getpid()) + ".gguf")).string();
  std::vector<uint8_t> bytes = writer_file();
  write_bytes(good, bytes);
  bytes.resize(bytes.size() - 5);
  write_bytes(bad, bytes);

  RunResult ok = run_tool("info '" + good + "'");
  CHECK(ok.exit_code == 0);
  CHECK(ok.err.empty());
  CHECK(ok.out.find("tensors: 3") != std::string::npos);
  CHECK(ok.out.find("b.weight") != std::string::npos);
  CHECK(ok.out.find("Q4_0") != std::string::npos);
  CHECK(ok.out.find("\"<unk>\"") != std::string::npos);

  RunResult js = run_tool("info --json '" + good + "'");
  CHECK(js.exit_code == 0);
  auto doc = slm::json::parse(js.out);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  CHECK(slm::json::get_int(*doc, "tensor_count").value() == 3);
  CHECK(slm::json::get_int(*doc, "version").value() == 3);
  const slm::json::Value* tensors = doc->find("tensors");
  REQUIRE(tensors != nullptr);
  REQUIRE(tensors->size() == 3);
  CHECK(slm::json::get_string(*tensors->at(1), "type").value() == "Q4_0");
  const slm::json::Value* meta = doc->find("metadata");
  REQUIRE(meta != nullptr);
  CHECK(slm::json::get_string(*meta->at(0), "key").value() == "general.architecture");
  CHECK(slm::json::get_string(*meta->at(0), "value").value() == "llama");

  RunResult fail = run_tool("info '" + bad + "'");
  CHECK(fail.exit_code == 1);
  CHECK(fail.out.empty());
  CHECK(fail.err.rfind("slm-gguf: " + bad + ": ", 0) == 0);
  CHECK(fail.err.find("c.weight") != std::string::npos);
  CHECK(fail.err.find('\n') == fail.err.size() - 1);  // exactly one line

  RunResult missing = run_tool("info '" + bad + ".none'");
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find('\n') == missing.err.size() - 1);

  RunResult usage = run_tool("");
  CHECK(usage.exit_code == 2);
  CHECK(usage.err.find("usage: slm-gguf") != std::string::npos);
  CHECK(run_tool("info").exit_code == 2);
  CHECK(run_tool("info --bogus '" + good + "'").exit_code == 2);
  CHECK(run_tool("frobnicate '" + good + "'").exit_code == 2);
  CHECK(run_tool("--help").exit_code == 0);

  std::filesystem::remove(good);
  std::filesystem::remove(bad);
}
#else
TEST_CASE("slm-gguf tool checks") {
  MESSAGE("slm-gguf not built (SLM_BUILD_TOOLS=OFF): tool checks did not run");
}
#endif
