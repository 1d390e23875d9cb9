// The command-line tools on a tiny random model (written by slm::mkmodel at test time): slm-run
// (exit codes, bad-file message, greedy determinism, same seed same output, prompt sources),
// slm-logits (JSON lines consistent with the logits) and slm-bench (a smoke run whose JSON
// parses and carries llama-bench's fields).
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/random_model.hpp"
#include "slm/json.hpp"

namespace fs = std::filesystem;

namespace {

struct Run {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scratch directory for this process, removed at exit.
const fs::path& scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("slm-tools-test-" + std::to_string(getpid()));
    fs::create_directories(d);
    std::atexit([] { std::error_code ec; fs::remove_all(fs::temp_directory_path() / ("slm-tools-test-" + std::to_string(getpid())), ec); });
    return d;
  }();
  return dir;
}

// Runs `tool args` through the shell, stdout and stderr to files; stdin from `input` if given.
Run run(const std::string& tool, const std::string& args, const std::string& input = {}) {
  static int counter = 0;
  const fs::path base = scratch() / ("run" + std::to_string(counter++));
  std::string cmd = "'" + tool + "' " + args;
  if (!input.empty()) {
    std::ofstream(base.string() + ".in", std::ios::binary) << input;
    cmd += " <'" + base.string() + ".in'";
  } else {
    cmd += " </dev/null";
  }
  cmd += " >'" + base.string() + ".out' 2>'" + base.string() + ".err'";
  const int status = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(base.string() + ".out");
  r.err = slurp(base.string() + ".err");
  return r;
}

// Tiny models: a peaked one (default logit spread) and a flat one for sampling tests.
std::string tiny_model(const std::string& name, double logit_std) {
  const fs::path path = scratch() / (name + ".gguf");
  if (!fs::exists(path)) {
    auto spec = slm::mkmodel::preset("tiny", "qwen2");
    REQUIRE(spec.ok());
    spec->logit_std = logit_std;
    spec->type = "Q8_0";
    const slm::Status st = slm::mkmodel::write_file(*spec, path.string());
    REQUIRE_MESSAGE(st.ok(), st.message());
  }
  return path.string();
}

std::string line_with(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line;
  return {};
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

#if defined(SLM_RUN_TOOL)
TEST_CASE("slm-run: usage, bad arguments and bad model files give a one-line error") {
  CHECK(run(SLM_RUN_TOOL, "--help").code == 0);
  Run r = run(SLM_RUN_TOOL, "-m " + tiny_model("peaked", 15) + " --no-such-option");
  CHECK(r.code != 0);
  CHECK(r.err.find("--no-such-option") != std::string::npos);

  const std::string missing = (scratch() / "does-not-exist.gguf").string();
  r = run(SLM_RUN_TOOL, "-m '" + missing + "' -p hi");
  CHECK(r.code != 0);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.find("does-not-exist.gguf") != std::string::npos);
  CHECK(r.out.empty());

  const fs::path bad = scratch() / "bad.gguf";
  std::ofstream(bad, std::ios::binary) << "GGUF this is not a model at all";
  r = run(SLM_RUN_TOOL, "-m '" + bad.string() + "' -p hi");
  CHECK(r.code != 0);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.out.empty());

  r = run(SLM_RUN_TOOL, "-m " + tiny_model("peaked", 15) + " -p hi --temp -1");
  CHECK(r.code != 0);
}

TEST_CASE("slm-run: --temp 0 is deterministic and --print-ids reports prompt and generation") {
  const std::string model = tiny_model("peaked", 15);
  const std::string args = "-m " + model + " -p 'hello world' --raw --temp 0 -n 12 --print-ids";
  const Run a = run(SLM_RUN_TOOL, args);
  REQUIRE_MESSAGE(a.code == 0, a.err);
  const Run b = run(SLM_RUN_TOOL, args + " -t 2");
  REQUIRE_MESSAGE(b.code == 0, b.err);
  const std::string prompt_a = line_with(a.err, "prompt ids:");
  const std::string gen_a = line_with(a.err, "generated ids:");
  CHECK(!prompt_a.empty());
  CHECK(!gen_a.empty());
  CHECK(gen_a.size() > std::string("generated ids:").size());
  CHECK(prompt_a == line_with(b.err, "prompt ids:"));
  CHECK(gen_a == line_with(b.err, "generated ids:"));  // greedy is greedy at any thread count
  CHECK(a.out == b.out);
  CHECK(a.err.find("tok/s") != std::string::npos);

  // The same prompt from a file and from stdin gives the same ids.
  const fs::path f = scratch() / "prompt.txt";
  std::ofstream(f, std::ios::binary) << "hello world";
  const Run c = run(SLM_RUN_TOOL, "-m " + model + " -f '" + f.string() + "' --raw --temp 0 -n 12 --print-ids");
  REQUIRE_MESSAGE(c.code == 0, c.err);
  CHECK(line_with(c.err, "prompt ids:") == prompt_a);
  CHECK(line_with(c.err, "generated ids:") == gen_a);
  const Run d = run(SLM_RUN_TOOL, "-m " + model + " --raw --temp 0 -n 12 --print-ids", "hello world");
  REQUIRE_MESSAGE(d.code == 0, d.err);
  CHECK(line_with(d.err, "prompt ids:") == prompt_a);
}

TEST_CASE("slm-run: the same seed gives the same output; another seed another") {
  const std::string model = tiny_model("flat", 1.0);  // near-uniform: samples depend on the seed
  const std::string args = "-m " + model + " -p 'once upon' --raw --temp 1 --top-k 0 --top-p 1 --min-p 0 -n 24 --print-ids";
  const Run a = run(SLM_RUN_TOOL, args + " --seed 42");
  const Run b = run(SLM_RUN_TOOL, args + " --seed 42");
  const Run c = run(SLM_RUN_TOOL, args + " --seed 43");
  REQUIRE_MESSAGE(a.code == 0, a.err);
  REQUIRE(b.code == 0);
  REQUIRE(c.code == 0);
  CHECK(line_with(a.err, "generated ids:") == line_with(b.err, "generated ids:"));
  CHECK(a.out == b.out);
  // 24 draws from ~uniform over the vocabulary: equal sequences would mean the seed is ignored.
  CHECK(line_with(a.err, "generated ids:") != line_with(c.err, "generated ids:"));
}

TEST_CASE("slm-run: chat templates, multi-turn --chat, reasoning hidden or plain when piped") {
  const std::string model = tiny_model("peaked", 15);
  // The tiny model has no template of its own: without one, --chat is refused, -p runs raw.
  CHECK(run(SLM_RUN_TOOL, "-m " + model + " --chat").code != 0);
  CHECK(run(SLM_RUN_TOOL, "-m " + model + " -p hi --template no-such-template").code != 0);

  // Two turns on stdin: two prompts, two answers.
  const Run chat = run(SLM_RUN_TOOL, "-m " + model + " --chat --template chatml --temp 0 -n 6 --print-ids",
                       "hi\nhow are you\n");
  REQUIRE_MESSAGE(chat.code == 0, chat.err);
  size_t prompts = 0, answers = 0;
  std::istringstream lines(chat.err);
  std::string line;
  while (std::getline(lines, line)) {
    prompts += line.rfind("prompt ids:", 0) == 0;
    answers += line.rfind("generated ids:", 0) == 0;
  }
  CHECK(prompts == 2);
  CHECK(answers == 2);

  // An R1 template pre-fills "<think>\n": everything generated here is reasoning (a random
  // model does not close it), so --hide-reasoning prints nothing but the final newline, and
  // without it the text comes plain (no terminal escapes: stdout is a file).
  const std::string r1 = "-m " + model + " -p hi --template deepseek-r1 --temp 0 -n 8 --print-ids";
  const Run hidden = run(SLM_RUN_TOOL, r1 + " --hide-reasoning");
  REQUIRE_MESSAGE(hidden.code == 0, hidden.err);
  CHECK(hidden.out == "\n");
  const Run shown = run(SLM_RUN_TOOL, r1);
  REQUIRE_MESSAGE(shown.code == 0, shown.err);
  CHECK(shown.out.size() > 1);
  CHECK(shown.out.find("\x1b[") == std::string::npos);
  CHECK(line_with(shown.err, "generated ids:") == line_with(hidden.err, "generated ids:"));
  // The template changes the prompt: more ids than the raw text.
  const Run raw = run(SLM_RUN_TOOL, "-m " + model + " -p hi --raw --temp 0 -n 1 --print-ids");
  REQUIRE(raw.code == 0);
  CHECK(line_with(shown.err, "prompt ids:").size() > line_with(raw.err, "prompt ids:").size());
}
#endif

#if defined(SLM_LOGITS_TOOL)
TEST_CASE("slm-logits: one JSON line per position, top-K sorted and consistent with the logits") {
  const std::string model = tiny_model("peaked", 15);
  const Run r = run(SLM_LOGITS_TOOL, "-m " + model + " --ids 1,40,41,42 -k 5 --full-logits -n 2");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  std::istringstream in(r.out);
  std::string line;
  int pos = 0;
  const int64_t expect_tokens[] = {1, 40, 41, 42};
  int64_t previous_top = -1;
  while (std::getline(in, line)) {
    auto v = slm::json::parse(line);
    REQUIRE_MESSAGE(v.ok(), line);
    CHECK(v->find("pos")->as_int() == pos);
    const int64_t token = v->find("token")->as_int();
    if (pos < 4) CHECK(token == expect_tokens[pos]);
    else CHECK(token == previous_top);  // -n continues greedily with the previous top-1
    const slm::json::Value* top = v->find("top");
    const slm::json::Value* logits = v->find("logits");
    REQUIRE(top != nullptr);
    REQUIRE(logits != nullptr);
    REQUIRE(top->size() == 5);
    // Softmax of the printed logits, in double, must give the printed probabilities.
    double max = -INFINITY, sum = 0;
    for (const auto& z : logits->items()) max = std::max(max, z.as_double());
    for (const auto& z : logits->items()) sum += std::exp(z.as_double() - max);
    double last = 2;
    for (const auto& pair : top->items()) {
      const int64_t id = pair.at(0)->as_int();
      const double p = pair.at(1)->as_double();
      CHECK(p <= last);
      last = p;
      REQUIRE(id < static_cast<int64_t>(logits->size()));
      CHECK(p == doctest::Approx(std::exp(logits->at(static_cast<size_t>(id))->as_double() - max) / sum).epsilon(1e-6));
    }
    previous_top = top->at(0)->at(0)->as_int();
    ++pos;
  }
  CHECK(pos == 6);
  // The same ids from a file (commas or whitespace) give the same output.
  const fs::path ids = scratch() / "ids.txt";
  std::ofstream(ids, std::ios::binary) << "1 40\n41,42\n";
  const Run f = run(SLM_LOGITS_TOOL, "-m " + model + " --ids '" + ids.string() + "' -k 5 --full-logits -n 2");
  REQUIRE_MESSAGE(f.code == 0, f.err);
  CHECK(f.out == r.out);

  CHECK(run(SLM_LOGITS_TOOL, "-m " + model).code != 0);                      // no input
  CHECK(run(SLM_LOGITS_TOOL, "-m " + model + " --ids 1,x").code != 0);       // bad id list
  CHECK(run(SLM_LOGITS_TOOL, "-m " + model + " --ids 1,99999999").code != 0);  // id out of range
}
#endif

#if defined(SLM_BENCH_TOOL)
TEST_CASE("slm-bench: a smoke run whose JSON parses and has llama-bench's fields") {
  const std::string model = tiny_model("peaked", 15);
  const Run r = run(SLM_BENCH_TOOL, "-m " + model + " -r 1 -p 8 -n 4 -t 1,2 -o json");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  auto v = slm::json::parse(r.out);
  REQUIRE_MESSAGE(v.ok(), r.out);
  REQUIRE(v->is_array());
  REQUIRE(v->size() == 4);  // {pp8, tg4} x {1, 2} threads
  int pp = 0, tg = 0;
  for (const auto& e : v->items()) {
    for (const char* key : {"build_commit", "model_filename", "model_type", "model_size", "model_n_params",
                            "n_batch", "n_threads", "type_k", "type_v", "n_prompt", "n_gen",
                            "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns",
                            "samples_ts", "isa", "load_s", "peak_rss_bytes", "logits_hash"})
      CHECK_MESSAGE(e.find(key) != nullptr, key);
    CHECK(e.find("model_filename")->as_string() == model);
    CHECK(e.find("model_size")->as_int() > 0);
    CHECK(e.find("model_n_params")->as_int() > 0);
    CHECK(e.find("avg_ts")->as_double() > 0);
    CHECK(e.find("samples_ts")->size() == 1);
    CHECK(e.find("logits_hash")->as_string().size() == 8);
    if (e.find("n_prompt")->as_int() == 8) {
      ++pp;
      CHECK(e.find("n_gen")->as_int() == 0);
      CHECK(e.find("ttft_ms") != nullptr);
    } else {
      ++tg;
      CHECK(e.find("n_gen")->as_int() == 4);
      REQUIRE(e.find("gen_gbps") != nullptr);
      CHECK(e.find("gen_gbps")->as_double() > 0);
    }
  }
  CHECK(pp == 2);
  CHECK(tg == 2);
  // Bit-identical results at 1 and 2 threads (work is split by output rows): equal hashes.
  CHECK(v->at(0)->find("logits_hash")->as_string() == v->at(2)->find("logits_hash")->as_string());

  const Run md = run(SLM_BENCH_TOOL, "-m " + model + " -r 1 -p 8 -n 0");
  REQUIRE(md.code == 0);
  CHECK(md.out.find("| model |") != std::string::npos);
  CHECK(md.out.find("pp8") != std::string::npos);
  const Run csv = run(SLM_BENCH_TOOL, "-m " + model + " -r 1 -p 0 -n 2 -o csv");
  REQUIRE(csv.code == 0);
  CHECK(csv.out.rfind("build_commit,", 0) == 0);
  CHECK(count_lines(csv.out) == 2);
  CHECK(run(SLM_BENCH_TOOL, "-m " + model + " -o xml").code != 0);
  CHECK(run(SLM_BENCH_TOOL, "-m " + (scratch() / "nope.gguf").string()).code != 0);
}
#endif
