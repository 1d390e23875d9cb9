// slm-convert: converts a Hugging Face model directory (config.json, *.safetensors, tokenizer
// files) to a GGUF file that llama.cpp and libslm load.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "convert/hf_convert.hpp"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: slm-convert MODEL_DIR -o OUT.gguf [--outtype auto|F32|F16|BF16] [--pre NAME]\n"
               "                   [--keep-kv-b] [--name NAME] [-t N]\n"
               "  Architectures: Qwen2ForCausalLM, LlamaForCausalLM, DeepseekV2ForCausalLM,\n"
               "  DeepseekV3ForCausalLM. --outtype auto: BF16 for a BF16 checkpoint, else F16; norms,\n"
               "  biases and the MoE router are always F32.\n"
               "  --pre NAME    tokenizer.ggml.pre to write (default: recognised from the regex)\n"
               "  --keep-kv-b   deepseek2: write attn_kv_b (older layout) instead of attn_k_b/attn_v_b\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, out;
  slm::convert::ConvertOptions opt;
  opt.n_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (opt.n_threads < 1) opt.n_threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "slm-convert: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "-o" || a == "--outfile") {
      out = value();
    } else if (a == "--outtype") {
      opt.outtype = value();
    } else if (a == "--pre") {
      opt.pre = value();
    } else if (a == "--name") {
      opt.name = value();
    } else if (a == "--keep-kv-b") {
      opt.keep_kv_b = true;
    } else if (a == "-t" || a == "--threads") {
      const char* v = value();
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (end == v || *end != '\0' || n < 1 || n > 1024) {
        std::fprintf(stderr, "slm-convert: bad thread count '%s'\n", v);
        return 2;
      }
      opt.n_threads = static_cast<int>(n);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "slm-convert: unknown option %s\n", a.c_str());
      usage();
      return 2;
    } else if (dir.empty()) {
      dir = a;
    } else {
      usage();
      return 2;
    }
  }
  if (dir.empty() || out.empty()) {
    usage();
    return 2;
  }
  const bool tty = isatty(fileno(stderr));
  opt.warn = [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); };
  if (tty) {
    opt.progress = [](size_t done, size_t total) {
      std::fprintf(stderr, "\r%zu/%zu tensors", done, total);
      std::fflush(stderr);
    };
  }
  slm::convert::ConvertReport rep;
  slm::Status st = slm::convert::convert_hf(dir, out, opt, &rep);
  if (tty) std::fprintf(stderr, "\n");
  if (!st) {
    std::fprintf(stderr, "slm-convert: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("%s: arch %s, %zu tensors, %llu parameters, weights %s, vocab %llu (pre '%s')\n", out.c_str(),
              rep.arch.c_str(), rep.n_tensors, static_cast<unsigned long long>(rep.n_params),
              slm::dtype_name(rep.outtype), static_cast<unsigned long long>(rep.n_vocab), rep.pre.c_str());
  return 0;
}
