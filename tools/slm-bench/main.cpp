// slm-bench: prompt-processing and generation speed of GGUF models, in the manner of llama.cpp's
// llama-bench (same test names, same JSON field names), plus what our runs also report: effective
// memory bandwidth of generation, time to first token, load time, peak RSS, a logits hash.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/tool_common.hpp"
#include "slm/cpu.hpp"
#include "slm/dtype.hpp"
#include "slm/gguf.hpp"
#include "slm/json.hpp"
#include "slm/model.hpp"

namespace {

const char* kUsage =
    "usage: slm-bench -m MODEL.gguf [-m MODEL2.gguf ...] [options]\n"
    "\n"
    "  -m, --model FILE[,FILE]  models (repeatable)\n"
    "  -p, --n-prompt LIST      prompt lengths, e.g. 128,512 (default 512; 0 = no pp test)\n"
    "  -n, --n-gen LIST         generation lengths (default 128; 0 = no tg test)\n"
    "  -t, --threads LIST       thread counts, e.g. 1,2 (default 1)\n"
    "  -r, --repetitions N      measured runs per test, after one warm-up run (default 5)\n"
    "  -b, --batch N            tokens per prompt step (default 512)\n"
    "      --kv f16|f32         KV cache type (default f16)\n"
    "      --isa NAME           force the kernel level (scalar, avx2, avxvnni, avx512, avx512vnni, amx, ...)\n"
    "      --no-interleave      use every weight in place from the map (no load-time Q4_0/Q8_0 interleaving)\n"
    "  -o, --output md|json|jsonl|csv   output format (default md)\n"
    "\n"
    "Tests: ppN evaluates N prompt tokens in one call on an empty context (t/s = N / time);\n"
    "tgN generates N tokens one at a time from BOS, greedily (t/s = N / time). GB/s of a tg test\n"
    "= bytes of weights read per token (all tensors but the token embedding, of which one row)\n"
    "plus the KV cache read at the mean position, times tokens/s.\n";

struct Options {
  std::vector<std::string> models;
  std::vector<long long> n_prompt{512};
  std::vector<long long> n_gen{128};
  std::vector<long long> threads{1};
  int reps = 5;
  int n_batch = 512;
  slm::KvType kv = slm::KvType::F16;
  std::string isa;
  bool interleave = true;
  std::string output = "md";
};

struct Result {
  // Model
  std::string filename;
  std::string model_type;  // "qwen2 1.5B Q4_0"
  std::string arch;
  std::string type_name;   // main weight type
  uint64_t model_size = 0;
  uint64_t n_params = 0;
  // Test
  int n_threads = 1;
  int n_prompt = 0;
  int n_gen = 0;
  int n_batch = 512;
  std::string isa;
  std::string kv;
  std::string test_time;
  std::vector<double> samples_ns;
  std::vector<double> samples_cpu_s;  // process CPU seconds (all threads) of each run
  // Extras
  double gen_bytes_per_token = 0;  // weights + mean KV read per generated token
  double ttft_ms = 0;              // pp tests: mean time to the first sampled token
  double load_s = 0;
  size_t interleaved_bytes = 0;  // weights copied into the interleaved layout at load
  size_t peak_rss = 0;
  std::string logits_hash;

  int n_tokens() const { return n_prompt + n_gen; }
  std::vector<double> samples_ts() const {
    std::vector<double> v;
    for (double ns : samples_ns) v.push_back(n_tokens() * 1e9 / ns);
    return v;
  }
  std::string test_name() const {
    return n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
  }
};

int fail(const std::string& message) {
  std::fprintf(stderr, "slm-bench: %s\n", message.c_str());
  return 1;
}

std::string iso_time_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "Intel(R) Xeon(R) Processor" from /proc/cpuinfo (llama-bench's cpu_info); empty elsewhere.
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return {};
}

std::string basename_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The weight type holding most bytes among the matrices: "Q4_0" for a Q4_0 file whose norms are
// F32 and whose output matrix is Q6_K.
std::string main_weight_type(const slm::gguf::File& file) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& t : file.tensors())
    if (t.n_dims >= 2) bytes[slm::dtype_name(t.type)] += t.n_bytes;
  std::string best = "?";
  uint64_t most = 0;
  for (const auto& [name, b] : bytes)
    if (b > most) most = b, best = name;
  return best;
}

// "1.5B", "260K": the parameter count as llama-bench prints it in model_type.
std::string params_label(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.1fB", n / 1e9);
  else if (n >= 1000000ull) std::snprintf(buf, sizeof buf, "%.0fM", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0fK", n / 1e3);
  return buf;
}

// Bytes of weights one decode step reads: every tensor except the token embedding, of which only
// one row is gathered; with a tied output the embedding is read whole as the LM head.
double weight_bytes_per_token(const slm::Model& model) {
  double total = 0;
  const auto* embd = model.file().find_tensor("token_embd.weight");
  for (const auto& t : model.file().tensors()) total += static_cast<double>(t.n_bytes);
  if (embd && !model.info().tied_output && embd->rows() > 0)
    total -= static_cast<double>(embd->n_bytes) * (1.0 - 1.0 / static_cast<double>(embd->rows()));
  return total;
}

// Deterministic pseudo-random prompt tokens (llama-bench also uses random tokens): a fixed LCG
// so every run and every engine build sees the same input.
std::vector<int32_t> prompt_tokens(int n, int64_t n_vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (auto& id : ids) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(n_vocab));
  }
  return ids;
}

struct RunOut {
  double ns = 0;
  double cpu_s = 0;
  double ttft_ns = 0;
  uint32_t hash = 0;
};

slm::Expected<RunOut> run_pp(slm::Context& ctx, const std::vector<int32_t>& tokens) {
  ctx.reset();
  RunOut r;
  const double c0 = slm::tool::process_cpu_seconds();
  const double t0 = slm::tool::now_seconds();
  slm::Status st = ctx.eval(tokens);
  if (!st) return st.error();
  const double t1 = slm::tool::now_seconds();
  r.cpu_s = slm::tool::process_cpu_seconds() - c0;
  const int32_t first = slm::argmax(ctx.logits());
  const double t2 = slm::tool::now_seconds();
  (void)first;
  r.ns = (t1 - t0) * 1e9;
  r.ttft_ns = (t2 - t0) * 1e9;
  r.hash = slm::tool::logits_hash(ctx.logits());
  return r;
}

slm::Expected<RunOut> run_tg(slm::Context& ctx, int n_gen, int32_t bos) {
  ctx.reset();
  RunOut r;
  int32_t tok = bos;
  const double c0 = slm::tool::process_cpu_seconds();
  const double t0 = slm::tool::now_seconds();
  for (int i = 0; i < n_gen; ++i) {
    slm::Status st = ctx.eval(std::span<const int32_t>(&tok, 1));
    if (!st) return st.error();
    tok = slm::argmax(ctx.logits());
  }
  r.ns = (slm::tool::now_seconds() - t0) * 1e9;
  r.cpu_s = slm::tool::process_cpu_seconds() - c0;
  r.hash = slm::tool::logits_hash(ctx.logits());
  return r;
}

slm::Status bench_model(const Options& o, const std::string& path, std::vector<Result>& results) {
  const double t0 = slm::tool::now_seconds();
  slm::ModelParams mp;
  mp.interleave_weights = o.interleave;
  auto loaded = slm::Model::load(path, mp);
  if (!loaded) return loaded.error();
  const double load_s = slm::tool::now_seconds() - t0;
  const slm::Model& model = **loaded;
  const slm::ModelInfo& info = model.info();

  Result base;
  base.filename = path;
  base.arch = info.arch;
  base.type_name = main_weight_type(model.file());
  base.model_size = info.weights_bytes;
  base.n_params = static_cast<uint64_t>(info.n_params);
  base.model_type = info.arch + " " + params_label(base.n_params) + " " + base.type_name;
  base.n_batch = o.n_batch;
  base.isa = slm::isa_level_name(slm::default_isa_level());
  base.kv = slm::kv_type_name(o.kv);
  base.load_s = load_s;
  base.interleaved_bytes = info.interleaved_bytes;
  int32_t bos = 1;
  if (auto b = model.file().get_uint("tokenizer.ggml.bos_token_id"); b && *b < static_cast<uint64_t>(info.n_vocab))
    bos = static_cast<int32_t>(*b);
  const double weights_per_token = weight_bytes_per_token(model);

  const long long max_p = *std::max_element(o.n_prompt.begin(), o.n_prompt.end());
  const long long max_n = *std::max_element(o.n_gen.begin(), o.n_gen.end());
  for (long long threads : o.threads) {
    slm::ContextParams cp;
    cp.n_ctx = static_cast<int>(std::max<long long>({max_p, max_n, 1}) + 1);
    cp.n_batch = o.n_batch;
    cp.n_threads = static_cast<int>(threads);
    cp.kv_type = o.kv;
    auto made = model.create_context(cp);
    if (!made) return made.error();
    slm::Context& ctx = **made;
    const double kv_bytes_per_pos = static_cast<double>(ctx.kv_cache_bytes()) / cp.n_ctx;

    auto measure = [&](int n_prompt, int n_gen) -> slm::Status {
      Result r = base;
      r.n_threads = static_cast<int>(threads);
      r.n_prompt = n_prompt;
      r.n_gen = n_gen;
      r.test_time = iso_time_now();
      const std::vector<int32_t> tokens = prompt_tokens(n_prompt, info.n_vocab);
      double ttft = 0;
      for (int rep = -1; rep < o.reps; ++rep) {  // rep -1: the warm-up run, not recorded
        auto out = n_prompt > 0 ? run_pp(ctx, tokens) : run_tg(ctx, n_gen, bos);
        if (!out) return out.error();
        if (rep < 0) continue;
        r.samples_ns.push_back(out->ns);
        r.samples_cpu_s.push_back(out->cpu_s);
        ttft += out->ttft_ns;
        r.logits_hash = slm::tool::hex32(out->hash);
      }
      if (n_prompt > 0) r.ttft_ms = ttft / o.reps / 1e6;
      // The n-th generated token reads n earlier positions: a tg run reads (n_gen - 1) / 2 + 1
      // positions of KV on average.
      if (n_gen > 0) r.gen_bytes_per_token = weights_per_token + kv_bytes_per_pos * ((n_gen - 1) / 2.0 + 1);
      r.peak_rss = slm::tool::peak_rss_bytes();
      std::fprintf(stderr, "slm-bench: %s %s t=%d: %.2f t/s\n", basename_of(path).c_str(),
                   r.test_name().c_str(), r.n_threads,
                   slm::tool::mean_std(r.samples_ts()).mean);
      results.push_back(std::move(r));
      return slm::Status::success();
    };
    for (long long p : o.n_prompt)
      if (p > 0) SLM_TRY(measure(static_cast<int>(p), 0));
    for (long long n : o.n_gen)
      if (n > 0) SLM_TRY(measure(0, static_cast<int>(n)));
  }
  return slm::Status::success();
}

// ============================================================================================
// Output
// ============================================================================================

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void print_markdown(const std::vector<Result>& results) {
  std::printf("| model | size | params | type | threads | ISA | test | t/s | GB/s | TTFT ms | logits |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | --- | --- | ---: | ---: | ---: | --- |\n");
  for (const auto& r : results) {
    const auto ts = slm::tool::mean_std(r.samples_ts());
    const std::string gbs = r.n_gen > 0 ? fmt("%.2f", r.gen_bytes_per_token * ts.mean / 1e9) : "";
    const std::string ttft = r.n_prompt > 0 ? fmt("%.2f", r.ttft_ms) : "";
    std::printf("| %s | %s | %s | %s | %d | %s | %s | %.2f ± %.2f | %s | %s | %s |\n",
                basename_of(r.filename).c_str(),
                slm::tool::human_bytes(static_cast<double>(r.model_size)).c_str(),
                slm::tool::human(static_cast<double>(r.n_params), "").c_str(), r.type_name.c_str(),
                r.n_threads, r.isa.c_str(), r.test_name().c_str(), ts.mean, ts.stdev, gbs.c_str(),
                ttft.c_str(), r.logits_hash.c_str());
  }
  // Load time and memory are per model, not per test.
  std::string last;
  for (const auto& r : results) {
    if (r.filename == last) continue;
    last = r.filename;
    size_t rss = 0;
    for (const auto& q : results)
      if (q.filename == r.filename) rss = std::max(rss, q.peak_rss);
    std::printf("\n%s: load %.3f s, peak RSS %s, KV %s, interleaved at load %s", basename_of(r.filename).c_str(),
                r.load_s, slm::tool::human_bytes(static_cast<double>(rss)).c_str(), r.kv.c_str(),
                slm::tool::human_bytes(static_cast<double>(r.interleaved_bytes)).c_str());
  }
  std::printf("\n");
}

slm::json::Value to_json(const Result& r) {
  using slm::json::Value;
  const auto ts = slm::tool::mean_std(r.samples_ts());
  const auto ns = slm::tool::mean_std(r.samples_ns);
  Value v = Value::object();
  // llama-bench's fields first (same names and meanings), then ours.
  v.add_member("build_commit", Value::string("libslm"));
  v.add_member("build_number", Value::integer(0));
  static const std::string cpu = cpu_model_name();
  v.add_member("cpu_info", Value::string(cpu));
  v.add_member("gpu_info", Value::string(""));
  v.add_member("backends", Value::string("CPU"));
  v.add_member("model_filename", Value::string(r.filename));
  v.add_member("model_type", Value::string(r.model_type));
  v.add_member("model_size", Value::integer(static_cast<int64_t>(r.model_size)));
  v.add_member("model_n_params", Value::integer(static_cast<int64_t>(r.n_params)));
  v.add_member("n_batch", Value::integer(r.n_batch));
  v.add_member("n_ubatch", Value::integer(r.n_batch));
  v.add_member("n_threads", Value::integer(r.n_threads));
  v.add_member("type_k", Value::string(r.kv));
  v.add_member("type_v", Value::string(r.kv));
  v.add_member("n_gpu_layers", Value::integer(0));
  v.add_member("use_mmap", Value::boolean(true));
  v.add_member("embeddings", Value::boolean(false));
  v.add_member("n_prompt", Value::integer(r.n_prompt));
  v.add_member("n_gen", Value::integer(r.n_gen));
  v.add_member("n_depth", Value::integer(0));
  v.add_member("test_time", Value::string(r.test_time));
  v.add_member("avg_ns", Value::integer(static_cast<int64_t>(std::llround(ns.mean))));
  v.add_member("stddev_ns", Value::integer(static_cast<int64_t>(std::llround(ns.stdev))));
  v.add_member("avg_ts", Value::number(ts.mean));
  v.add_member("stddev_ts", Value::number(ts.stdev));
  Value samples_ns = Value::array(), samples_ts = Value::array();
  for (double x : r.samples_ns) samples_ns.push_back(Value::integer(static_cast<int64_t>(std::llround(x))));
  for (double x : r.samples_ts()) samples_ts.push_back(Value::number(x));
  v.add_member("samples_ns", std::move(samples_ns));
  v.add_member("samples_ts", std::move(samples_ts));
  Value samples_cpu = Value::array();
  for (double x : r.samples_cpu_s) samples_cpu.push_back(Value::number(x));
  v.add_member("samples_cpu_s", std::move(samples_cpu));
  v.add_member("isa", Value::string(r.isa));
  v.add_member("model_arch", Value::string(r.arch));
  v.add_member("weight_type", Value::string(r.type_name));
  v.add_member("load_s", Value::number(r.load_s));
  v.add_member("peak_rss_bytes", Value::integer(static_cast<int64_t>(r.peak_rss)));
  v.add_member("logits_hash", Value::string(r.logits_hash));
  if (r.n_prompt > 0) v.add_member("ttft_ms", Value::number(r.ttft_ms));
  if (r.n_gen > 0) {
    v.add_member("gen_bytes_per_token", Value::number(r.gen_bytes_per_token));
    v.add_member("gen_gbps", Value::number(r.gen_bytes_per_token * ts.mean / 1e9));
  }
  return v;
}

std::string csv_field(const slm::json::Value& v) {
  if (v.is_string()) {
    std::string s = "\"";
    for (char c : v.as_string()) s += c == '"' ? std::string("\"\"") : std::string(1, c);
    return s + "\"";
  }
  if (v.is_array()) {
    std::string s = "\"";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) s += ';';
      s += slm::json::to_string(*v.at(i));
    }
    return s + "\"";
  }
  return slm::json::to_string(v);
}

void print_results(const Options& o, const std::vector<Result>& results) {
  if (o.output == "md") {
    print_markdown(results);
  } else if (o.output == "json") {
    slm::json::Value all = slm::json::Value::array();
    for (const auto& r : results) all.push_back(to_json(r));
    std::printf("%s\n", slm::json::to_string(all, 2).c_str());
  } else if (o.output == "jsonl") {
    for (const auto& r : results) std::printf("%s\n", slm::json::to_string(to_json(r)).c_str());
  } else {  // csv
    bool header = false;
    for (const auto& r : results) {
      const slm::json::Value v = to_json(r);
      if (!header) {
        std::string h;
        for (const auto& m : v.members()) {
          if (!h.empty()) h += ',';
          h += m.key;
        }
        std::printf("%s\n", h.c_str());
        header = true;
      }
      std::string line;
      for (const auto& m : v.members()) {  // appended piece by piece: GCC 12 -O3 warns (-Wrestrict,
        if (!line.empty()) line += ',';     // a false positive) on "," + std::string temporaries
        line += csv_field(m.value);
      }
      std::printf("%s\n", line.c_str());
    }
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  slm::tool::Args a(argc, argv);
  auto list = [&](std::vector<long long>& out, long long min, long long max) {
    const std::string opt(a.current());
    auto v = slm::tool::parse_int_list(a.value(), min, max);
    if (!v) a.fail(opt + ": " + v.error().message);
    else out = std::move(*v);
  };
  while (a.next()) {
    if (a.is("-h", "--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a.is("-m", "--model")) {
      std::string v = a.value();
      size_t start = 0;
      while (start <= v.size()) {
        const size_t comma = v.find(',', start);
        const std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) o.models.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (a.is("-p", "--n-prompt")) {
      list(o.n_prompt, 0, 1 << 20);
    } else if (a.is("-n", "--n-gen")) {
      list(o.n_gen, 0, 1 << 20);
    } else if (a.is("-t", "--threads")) {
      list(o.threads, 1, 1024);
    } else if (a.is("-r", "--repetitions")) {
      o.reps = static_cast<int>(a.int_value(1, 1000000));
    } else if (a.is("-b", "--batch")) {
      o.n_batch = static_cast<int>(a.int_value(1, 1 << 16));
    } else if (a.is("--kv")) {
      o.kv = a.kv_value();
    } else if (a.is("--isa")) {
      o.isa = a.value();
    } else if (a.is("--no-interleave")) {
      o.interleave = false;
    } else if (a.is("-o", "--output")) {
      o.output = a.value();
      if (o.output != "md" && o.output != "json" && o.output != "jsonl" && o.output != "csv")
        a.fail("-o: expected md, json, jsonl or csv, got '" + o.output + "'");
    } else {
      a.unknown();
    }
  }
  if (!a.error().empty()) return fail(a.error());
  if (o.models.empty()) return fail("no model given (-m FILE); see --help");
  if (!o.isa.empty()) {
    slm::Status st = slm::tool::force_isa(o.isa);
    if (!st) return fail(st.message());
  }
  std::vector<Result> results;
  for (const auto& path : o.models) {
    slm::Status st = bench_model(o, path, results);
    if (!st) return fail(path + ": " + st.message());
  }
  print_results(o, results);
  return 0;
}
