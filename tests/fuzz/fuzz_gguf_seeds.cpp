// Writes the seed corpus for fuzz_gguf: small valid GGUF files covering every value type,
// nested arrays, several tensor types and alignments. Usage: fuzz_gguf_seeds OUT_DIR
#include <cstdio>
#include <string>
#include <vector>

#include "slm/gguf.hpp"

using namespace slm::gguf;
using slm::DType;

namespace {

bool save(const Writer& w, const std::string& path) {
  slm::Status st = w.write_file(path);
  if (!st) std::fprintf(stderr, "fuzz_gguf_seeds: %s\n", st.message().c_str());
  return st.ok();
}

void scalars(Writer& w) {
  w.add_uint8("u8", 1);
  w.add_int8("i8", -1);
  w.add_uint16("u16", 2);
  w.add_int16("i16", -2);
  w.add_uint32("u32", 3);
  w.add_int32("i32", -3);
  w.add_uint64("u64", 4);
  w.add_int64("i64", -4);
  w.add_float32("f32", 0.5f);
  w.add_float64("f64", 0.25);
  w.add_bool("b", true);
  w.add_string("general.architecture", "llama");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_gguf_seeds OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;
  {
    Writer w;
    scalars(w);
    ok &= save(w, dir + "/scalars.gguf");
  }
  {
    Writer w;
    const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    const std::vector<float> scores = {0, 0, 0, -1, -2, -3};
    w.add_float32_array("tokenizer.ggml.scores", scores);
    const std::vector<int32_t> types = {2, 3, 3, 1, 1, 1};
    w.add_int32_array("tokenizer.ggml.token_type", types);
    const std::vector<std::string> merges = {"a b"};
    w.add_string_array("tokenizer.ggml.merges", merges);
    const uint8_t bools[] = {1, 0};
    w.add_array_raw("bools", ValueType::BOOL, bools, 2);
    const double f64s[] = {1.5, -2};
    w.add_array_raw("f64s", ValueType::FLOAT64, f64s, 2);
    ok &= save(w, dir + "/vocab.gguf");
  }
  {
    // Nested arrays: [[1, 2], [["x"]]].
    const int32_t ints[] = {1, 2};
    Value a;
    a.type = ValueType::ARRAY;
    a.elem_type = ValueType::INT32;
    a.count = 2;
    a.raw = reinterpret_cast<const uint8_t*>(ints);
    Value s;
    s.type = ValueType::ARRAY;
    s.elem_type = ValueType::STRING;
    s.strings = {"x"};
    s.count = 1;
    Value b;
    b.type = ValueType::ARRAY;
    b.elem_type = ValueType::ARRAY;
    b.items = {s};
    b.count = 1;
    Value outer;
    outer.type = ValueType::ARRAY;
    outer.elem_type = ValueType::ARRAY;
    outer.items = {a, b};
    outer.count = 2;
    Writer w;
    w.add_value("nested", outer);
    ok &= save(w, dir + "/nested.gguf");
  }
  const struct {
    const char* name;
    uint32_t alignment;
  } layouts[] = {{"tensors32.gguf", 32}, {"tensors8.gguf", 8}, {"tensors64.gguf", 64}};
  for (const auto& layout : layouts) {
    Writer w;
    w.set_alignment(layout.alignment);
    scalars(w);
    const std::vector<uint8_t> f32(4 * 4, 0x3f), q8(34 * 2, 1), q4k(144, 2), f16(2 * 3, 3);
    ok &= w.add_tensor("token_embd.weight", DType::F32, std::vector<int64_t>{2, 2}, f32.data(),
                       f32.size()).ok();
    ok &= w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, std::vector<int64_t>{32, 2}, q8.data(),
                       q8.size()).ok();
    ok &= w.add_tensor("blk.0.ffn_up.weight", DType::Q4_K, std::vector<int64_t>{256}, q4k.data(),
                       q4k.size()).ok();
    ok &= w.add_tensor("output_norm.weight", DType::F16, std::vector<int64_t>{1, 3, 1, 1},
                       f16.data(), f16.size()).ok();
    ok &= save(w, dir + "/" + layout.name);
  }
  return ok ? 0 : 1;
}
