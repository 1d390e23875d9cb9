// slm-quantize: rewrites a GGUF model with quantized weights (llama-quantize's types and K mixes).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "convert/quantize.hpp"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: slm-quantize [--pure] [-t N] IN.gguf OUT.gguf TYPE\n"
               "  TYPE: Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q6_K F16 BF16 F32, or the K mixes Q4_K_M Q4_K_S\n"
               "        Q5_K_M (Q4_K and Q5_K are aliases of Q4_K_M and Q5_K_M, as in llama-quantize)\n"
               "  --pure   every quantizable tensor gets TYPE's base type (no per-tensor recipe; rows\n"
               "           that are not whole blocks still fall back)\n"
               "  -t N     threads (default: all cores)\n"
               "Norms, biases and other 1-D tensors, and the MoE router, are copied unchanged.\n"
               "See docs/QUANTIZATION.md for the recipe.\n");
}

double mib(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  bool pure = false;
  int n_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (n_threads < 1) n_threads = 1;
  std::string pos[3];
  int n_pos = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "--pure") {
      pure = true;
    } else if (a == "-t" || a == "--threads") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "slm-quantize: %s needs a value\n", a.c_str());
        return 2;
      }
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || v < 1 || v > 1024) {
        std::fprintf(stderr, "slm-quantize: bad thread count '%s'\n", argv[i]);
        return 2;
      }
      n_threads = static_cast<int>(v);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "slm-quantize: unknown option %s\n", a.c_str());
      usage();
      return 2;
    } else if (n_pos < 3) {
      pos[n_pos++] = a;
    } else {
      usage();
      return 2;
    }
  }
  if (n_pos != 3) {
    usage();
    return 2;
  }
  auto target = slm::convert::parse_target(pos[2]);
  if (!target) {
    std::fprintf(stderr, "slm-quantize: %s\n", target.error().message.c_str());
    return 2;
  }
  auto in = slm::gguf::File::open(pos[0]);
  if (!in) {
    std::fprintf(stderr, "slm-quantize: %s\n", in.error().message.c_str());
    return 1;
  }
  if (pos[0] == pos[1]) {
    std::fprintf(stderr, "slm-quantize: the output must not be the input file\n");
    return 2;
  }

  const bool tty = isatty(fileno(stderr));
  slm::convert::QuantizeOptions opt;
  opt.target = *target;
  opt.pure = pure;
  opt.n_threads = n_threads;
  opt.warn = [tty](const std::string& msg) {
    std::fprintf(stderr, "%swarning: %s\n", tty ? "\r\033[K" : "", msg.c_str());
  };
  if (tty) {
    opt.progress = [](size_t done, size_t total, uint64_t bin, uint64_t bout) {
      const int width = 40;
      const int filled = total ? static_cast<int>(width * done / total) : width;
      std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu tensors  %.1f MiB -> %.1f MiB", filled,
                   "========================================", width - filled, "", done, total, mib(bin),
                   mib(bout));
      std::fflush(stderr);
    };
  }
  std::fprintf(stderr, "slm-quantize: %s -> %s as %s%s, %d thread%s\n", pos[0].c_str(), pos[1].c_str(),
               target->name.c_str(), pure ? " (pure)" : "", n_threads, n_threads == 1 ? "" : "s");
  slm::convert::QuantizeReport rep;
  slm::Status st = slm::convert::quantize_file(*in, pos[1], opt, &rep);
  if (tty) std::fprintf(stderr, "\n");
  if (!st) {
    std::fprintf(stderr, "slm-quantize: %s\n", st.message().c_str());
    return 1;
  }
  int counts[64] = {};
  for (const auto& t : rep.tensors) {
    const uint32_t id = static_cast<uint32_t>(t.to);
    if (id < 64) counts[id]++;
  }
  std::string mix;
  for (uint32_t id = 0; id < 64; ++id) {
    if (counts[id] == 0) continue;
    mix += (mix.empty() ? "" : ", ") + std::to_string(counts[id]) + " " + slm::dtype_name(static_cast<slm::DType>(id));
  }
  std::printf("tensors: %zu (%s)\n", rep.tensors.size(), mix.c_str());
  if (rep.n_fallback > 0) std::printf("fallback types: %d tensor(s) (rows not whole blocks)\n", rep.n_fallback);
  std::printf("weights: %.2f MiB -> %.2f MiB, %.3f -> %.3f bits per weight (%llu weights)\n", mib(rep.bytes_in),
              mib(rep.bytes_out), rep.bpw_in(), rep.bpw_out(), static_cast<unsigned long long>(rep.n_elements));
  std::printf("file:    %.2f MiB -> %.2f MiB\n", mib(rep.file_bytes_in), mib(rep.file_bytes_out));
  return 0;
}
