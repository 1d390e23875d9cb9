// slm-mkmodel: writes a deterministic random-weight GGUF model of the llama or qwen2
// architecture (tiny for tests, real shapes for benchmarks), loadable by libslm and llama.cpp.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "model/random_model.hpp"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: slm-mkmodel --arch qwen2|llama|deepseek2 --preset tiny|qwen-1.5b|llama-8b|llama-1b\n"
               "                   [--type F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q6_K|Q4_K_M] [--seed N] -o OUT.gguf\n"
               "  overrides: --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N --n-vocab N\n"
               "             --n-rot N --n-ctx-train N --rope-base F --rms-eps F --logit-std F --name S\n"
               "             --qkv-bias 0|1 --tied 0|1 --llama3-rope 0|1 --llama3-as-keys 0|1\n"
               "             --llama3-factor F --llama3-orig-ctx N\n"
               "             --vocab-from FILE.gguf  (copy tokenizer.* keys; n_vocab follows it)\n"
               "%s"
               "Q4_K_M: Q4_K, with output (and token_embd when tied) and attn_v/ffn_down of layers\n"
               "  i < n/8 || i >= 7n/8 || (i - n/8) %% 3 == 2 in Q6_K (llama.cpp's recipe).\n",
               slm::mkmodel::kDeepseek2Usage);
}

bool parse_i64(const char* s, int64_t* out) {
  char* end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0') return false;
  *out = v;
  return true;
}
bool parse_f64(const char* s, double* out) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s || *end != '\0') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string arch = "qwen2", preset = "tiny", out;
  // First pass: arch and preset decide the defaults the other flags override.
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--arch")) arch = argv[i + 1];
    if (!std::strcmp(argv[i], "--preset")) preset = argv[i + 1];
  }
  auto spec_or = slm::mkmodel::preset(preset, arch);
  if (!spec_or) {
    std::fprintf(stderr, "slm-mkmodel: %s\n", spec_or.error().message.c_str());
    return 2;
  }
  slm::mkmodel::Spec spec = *spec_or;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "slm-mkmodel: %s needs a value\n", a.c_str());
      usage();
      return 2;
    }
    const char* v = argv[++i];
    int64_t n = 0;
    bool ok = true;
    if (a == "--arch" || a == "--preset") {
    } else if (a == "-o" || a == "--output") {
      out = v;
    } else if (a == "--type") {
      spec.type = v;
    } else if (a == "--name") {
      spec.name = v;
    } else if (a == "--vocab-from") {
      spec.vocab_from = v;
    } else if (a == "--seed") {
      ok = parse_i64(v, &n) && n >= 0, spec.seed = static_cast<uint64_t>(n);
    } else if (a == "--n-embd") {
      ok = parse_i64(v, &spec.n_embd);
    } else if (a == "--n-layer") {
      ok = parse_i64(v, &spec.n_layer);
    } else if (a == "--n-head") {
      ok = parse_i64(v, &spec.n_head);
    } else if (a == "--n-head-kv") {
      ok = parse_i64(v, &spec.n_head_kv);
    } else if (a == "--n-ff") {
      ok = parse_i64(v, &spec.n_ff);
    } else if (a == "--n-vocab") {
      ok = parse_i64(v, &spec.n_vocab);
    } else if (a == "--n-rot") {
      ok = parse_i64(v, &spec.n_rot);
    } else if (a == "--n-ctx-train") {
      ok = parse_i64(v, &spec.n_ctx_train);
    } else if (a == "--llama3-orig-ctx") {
      ok = parse_i64(v, &spec.llama3_original_ctx);
    } else if (a == "--rope-base") {
      ok = parse_f64(v, &spec.rope_base);
    } else if (a == "--rms-eps") {
      ok = parse_f64(v, &spec.rms_eps);
    } else if (a == "--logit-std") {
      ok = parse_f64(v, &spec.logit_std);
    } else if (a == "--llama3-factor") {
      ok = parse_f64(v, &spec.llama3_factor);
    } else if (a == "--qkv-bias" || a == "--tied" || a == "--llama3-rope" || a == "--llama3-as-keys") {
      ok = parse_i64(v, &n) && (n == 0 || n == 1);
      bool* dst = a == "--qkv-bias" ? &spec.qkv_bias : a == "--tied" ? &spec.tied_output
                  : a == "--llama3-rope" ? &spec.llama3_rope : &spec.llama3_as_keys;
      *dst = n == 1;
    } else if (a.starts_with("--ds-")) {  // deepseek2 options (random_deepseek2.cpp)
      slm::Status st = slm::mkmodel::deepseek2_option(spec, a, v);
      if (!st) {
        std::fprintf(stderr, "slm-mkmodel: %s\n", st.message().c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr, "slm-mkmodel: unknown option %s\n", a.c_str());
      usage();
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "slm-mkmodel: bad value for %s: '%s'\n", a.c_str(), v);
      return 2;
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "slm-mkmodel: -o OUT.gguf is required\n");
    usage();
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  slm::Status s = slm::mkmodel::write_file(spec, out);
  if (!s) {
    std::fprintf(stderr, "slm-mkmodel: %s\n", s.message().c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "slm-mkmodel: wrote %s (%s, %s, seed %llu) in %.1f s\n", out.c_str(), spec.arch.c_str(),
               spec.type.c_str(), static_cast<unsigned long long>(spec.seed), secs);
  return 0;
}
