// Tests on the model shipped in weights/ (issue 10): the project's own DeepSeek-V3-architecture
// log explainer, trained by training/train.py. Real weights catch what random ones cannot.
//
// Data (tests/data/logexplainer/, written by training/export_tests.py from the training run):
//   heldout.jsonl   held-out examples never seen in training: prompt (chat template up to
//                   <｜Assistant｜>), completion (<think> reasoning, answer, EOS), kinds,
//                   keywords, and the token ids from the training program's tokenizer;
//   reference.json  per example, the training program's summed -log p over the completion
//                   tokens (PyTorch, float32 weights, float64 log-softmax) -- its held-out loss.
//
// Checks (the list):
//   (a) libslm's mean NLL per completion token over the held-out examples equals the training
//       program's within kLossTolerance (the shipped file is Q8_0: weights rounded to 8 bits,
//       activations too in the integer kernels, K/V cache in F16 -- all absent in training);
//   (b) the same at every kernel level this CPU runs and for 1, 2 and 3 threads (one level's
//       results must be identical for every thread count: work is split by output rows), and
//       every level within kLevelTolerance of the scalar level on the same tokens;
//   (c) requantized from the shipped Q8_0 by the library's quantizer (slm-quantize's code) to
//       Q4_0 and Q4_K_M, the loss rises by less than kQ4LossRise (measured: +0.004 and +0.002
//       nats over 60 examples);
//   (d) greedy answers to held-out excerpts name the incident kind: the answer (text after
//       </think>) contains every keyword of the example's kinds (training/README.md lists
//       them; e.g. "out of memory" for an OOM kill), case-insensitively, in >= 90% of examples
//       (measured: 184 / 200 = 92%, all levels alike).
//   (e) agreement with llama.cpp is tests/node/llama_oracle.mjs --trained (ctest
//       test_llama_oracle_shipped).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "convert/quantize.hpp"
#include "kernels/kernels.hpp"
#include "model_test_util.hpp"
#include "slm/cpu.hpp"
#include "slm/gguf.hpp"
#include "slm/json.hpp"
#include "slm/model.hpp"
#include "slm/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using namespace slm;

const std::string kModelPath = std::string(SLM_TEST_SOURCE_DIR) + "/weights/slm-logexplainer-q8_0.gguf";
const std::string kDataDir = std::string(SLM_TEST_SOURCE_DIR) + "/tests/data/logexplainer";

// (a), (b): |libslm mean NLL - training program's| in nats per token, over the same tokens.
// Measured: +0.0007 over the 200 examples, +0.002 over the first 20, +0.015 over the first 3
// (few tokens: a handful of confident tokens dominate); a wrong kernel or layout moves it by
// tenths to whole nats.
constexpr double kLossTolerance = 0.02;
// (b): most two kernel levels may differ on the same tokens (measured: 2e-4 scalar vs SIMD).
constexpr double kLevelTolerance = 0.003;
// (c): most the mean NLL may rise from the shipped Q8_0 file to its Q4_0 / Q4_K_M requantization.
constexpr double kQ4LossRise = 0.05;
// (d): share of held-out examples whose greedy answer must name every incident kind.
constexpr double kKeywordHitRate = 0.90;

// Debug and sanitizer builds (CI runs the suite again under ASan+UBSan) are 10-30x slower:
// there the checks run on fewer examples (printed), with the same tolerances.
#if defined(__SANITIZE_ADDRESS__) || !defined(NDEBUG)
constexpr bool kSlowBuild = true;
#else
constexpr bool kSlowBuild = false;
#endif
size_t scaled(size_t n, size_t slow) { return kSlowBuild ? std::min(n, slow) : n; }

struct Example {
  std::string id, prompt, completion;
  std::vector<std::string> keywords;
  std::vector<int32_t> ids;
  double ref_nll_sum = 0;
  int64_t ref_n_tokens = 0;
};

std::vector<Example> load_examples() {
  std::vector<Example> out;
  std::ifstream in(kDataDir + "/heldout.jsonl");
  REQUIRE_MESSAGE(in.good(), "cannot open " << kDataDir << "/heldout.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto v = json::parse(line);
    REQUIRE_MESSAGE(v.ok(), v.error().message);
    Example e;
    e.id = std::string(v->find("id")->as_string());
    e.prompt = std::string(v->find("prompt")->as_string());
    e.completion = std::string(v->find("completion")->as_string());
    for (const json::Value& k : v->find("keywords")->items()) e.keywords.emplace_back(k.as_string());
    for (const json::Value& t : v->find("ids")->items()) e.ids.push_back(static_cast<int32_t>(t.as_int()));
    out.push_back(std::move(e));
  }
  auto ref = json::parse_file(kDataDir + "/reference.json");
  REQUIRE_MESSAGE(ref.ok(), ref.error().message);
  const json::Value* exs = ref->find("examples");
  REQUIRE(exs != nullptr);
  REQUIRE(exs->size() == out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const json::Value& r = *exs->at(i);
    REQUIRE(std::string(r.find("id")->as_string()) == out[i].id);
    out[i].ref_nll_sum = r.find("nll_sum")->as_double();
    out[i].ref_n_tokens = r.find("n_tokens")->as_int();
  }
  REQUIRE(out.size() >= 100);
  return out;
}

const std::vector<Example>& examples() {
  static const std::vector<Example> e = load_examples();
  return e;
}

std::unique_ptr<Model> load_model(const std::string& path, bool interleave = true) {
  ModelParams mp;
  mp.interleave_weights = interleave;
  auto m = Model::load(path, mp);
  REQUIRE_MESSAGE(m.ok(), path << ": " << (m.ok() ? "" : m.error().message));
  REQUIRE((*m)->tokenizer() != nullptr);
  return std::move(*m);
}

// First target position: the token after <｜Assistant｜> (train.py's loss starts there).
int64_t completion_start(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  auto asst = tok.encode("<｜Assistant｜>", {.add_bos = false, .parse_special = true});
  REQUIRE(asst.ok());
  REQUIRE(asst->size() == 1);
  auto it = std::find(ids.begin(), ids.end(), (*asst)[0]);
  REQUIRE(it != ids.end());
  return (it - ids.begin()) + 1;
}

struct Loss {
  double nll_sum = 0;
  int64_t n_tokens = 0;
  double ref_sum = 0;  // the training program's sum over the same examples
  double mean() const { return nll_sum / static_cast<double>(n_tokens); }
  double ref_mean() const { return ref_sum / static_cast<double>(n_tokens); }
};

// -log p of each completion token, teacher-forced, one example per fresh KV cache.
Loss heldout_loss(const Model& model, size_t n_examples, ContextParams cp) {
  cp.n_ctx = 640;
  auto ctx = Context::create(model, cp);
  REQUIRE_MESSAGE(ctx.ok(), (ctx.ok() ? "" : ctx.error().message));
  const Tokenizer& tok = *model.tokenizer();
  Loss loss;
  std::vector<double> logp;
  for (size_t e = 0; e < n_examples && e < examples().size(); ++e) {
    const Example& ex = examples()[e];
    const int64_t start = completion_start(tok, ex.ids);
    (*ctx)->reset();
    REQUIRE((*ctx)->eval(ex.ids, /*all_logits=*/true).ok());
    for (int64_t t = start - 1; t + 1 < static_cast<int64_t>(ex.ids.size()); ++t) {
      std::span<const float> z = (*ctx)->logits(static_cast<int>(t));
      REQUIRE(!z.empty());
      loss.nll_sum += slm_test::nll(z, ex.ids[static_cast<size_t>(t + 1)]);
      ++loss.n_tokens;
    }
    CHECK(loss.n_tokens > 0);
    loss.ref_sum += ex.ref_nll_sum;
  }
  int64_t ref_tokens = 0;
  for (size_t e = 0; e < n_examples && e < examples().size(); ++e) ref_tokens += examples()[e].ref_n_tokens;
  REQUIRE(ref_tokens == loss.n_tokens);  // the same tokens were scored
  return loss;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<IsaLevel> runnable_levels() {
  std::vector<IsaLevel> out;
  for (int i = 0; i < kIsaLevelCount; ++i)
    if (isa_level_supported(static_cast<IsaLevel>(i))) out.push_back(static_cast<IsaLevel>(i));
  return out;
}

}  // namespace

TEST_CASE("shipped model: tokenizer gives the training program's ids") {
  auto model = load_model(kModelPath);
  const Tokenizer& tok = *model->tokenizer();
  for (const Example& ex : examples()) {
    CAPTURE(ex.id);
    auto ids = tok.encode(ex.prompt + ex.completion, {.add_bos = false, .parse_special = true});
    REQUIRE(ids.ok());
    CHECK(*ids == ex.ids);
  }
}

TEST_CASE("shipped model: (a) held-out loss equals the training program's") {
  auto model = load_model(kModelPath);
  ContextParams cp;
  cp.n_threads = 2;
  const size_t n = scaled(examples().size(), 20);
  const Loss loss = heldout_loss(*model, n, cp);
  MESSAGE("held-out mean NLL over " << n << " examples, " << loss.n_tokens << " tokens: libslm "
          << loss.mean() << ", training program " << loss.ref_mean() << " (diff " << loss.mean() - loss.ref_mean()
          << ", tolerance " << kLossTolerance << ")");
  CHECK(std::fabs(loss.mean() - loss.ref_mean()) < kLossTolerance);
}

TEST_CASE("shipped model: (b) every kernel level and thread count") {
  // Q8_0 matrices are interleaved at load for the default level's kernels; a level without
  // kernels for that layout would run the scalar reference on it, so those levels get the
  // model as mapped and run their own row kernels (what SLM_ISA=<level> gives a user).
  auto interleaved = load_model(kModelPath), in_place = load_model(kModelPath, false);
  // The scalar level is ~10x slower than the others: fewer examples there.
  const size_t n_scalar = scaled(8, 3);
  double scalar_mean = 0;
  for (IsaLevel level : runnable_levels()) {
    const size_t n = level == IsaLevel::scalar ? n_scalar : scaled(24, 3);
    double first = 0;
    for (int threads : {1, 2, 3}) {  // 3 on a 2-core box: uneven splits, a waiting worker
      const std::string level_name = isa_level_name(level);
      CAPTURE(level_name);
      CAPTURE(threads);
      ContextParams cp;
      cp.n_threads = threads;
      cp.isa = level;
      const Model& model = *(kernels::interleave_pays(level, DType::Q8_0) ? interleaved : in_place);
      const Loss loss = heldout_loss(model, n, cp);
      if (threads == 1) {
        MESSAGE(level_name << ": mean NLL " << loss.mean() << " over " << n << " examples, training program "
                << loss.ref_mean());
        first = loss.mean();
        // Every level against the scalar one on the scalar level's examples.
        const double on_scalar_set = n == n_scalar ? loss.mean() : heldout_loss(model, n_scalar, cp).mean();
        if (level == IsaLevel::scalar) scalar_mean = on_scalar_set;
        CHECK(std::fabs(on_scalar_set - scalar_mean) < kLevelTolerance);
      } else {
        CHECK(loss.mean() == first);  // bit-identical for any thread count
      }
      CHECK(std::fabs(loss.mean() - loss.ref_mean()) < kLossTolerance);
    }
  }
  // A level this CPU cannot run is refused, not silently replaced.
  for (int i = 0; i < kIsaLevelCount; ++i) {
    if (isa_level_supported(static_cast<IsaLevel>(i))) continue;
    ContextParams cp;
    cp.isa = static_cast<IsaLevel>(i);
    auto ctx = Context::create(*interleaved, cp);
    CHECK_FALSE(ctx.ok());
  }
}

TEST_CASE("shipped model: (c) Q4_0 and Q4_K_M requantization raise the loss by a bounded amount") {
  auto src = gguf::File::open(kModelPath);
  REQUIRE(src.ok());
  auto base = load_model(kModelPath);
  ContextParams cp;
  cp.n_threads = 2;
  const size_t n = scaled(60, 6);
  const Loss base_loss = heldout_loss(*base, n, cp);
  const fs::path dir = fs::temp_directory_path() / ("slm-shipped-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const std::string type : {"Q4_0", "Q4_K_M"}) {
    CAPTURE(type);
    convert::QuantizeOptions o;
    o.target = convert::parse_target(type).value();
    o.n_threads = 2;
    const std::string out = (dir / (type + ".gguf")).string();
    REQUIRE(convert::quantize_file(*src, out, o, nullptr).ok());
    auto q = load_model(out);
    const Loss loss = heldout_loss(*q, n, cp);
    MESSAGE(type << ": mean NLL " << loss.mean() << " vs Q8_0 " << base_loss.mean() << " (rise "
            << loss.mean() - base_loss.mean() << ", bound " << kQ4LossRise << ")");
    CHECK(loss.mean() - base_loss.mean() < kQ4LossRise);
    CHECK(loss.mean() > base_loss.mean() - 0.02);  // 4 bits cannot be much better than 8
  }
  fs::remove_all(dir);
}

TEST_CASE("shipped model: (d) greedy answers name the incident kind") {
  auto model = load_model(kModelPath);
  const Tokenizer& tok = *model->tokenizer();
  ContextParams cp;
  cp.n_threads = 2;
  cp.n_ctx = 1024;
  auto ctx = Context::create(*model, cp);
  REQUIRE(ctx.ok());
  // All 200 examples in every build (a 20-example sample of a ~92% rate is too coarse to hold
  // to 90%): ~10 s in Release, ~3.5 min under ASan.
  const size_t n = examples().size();
  int hits = 0, total = 0;
  std::string misses;
  for (size_t e = 0; e < n && e < examples().size(); ++e) {
    const Example& ex = examples()[e];
    auto prompt = tok.encode(ex.prompt + "<think>\n", {.add_bos = false, .parse_special = true});
    REQUIRE(prompt.ok());
    (*ctx)->reset();
    REQUIRE((*ctx)->eval(*prompt).ok());
    std::vector<int32_t> out;
    for (int step = 0; step < 320; ++step) {
      std::span<const float> z = (*ctx)->logits();
      const int32_t next = static_cast<int32_t>(std::max_element(z.begin(), z.end()) - z.begin());
      if (next == tok.eos()) break;
      out.push_back(next);
      REQUIRE((*ctx)->eval({&next, 1}).ok());
    }
    const std::string text = tok.decode(out);
    const size_t end_think = text.find("</think>");
    const std::string answer = lower(end_think == std::string::npos ? std::string() : text.substr(end_think + 8));
    bool all = !answer.empty();
    for (const std::string& k : ex.keywords) all = all && answer.find(lower(k)) != std::string::npos;
    ++total;
    if (all) {
      ++hits;
    } else if (misses.size() < 4000) {
      misses += "  " + ex.id + " (";
      for (const std::string& k : ex.keywords) misses += k + ";";
      misses += "): " + answer.substr(0, 200) + "\n";
    }
  }
  MESSAGE("greedy answers naming every incident kind: " << hits << " / " << total << " (need "
          << kKeywordHitRate * 100 << "%)\n" << misses);
  CHECK(hits >= kKeywordHitRate * total);
}
