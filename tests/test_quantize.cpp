// slm-quantize: the per-tensor recipe (llama.cpp's rules), the streamed rewrite (metadata,
// types, bytes = the reference quantizer's, error bounds, thread-count independence,
// requantizing), the command line, and two outside checks: llama.cpp's own quantizer (the
// prebuilt libllama of node-llama-cpp, called through llama_model_quantize) must choose the same
// types and produce the same bytes, and llama.cpp must load every type we write.
#include <doctest/doctest.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "convert/hf_convert.hpp"
#include "convert/quantize.hpp"
#include "slm/gguf.hpp"
#include "test_convert_helpers.hpp"

using namespace testconv;
using slm::DType;
namespace gguf = slm::gguf;
namespace conv = slm::convert;

namespace {

const std::vector<std::string> kTargets = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K",
                                           "Q6_K", "F16",  "BF16", "Q4_K_M", "Q4_K_S", "Q5_K_M"};

// llama.cpp's LLAMA_FTYPE values (llama.h), as an outside fact.
const std::map<std::string, uint32_t> kFtype = {{"Q8_0", 7}, {"Q4_0", 2},   {"Q4_1", 3},    {"Q5_0", 8},
                                                {"Q5_1", 9}, {"Q4_K", 15},  {"Q5_K", 17},   {"Q6_K", 18},
                                                {"F16", 1},  {"BF16", 32},  {"Q4_K_M", 15}, {"Q4_K_S", 14},
                                                {"Q5_K_M", 17}};

DType by_name(const std::string& n) { return slm::type_traits_by_name(n)->type; }

// The test model: llama-style names, 8 layers, random F32 rows; two extra tensors whose rows
// are not whole 256-blocks (96: K-quants fall back) or 32-blocks (40: everything falls back).
struct TestModel {
  std::map<std::string, std::vector<float>> w;
  std::vector<uint8_t> bytes;
};

TestModel build_model() {
  TestModel m;
  gguf::Writer wr;
  wr.set_alignment(64);
  wr.add_string("general.architecture", "llama");
  wr.add_string("general.name", "quantize-test");
  wr.add_uint32("general.file_type", 0);
  wr.add_uint32("llama.block_count", 8);
  wr.add_uint64("custom.u64", 1234567890123ull);
  const std::vector<std::string> toks = {"a", "b", "<s>"};
  wr.add_string_array("tokenizer.ggml.tokens", std::span<const std::string>(toks));
  wr.add_float32_array("custom.floats", std::vector<float>{1.5f, -2.0f});
  Rng rng(5);
  auto add = [&](const std::string& name, std::vector<int64_t> ne) {
    size_t n = 1;
    for (int64_t d : ne) n *= static_cast<size_t>(d);
    std::vector<float> v = rng.normals(n, 0.05f);
    if (ne.size() == 1) for (float& x : v) x += 1.0f;
    // A few outliers, as real weights have.
    for (size_t i = 0; i < n; i += 997) v[i] *= 6.0f;
    m.w[name] = v;
    REQUIRE(wr.add_tensor(name, DType::F32, ne, v.data(), v.size() * 4).ok());
  };
  add("token_embd.weight", {256, 12});
  for (int i = 0; i < 8; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", {256});
    add(b + "attn_q.weight", {256, 8});
    add(b + "attn_k.weight", {256, 4});
    add(b + "attn_v.weight", {256, 4});
    add(b + "attn_output.weight", {256, 8});
    add(b + "ffn_norm.weight", {256});
    add(b + "ffn_gate.weight", {256, 8});
    add(b + "ffn_up.weight", {256, 8});
    add(b + "ffn_down.weight", {512, 4});
  }
  add("blk.0.attn_k_b.weight", {96, 4});
  add("blk.0.attn_v_b.weight", {40, 4});
  add("output_norm.weight", {256});
  add("output.weight", {256, 12});
  auto b = wr.write_buffer();
  REQUIRE(b.ok());
  m.bytes = std::move(*b);
  return m;
}

// The recipe, written from llama.cpp's rules (docs/QUANTIZATION.md) for this 8-layer model:
// use_more_bits(i, 8) holds for layers 0, 3, 6, 7.
DType expected_type(const std::string& target, const std::string& name, int64_t ne0, size_t n_dims) {
  if (n_dims == 1) return DType::F32;
  const std::set<int> more = {0, 3, 6, 7};
  const bool k_m = target == "Q4_K_M" || target == "Q4_K" || target == "Q5_K_M" || target == "Q5_K";
  DType base = target == "Q4_K_M" || target == "Q4_K" || target == "Q4_K_S" ? DType::Q4_K
               : target == "Q5_K_M" || target == "Q5_K"                      ? DType::Q5_K
                                                                              : by_name(target);
  if (base == DType::F16 || base == DType::BF16) return base;
  const int layer = name.rfind("blk.", 0) == 0 ? std::atoi(name.c_str() + 4) : -1;
  DType t = base;
  if (name == "output.weight") {
    t = base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K;
  } else if (name.find("attn_v.weight") != std::string::npos) {
    if (k_m && more.count(layer)) t = DType::Q6_K;
    if (target == "Q4_K_S" && layer < 4) t = DType::Q5_K;
  } else if (name.find("ffn_down") != std::string::npos) {
    if (k_m && more.count(layer)) t = DType::Q6_K;
    if (target == "Q4_K_S" && layer < 1) t = DType::Q5_K;
  }
  if (ne0 % slm::traits(t).block_elems != 0) {
    t = t == DType::Q4_K ? DType::Q5_0 : t == DType::Q5_K ? DType::Q5_1 : t == DType::Q6_K ? DType::Q8_0 : DType::F16;
    if (ne0 % slm::traits(t).block_elems != 0) t = DType::F16;
  }
  return t;
}

// Relative RMSE bound per type (rmse / rms of the tensor) on this test's data: Gaussian rows with
// a 6x outlier every 997 weights (outliers stretch a block's scale, so every element of that
// block is rounded more coarsely). Measured worst tensor: F16 2.3e-4, BF16 2.1e-3, Q8_0 0.0080,
// Q6_K 0.024, Q5_K 0.042, Q5_1 0.045, Q5_0 0.066, Q4_K 0.084, Q4_1 0.091, Q4_0 0.121 -- the
// order the formats' step sizes predict. Bounds are ~1.3x those (the data are seeded, so the
// values only move if the quantizer does).
double rmse_bound(DType t) {
  switch (t) {
    case DType::F16: return 3e-4;
    case DType::BF16: return 3e-3;
    case DType::Q8_0: return 0.011;
    case DType::Q6_K: return 0.032;
    case DType::Q5_K: return 0.055;
    case DType::Q5_1: return 0.06;
    case DType::Q5_0: return 0.085;
    case DType::Q4_K: return 0.11;
    case DType::Q4_1: return 0.12;
    case DType::Q4_0: return 0.16;
    default: return 0;
  }
}

std::vector<float> dequant(const gguf::TensorInfo& t) {
  std::vector<float> out(t.n_elements);
  slm::traits(t.type).to_float(t.data, out.data(), static_cast<int64_t>(t.n_elements));
  return out;
}

std::vector<uint8_t> quant_rows(DType t, const std::vector<float>& x, int64_t ne0) {
  const size_t rb = slm::row_bytes(t, ne0).value();
  const int64_t rows = static_cast<int64_t>(x.size()) / ne0;
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) slm::traits(t).from_float(x.data() + r * ne0, out.data() + r * rb, ne0);
  return out;
}

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

}  // namespace

TEST_CASE("quantize: targets and llama.cpp file types") {
  for (const auto& [name, ftype] : kFtype) {
    auto t = conv::parse_target(name);
    REQUIRE(t.ok());
    CHECK(t->ftype == ftype);
  }
  CHECK(conv::parse_target("q4_k_m").ok());
  CHECK(conv::parse_target("Q3_K").error().message.find("Q4_K_M") != std::string::npos);
}

TEST_CASE("quantize: Q4_K_M recipe on a 28-layer model (R1-Distill-Qwen-1.5B depth)") {
  // llama.cpp gives attn_v and ffn_down Q6_K on layers 0-2, 5, 8, ..., 23 and 24-27.
  const std::set<int> q6 = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
  conv::ModelFacts facts;
  facts.n_layer = 28;
  facts.has_output = true;
  const auto target = conv::parse_target("Q4_K_M").value();
  conv::RecipeState st;
  st.n_attention_wv = 28;
  const int64_t ne[2] = {1536, 256};
  for (int i = 0; i < 28; ++i) {
    for (const char* t : {"attn_q", "attn_v", "ffn_down", "ffn_up"}) {
      const std::string name = "blk." + std::to_string(i) + "." + t + ".weight";
      bool fb = false;
      const DType got = conv::tensor_type(target, facts, {name, 2, ne, DType::F32}, false, st, &fb);
      const bool bumped = (std::string(t) == "attn_v" || std::string(t) == "ffn_down") && q6.count(i);
      CHECK_MESSAGE(got == (bumped ? DType::Q6_K : DType::Q4_K), name);
    }
  }
  bool fb = false;
  CHECK(conv::tensor_type(target, facts, {"output.weight", 2, ne, DType::F32}, false, st, &fb) == DType::Q6_K);
  CHECK(conv::tensor_type(target, facts, {"token_embd.weight", 2, ne, DType::F32}, false, st, &fb) == DType::Q4_K);
  facts.has_output = false;  // tied: the embedding is the LM head
  CHECK(conv::tensor_type(target, facts, {"token_embd.weight", 2, ne, DType::F32}, false, st, &fb) == DType::Q6_K);
  // --pure: the base type everywhere.
  CHECK(conv::tensor_type(target, facts, {"blk.0.attn_v.weight", 2, ne, DType::F32}, true, st, &fb) == DType::Q4_K);
  const int64_t ne1d[1] = {1536};
  CHECK(!conv::is_quantizable({"blk.0.attn_norm.weight", 1, ne1d, DType::F32}));
  CHECK(!conv::is_quantizable({"blk.1.ffn_gate_inp.weight", 2, ne, DType::F32}));
  CHECK(conv::is_quantizable({"blk.1.ffn_gate_exps.weight", 3, ne, DType::F32}));
}

TEST_CASE("quantize: every type -- metadata, recipe types, reference bytes, error bounds") {
  const fs::path dir = temp_dir("quant-all");
  const TestModel m = build_model();
  const fs::path in = dir / "in.gguf";
  write_file(in, std::string(m.bytes.begin(), m.bytes.end()));
  auto src = gguf::File::open(in.string());
  REQUIRE(src.ok());
  std::map<DType, double> worst;
  for (const std::string& name : kTargets) {
    CAPTURE(name);
    conv::QuantizeOptions o;
    o.target = conv::parse_target(name).value();
    o.n_threads = 2;
    std::vector<std::string> warnings;
    o.warn = [&](const std::string& w) { warnings.push_back(w); };
    conv::QuantizeReport rep;
    const fs::path out = dir / (name + ".gguf");
    REQUIRE(conv::quantize_file(*src, out.string(), o, &rep).ok());
    auto f = gguf::File::open(out.string());
    REQUIRE(f.ok());
    // Metadata: everything copied, file type and quantization version set, alignment kept.
    CHECK(f->get_uint("general.file_type").value() == kFtype.at(name));
    CHECK(f->get_uint("general.quantization_version").value() == 2);
    CHECK(f->alignment() == 64);
    CHECK(f->get_string("general.name").value() == "quantize-test");
    CHECK(f->get_uint("custom.u64").value() == 1234567890123ull);
    CHECK(f->get_string_array("tokenizer.ggml.tokens").value().size() == 3);
    CHECK(f->get_float_array("custom.floats").value() == std::vector<double>{1.5, -2.0});
    CHECK(f->metadata().size() == src->metadata().size() + 1);  // + quantization_version
    REQUIRE(f->tensors().size() == src->tensors().size());
    int fallbacks = 0;
    for (const auto& t : f->tensors()) {
      const std::string tn(t.name);
      CAPTURE(tn);
      const DType want = expected_type(name, tn, t.ne[0], t.n_dims);
      CHECK(t.type == want);
      if (t.type != want) continue;
      if (want == DType::F16 && name != "F16") ++fallbacks;
      const std::vector<float>& x = m.w.at(tn);
      if (t.type == DType::F32) {
        CHECK(dequant(t) == x);
        continue;
      }
      // The bytes are the reference quantizer's, row by row.
      const auto ref = quant_rows(t.type, x, t.ne[0]);
      CHECK(std::equal(ref.begin(), ref.end(), t.data));
      const auto y = dequant(t);
      double se = 0, ss = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        se += (y[i] - x[i]) * static_cast<double>(y[i] - x[i]);
        ss += static_cast<double>(x[i]) * x[i];
      }
      const double rel = std::sqrt(se / ss);
      worst[t.type] = std::max(worst[t.type], rel);
      CHECK(rel <= rmse_bound(t.type));
    }
    CHECK(rep.n_fallback == (name == "F16" || name == "BF16" ? 0 : name == "Q8_0" || name == "Q4_0" || name == "Q4_1" || name == "Q5_0" || name == "Q5_1" ? 1 : 2));
    CHECK(fallbacks == (name == "F16" || name == "BF16" ? 0 : 1));  // the 40-wide rows
    CHECK(rep.bpw_out() < rep.bpw_in());
    CHECK(warnings.size() == static_cast<size_t>(rep.n_fallback));
  }
  for (const auto& [t, e] : worst) MESSAGE(std::string(slm::dtype_name(t)) << " worst relative RMSE " << e);
  fs::remove_all(dir);
}

TEST_CASE("quantize: thread count does not change the bytes; F16 and Q8_0 inputs requantize") {
  const fs::path dir = temp_dir("quant-threads");
  const TestModel m = build_model();
  auto src = gguf::File::from_buffer(m.bytes.data(), m.bytes.size());
  REQUIRE(src.ok());
  conv::QuantizeOptions o;
  o.target = conv::parse_target("Q4_K_M").value();
  o.n_threads = 1;
  REQUIRE(conv::quantize_file(*src, (dir / "t1.gguf").string(), o, nullptr).ok());
  o.n_threads = 3;
  REQUIRE(conv::quantize_file(*src, (dir / "t3.gguf").string(), o, nullptr).ok());
  CHECK(read_all(dir / "t1.gguf") == read_all(dir / "t3.gguf"));

  // F16 -> Q8_0: the F16 values (not the original floats) are what gets quantized.
  o.target = conv::parse_target("F16").value();
  REQUIRE(conv::quantize_file(*src, (dir / "f16.gguf").string(), o, nullptr).ok());
  auto h = gguf::File::open((dir / "f16.gguf").string());
  REQUIRE(h.ok());
  o.target = conv::parse_target("Q8_0").value();
  std::vector<std::string> warnings;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  REQUIRE(conv::quantize_file(*h, (dir / "q8.gguf").string(), o, nullptr).ok());
  CHECK(std::none_of(warnings.begin(), warnings.end(), [](const std::string& w) { return w.find("requantizing") != std::string::npos; }));
  auto q = gguf::File::open((dir / "q8.gguf").string());
  REQUIRE(q.ok());
  const auto* t = q->find_tensor("blk.2.ffn_up.weight");
  REQUIRE(t->type == DType::Q8_0);
  const auto ref = quant_rows(DType::Q8_0, dequant(*h->find_tensor("blk.2.ffn_up.weight")), 256);
  CHECK(std::equal(ref.begin(), ref.end(), t->data));
  // Q8_0 -> Q4_0: works, with a warning per requantized tensor.
  o.target = conv::parse_target("Q4_0").value();
  REQUIRE(conv::quantize_file(*q, (dir / "q4.gguf").string(), o, nullptr).ok());
  CHECK(std::any_of(warnings.begin(), warnings.end(), [](const std::string& w) { return w.find("requantizing") != std::string::npos; }));
  fs::remove_all(dir);
}

#ifdef SLM_QUANTIZE_TOOL
TEST_CASE("quantize: the slm-quantize command line") {
  const fs::path dir = temp_dir("quant-cli");
  const TestModel m = build_model();
  write_file(dir / "in.gguf", std::string(m.bytes.begin(), m.bytes.end()));
  auto run = [&](const std::string& args) {
    const std::string cmd = std::string(SLM_QUANTIZE_TOOL) + " " + args + " > " + (dir / "out.txt").string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream f(dir / "out.txt");
    return std::make_pair(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, std::string((std::istreambuf_iterator<char>(f)), {}));
  };
  auto [rc, out] = run("-t 2 " + (dir / "in.gguf").string() + " " + (dir / "q.gguf").string() + " Q4_K_M");
  CHECK(rc == 0);
  CHECK(out.find("bits per weight") != std::string::npos);
  CHECK(out.find("MiB ->") != std::string::npos);
  CHECK(gguf::File::open((dir / "q.gguf").string()).ok());
  auto [rc2, out2] = run((dir / "in.gguf").string() + " " + (dir / "x.gguf").string() + " Q3_K");
  CHECK(rc2 == 2);
  CHECK(out2.find("unknown quantization type") != std::string::npos);
  auto [rc3, out3] = run((dir / "missing.gguf").string() + " " + (dir / "x.gguf").string() + " Q8_0");
  CHECK(rc3 == 1);
  CHECK(!fs::exists(dir / "x.gguf"));
  fs::remove_all(dir);
}
#endif

// ============================================================================================
// llama.cpp
// ============================================================================================

namespace {

// A small llama-architecture model llama.cpp can load (8 layers so the K-mix pattern shows), and
// a DeepSeek-V3 one (MoE: stacked experts, the MLA split whose 32-wide rows fall back).
fs::path make_llama_f32(const fs::path& dir) {
  DenseSpec s;
  s.n_layer = 8;
  s.n_ff = 256;
  s.n_head = 2;
  s.n_head_kv = 1;
  write_dense_checkpoint(dir / "hf", s);
  conv::ConvertOptions o;
  o.outtype = "F32";
  REQUIRE(conv::convert_hf((dir / "hf").string(), (dir / "f32.gguf").string(), o, nullptr).ok());
  return dir / "f32.gguf";
}

struct LlamaQuantParams {  // llama_model_quantize_params: the leading fields, then room to spare
  int32_t nthread;
  int32_t ftype;
  int32_t output_tensor_type, token_embedding_type;
  bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split;
  char rest[512];
};

[[maybe_unused]] std::string libllama_path() {
  return (node_dir() / "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.4.0.so").string();
}

}  // namespace

TEST_CASE("quantize: llama.cpp's quantizer (prebuilt libllama) picks the same types and writes the same bytes") {
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLM_TEST_ASAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(SLM_TEST_ASAN)
  const std::string missing = node_missing();
  REQUIRE_MESSAGE(missing.empty(), missing);
  void* h = dlopen(libllama_path().c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE_MESSAGE(h != nullptr, dlerror());
  auto init = reinterpret_cast<void (*)()>(dlsym(h, "llama_backend_init"));
  auto defaults = reinterpret_cast<LlamaQuantParams (*)()>(dlsym(h, "llama_model_quantize_default_params"));
  auto quantize = reinterpret_cast<uint32_t (*)(const char*, const char*, const LlamaQuantParams*)>(dlsym(h, "llama_model_quantize"));
  REQUIRE((init && defaults && quantize));
  init();
  const fs::path dir = temp_dir("quant-llama");
  // The llama model for every target; the DeepSeek-V3 one (MoE ffn_down_exps/_shexp layers read
  // from the names, attn_k_b/attn_v_b rows of 32/64 falling back) for the K mixes and Q4_0.
  write_deepseek(dir / "ds", DsSpec{}, false);
  conv::ConvertOptions co;
  co.outtype = "F32";
  REQUIRE(conv::convert_hf((dir / "ds").string(), (dir / "ds.gguf").string(), co, nullptr).ok());
  std::vector<std::pair<fs::path, std::string>> jobs;
  const fs::path llama_in = make_llama_f32(dir);
  for (const std::string& name : kTargets) jobs.push_back({llama_in, name});
  for (const char* name : {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q4_0"}) jobs.push_back({dir / "ds.gguf", name});
  for (const auto& [in, name] : jobs) {
    CAPTURE(in.string());
    CAPTURE(name);
    auto src = gguf::File::open(in.string());
    REQUIRE(src.ok());
    LlamaQuantParams p = defaults();
    p.nthread = 1;
    p.ftype = static_cast<int32_t>(kFtype.at(name));
    const fs::path theirs = dir / "theirs.gguf", ours = dir / "ours.gguf";
    REQUIRE(quantize(in.c_str(), theirs.c_str(), &p) == 0);
    conv::QuantizeOptions o;
    o.target = conv::parse_target(name).value();
    REQUIRE(conv::quantize_file(*src, ours.string(), o, nullptr).ok());
    auto a = gguf::File::open(theirs.string());
    auto b = gguf::File::open(ours.string());
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->get_uint("general.file_type").value() == b->get_uint("general.file_type").value());
    REQUIRE(a->tensors().size() == b->tensors().size());
    for (const auto& ta : a->tensors()) {
      const auto* tb = b->find_tensor(ta.name);
      REQUIRE(tb != nullptr);
      CAPTURE(std::string(ta.name));
      CHECK(slm::dtype_name(ta.type) == std::string(slm::dtype_name(tb->type)));
      if (ta.type == tb->type) CHECK(std::memcmp(ta.data, tb->data, ta.n_bytes) == 0);
    }
  }
  fs::remove_all(dir);
#else
  MESSAGE("did not run: needs x86-64 and a build without AddressSanitizer (dlopen of the prebuilt libllama)");
#endif
}

TEST_CASE("quantize: llama.cpp loads every type slm-quantize writes") {
  const std::string missing = node_missing();
  REQUIRE_MESSAGE(missing.empty(), missing);
  const fs::path dir = temp_dir("quant-node");
  const fs::path in = make_llama_f32(dir);
  auto src = gguf::File::open(in.string());
  REQUIRE(src.ok());
  std::vector<std::string> models = {in.string()};
  for (const std::string& name : kTargets) {
    conv::QuantizeOptions o;
    o.target = conv::parse_target(name).value();
    o.n_threads = 2;
    REQUIRE(conv::quantize_file(*src, (dir / (name + ".gguf")).string(), o, nullptr).ok());
    models.push_back((dir / (name + ".gguf")).string());
  }
  const std::vector<int32_t> prompt = {266, 3, 70, 256, 40};
  const auto runs = run_llama(models, prompt, 0, dir);
  REQUIRE(runs.size() == models.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    CAPTURE(models[i]);
    CHECK_MESSAGE(runs[i].ok, runs[i].error);
    if (!runs[i].ok || runs[i].probs.empty()) continue;
    // A proper distribution; for the 16-bit types and Q8_0 also close to F32's. (This random
    // model's logits are large, so 4-5 bit weights move its probabilities by up to ~0.45: that
    // measures the model, not the file, and is not checked.)
    double sum = 0;
    for (double x : runs[i].probs[0]) sum += x;
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-3));
    std::vector<double> p = runs[i].probs[0], p0 = runs[0].probs[0];
    p.resize(std::max(p.size(), p0.size()));
    p0.resize(p.size());
    double d = 0;
    for (size_t k = 0; k < p.size(); ++k) d = std::max(d, std::abs(p[k] - p0[k]));
    MESSAGE(models[i] << ": max |p - p_F32| = " << d);
    const std::string base = fs::path(models[i]).stem().string();
    if (base == "F16" || base == "BF16" || base == "Q8_0") CHECK(d < 0.05);
  }
  fs::remove_all(dir);
}
