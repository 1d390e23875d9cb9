// slm-perplexity: perplexity of a model over a text file (sliding window), and the KL divergence
// of its next-token distributions against a base model's on the same tokens.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "common/tool_common.hpp"
#include "slm/json.hpp"
#include "slm/model.hpp"

namespace {

const char* kUsage =
    "usage: slm-perplexity -m MODEL.gguf -f TEXT [options]\n"
    "\n"
    "Tokenizes TEXT once (BOS first when the model adds it) and evaluates it in windows of\n"
    "CTX tokens starting at 0, S, 2S, ... (the last window is moved back to end at the last\n"
    "token). Each window starts from an empty KV cache; when the model adds BOS, a window after\n"
    "the first has its first token replaced by BOS (as llama.cpp's perplexity does). A window\n"
    "[s, e) scores the tokens j in [max(s + CTX/2, e_prev), e), e_prev being the end of the\n"
    "previous window: every scored token is predicted from at least CTX/2 tokens of context and\n"
    "no token is scored twice. Tokens 1 .. CTX/2-1 are never scored; with S > CTX/2 the tokens\n"
    "between scored spans are skipped too (S = CTX: llama.cpp's non-overlapping chunks).\n"
    "NLL_j = -log softmax(logits at j-1)[token j] (double precision); PPL = exp(mean NLL), with\n"
    "the error PPL * stderr(NLL) (first-order, tokens treated as independent).\n"
    "\n"
    "  -m, --model FILE     GGUF model\n"
    "  -f, --file FILE      text file ('-' = stdin)\n"
    "  -c, --ctx N          window length in tokens (default min(512, training context))\n"
    "      --stride S       window advance (default CTX/2)\n"
    "      --kl-base FILE   also evaluate this base model (e.g. the F32/F16 original) on the same\n"
    "                       windows and report KL(base || model) per scored token: mean +- stderr,\n"
    "                       median, p99, max, the share of tokens whose top token agrees, and\n"
    "                       ln(PPL/base PPL) +- its paired stderr\n"
    "  -o, --output text|json  output format (default text; json: one object on stdout)\n"
    "  -t, --threads N      threads (default 1)\n"
    "      --kv f16|f32     KV cache type (default f16)\n"
    "      --isa NAME       force the kernel level (scalar, avx2, avx512, avx512vnni, amx, ...)\n";

struct Options {
  std::string model, text_file, kl_base, output = "text";
  int n_ctx = 0;
  int stride = 0;
  int n_threads = 1;
  slm::KvType kv = slm::KvType::F16;
  std::string isa;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "slm-perplexity: %s\n", message.c_str());
  return 1;
}

// log-softmax of `logits` into `out` (double precision); returns false on a non-finite value.
bool log_softmax(std::span<const float> logits, std::vector<double>& out) {
  out.resize(logits.size());
  double max_logit = -INFINITY;
  for (float v : logits) {
    if (!std::isfinite(v)) return false;
    max_logit = std::max(max_logit, static_cast<double>(v));
  }
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max_logit);
  const double log_sum = std::log(sum) + max_logit;
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_sum;
  return true;
}

// KL(p || q) from log-probabilities.
double kl_divergence(const std::vector<double>& log_p, const std::vector<double>& log_q) {
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) kl += std::exp(log_p[i]) * (log_p[i] - log_q[i]);
  return std::max(0.0, kl);  // rounding can give -1e-17 for identical distributions
}

// Value at quantile q (0..1) of sorted values, linear interpolation between neighbours.
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

struct MeanStderr {
  double mean = 0, stderr_ = 0;
};
MeanStderr mean_stderr(const std::vector<double>& v) {
  MeanStderr r;
  if (v.empty()) return r;
  double sum = 0;
  for (double x : v) sum += x;
  r.mean = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - r.mean) * (x - r.mean);
    r.stderr_ = std::sqrt(ss / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()));
  }
  return r;
}

struct Window {
  int start = 0, first_scored = 0, end = 0;
};

// The windows and scored spans described in kUsage.
std::vector<Window> plan_windows(int n_tokens, int n_ctx, int stride) {
  std::vector<Window> out;
  int prev_end = 0;
  for (long long k = 0;; ++k) {
    const int start = static_cast<int>(std::min<long long>(k * stride, std::max(0, n_tokens - n_ctx)));
    const int end = std::min(start + n_ctx, n_tokens);
    const int first = std::max(start + n_ctx / 2, prev_end);
    if (first < end) out.push_back({start, first, end});
    prev_end = std::max(prev_end, end);
    if (end >= n_tokens) break;
  }
  return out;
}

struct Loaded {
  std::unique_ptr<slm::Model> model;
  std::unique_ptr<slm::Context> ctx;
};

slm::Expected<Loaded> load(const std::string& path, const Options& o, int n_ctx) {
  auto model = slm::Model::load(path);
  if (!model) return model.error();
  slm::ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_batch = n_ctx;
  cp.n_threads = o.n_threads;
  cp.kv_type = o.kv;
  auto ctx = (*model)->create_context(cp);
  if (!ctx) return slm::errorf("%s: %s", path.c_str(), ctx.error().message.c_str());
  Loaded l;
  l.model = std::move(*model);
  l.ctx = std::move(*ctx);
  return l;
}

int run(const Options& o) {
  auto text = slm::tool::read_file(o.text_file);
  if (!text) return fail(text.error().message);
  auto model = slm::Model::load(o.model);
  if (!model) return fail(model.error().message);
  const slm::Model& m = **model;
  auto tokens = slm::tool::tokenize(m, *text, true);
  if (!tokens) return fail(tokens.error().message);
  const std::vector<int32_t>& ids = *tokens;
  const int n_tokens = static_cast<int>(ids.size());
  const bool has_bos = n_tokens > 0 && m.tokenizer() != nullptr && m.tokenizer()->bos() >= 0 &&
                       ids[0] == m.tokenizer()->bos();

  const int64_t train_ctx = m.info().n_ctx_train > 0 ? m.info().n_ctx_train : 512;
  const int n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<int>(std::min<int64_t>(512, train_ctx));
  const int stride = o.stride > 0 ? o.stride : std::max(1, n_ctx / 2);
  if (n_ctx < 2) return fail("-c must be at least 2");
  if (stride > n_ctx) return fail("--stride " + std::to_string(stride) + " is larger than the window (-c " +
                                  std::to_string(n_ctx) + ")");
  const std::vector<Window> windows = plan_windows(n_tokens, n_ctx, stride);
  if (windows.empty())
    return fail(o.text_file + ": " + std::to_string(n_tokens) + " tokens, too few to score with -c " +
                std::to_string(n_ctx) + " (need more than " + std::to_string(n_ctx / 2) + ")");

  slm::ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_batch = n_ctx;
  cp.n_threads = o.n_threads;
  cp.kv_type = o.kv;
  auto ctx = m.create_context(cp);
  if (!ctx) return fail(ctx.error().message);
  slm::Context& c = **ctx;

  Loaded base;
  if (!o.kl_base.empty()) {
    auto b = load(o.kl_base, o, n_ctx);
    if (!b) return fail(b.error().message);
    base = std::move(*b);
    if (base.model->info().n_vocab != m.info().n_vocab)
      return fail("--kl-base " + o.kl_base + ": vocabulary of " + std::to_string(base.model->info().n_vocab) +
                  " tokens, the model has " + std::to_string(m.info().n_vocab));
  }

  const bool text_out = o.output == "text";
  if (text_out) {
    std::printf("model %s: %s, %lld-token vocab\n", o.model.c_str(), m.info().type_summary.c_str(),
                static_cast<long long>(m.info().n_vocab));
    if (base.model)
      std::printf("base  %s: %s\n", o.kl_base.c_str(), base.model->info().type_summary.c_str());
    std::printf("%d tokens%s, window %d, stride %d, %zu windows\n", n_tokens,
                has_bos ? " (BOS first)" : "", n_ctx, stride, windows.size());
    std::fflush(stdout);
  }

  std::vector<double> nll, kl, base_nll;
  size_t same_top = 0;
  std::vector<double> lp, lp_base;
  std::vector<int32_t> window_ids;
  std::vector<double> window_ppl;
  double eval_seconds = 0, base_seconds = 0;
  size_t evaluated = 0;
  for (size_t w = 0; w < windows.size(); ++w) {
    const Window& win = windows[w];
    window_ids.assign(ids.begin() + win.start, ids.begin() + win.end);
    if (has_bos && win.start > 0) window_ids[0] = ids[0];
    const std::span<const int32_t> span(window_ids);

    double t0 = slm::tool::now_seconds();
    c.reset();
    slm::Status st = c.eval(span, true);
    if (!st) return fail(st.message());
    eval_seconds += slm::tool::now_seconds() - t0;
    evaluated += window_ids.size();
    if (base.ctx) {
      t0 = slm::tool::now_seconds();
      base.ctx->reset();
      st = base.ctx->eval(span, true);
      if (!st) return fail("--kl-base: " + st.message());
      base_seconds += slm::tool::now_seconds() - t0;
    }
    for (int j = win.first_scored; j < win.end; ++j) {
      const int i = j - 1 - win.start;  // logits at position j-1 predict token j
      auto logits = c.logits(i);
      if (!log_softmax(logits, lp)) return fail("non-finite logits at token " + std::to_string(j - 1));
      nll.push_back(-lp[static_cast<size_t>(ids[j])]);
      if (base.ctx) {
        if (!log_softmax(base.ctx->logits(i), lp_base))
          return fail("--kl-base: non-finite logits at token " + std::to_string(j - 1));
        base_nll.push_back(-lp_base[static_cast<size_t>(ids[j])]);
        kl.push_back(kl_divergence(lp_base, lp));
        if (slm::argmax(base.ctx->logits(i)) == slm::argmax(logits)) ++same_top;
      }
    }
    const double running = std::exp(mean_stderr(nll).mean);
    window_ppl.push_back(running);
    if (text_out) {
      std::printf("[%zu/%zu] tokens %d..%d scored (window %d..%d): running PPL %.4f\n", w + 1,
                  windows.size(), win.first_scored, win.end - 1, win.start, win.end - 1, running);
      std::fflush(stdout);
    }
  }

  const MeanStderr s = mean_stderr(nll);
  const double ppl = std::exp(s.mean);
  const double ppl_err = ppl * s.stderr_;
  const double tps = eval_seconds > 0 ? static_cast<double>(evaluated) / eval_seconds : 0;
  const MeanStderr k = mean_stderr(kl);
  std::vector<double> kl_sorted = kl;
  std::sort(kl_sorted.begin(), kl_sorted.end());
  const MeanStderr sb = mean_stderr(base_nll);
  // ln(PPL(model) / PPL(base)) as the mean of paired per-token NLL differences: its error is
  // much smaller than either PPL's, since both models see the same tokens.
  std::vector<double> delta(base_nll.size());
  for (size_t i = 0; i < delta.size(); ++i) delta[i] = nll[i] - base_nll[i];
  const MeanStderr sd = mean_stderr(delta);
  const double same_top_pct = kl.empty() ? 0 : 100.0 * static_cast<double>(same_top) / static_cast<double>(kl.size());

  if (text_out) {
    std::printf("scored %zu tokens; evaluated %zu in %.2f s (%.1f tokens/s, %d threads)\n", nll.size(),
                evaluated, eval_seconds, tps, o.n_threads);
    std::printf("PPL = %.4f +/- %.4f (mean NLL %.6f +/- %.6f)\n", ppl, ppl_err, s.mean, s.stderr_);
    if (base.ctx) {
      std::printf("base PPL = %.4f +/- %.4f\n", std::exp(sb.mean), std::exp(sb.mean) * sb.stderr_);
      std::printf("ln(PPL/base PPL) = %.6f +/- %.6f (paired)\n", sd.mean, sd.stderr_);
      std::printf("KL(base || model): mean %.6f +/- %.6f, median %.6f, p99 %.6f, max %.6f\n", k.mean,
                  k.stderr_, quantile(kl_sorted, 0.5), quantile(kl_sorted, 0.99), kl_sorted.back());
      std::printf("same top token: %.2f%% (%zu of %zu)\n", same_top_pct, same_top, kl.size());
    }
    return 0;
  }

  slm::json::Writer jw(2);
  jw.begin_object();
  jw.key("model"); jw.value(o.model);
  jw.key("types"); jw.value(m.info().type_summary);
  jw.key("n_tokens"); jw.value(n_tokens);
  jw.key("bos"); jw.value(has_bos);
  jw.key("ctx"); jw.value(n_ctx);
  jw.key("stride"); jw.value(stride);
  jw.key("threads"); jw.value(o.n_threads);
  jw.key("windows");
  jw.begin_array();
  for (size_t w = 0; w < windows.size(); ++w) {
    jw.begin_object();
    jw.key("start"); jw.value(windows[w].start);
    jw.key("first_scored"); jw.value(windows[w].first_scored);
    jw.key("end"); jw.value(windows[w].end);
    jw.key("running_ppl"); jw.value(window_ppl[w]);
    jw.end_object();
  }
  jw.end_array();
  jw.key("n_scored"); jw.value(static_cast<uint64_t>(nll.size()));
  jw.key("mean_nll"); jw.value(s.mean);
  jw.key("mean_nll_stderr"); jw.value(s.stderr_);
  jw.key("ppl"); jw.value(ppl);
  jw.key("ppl_err"); jw.value(ppl_err);
  jw.key("tokens_evaluated"); jw.value(static_cast<uint64_t>(evaluated));
  jw.key("seconds"); jw.value(eval_seconds);
  jw.key("tokens_per_second"); jw.value(tps);
  if (base.ctx) {
    jw.key("kl");
    jw.begin_object();
    jw.key("base"); jw.value(o.kl_base);
    jw.key("base_types"); jw.value(base.model->info().type_summary);
    jw.key("base_ppl"); jw.value(std::exp(sb.mean));
    jw.key("base_ppl_err"); jw.value(std::exp(sb.mean) * sb.stderr_);
    jw.key("base_seconds"); jw.value(base_seconds);
    jw.key("ln_ppl_ratio"); jw.value(sd.mean);
    jw.key("ln_ppl_ratio_stderr"); jw.value(sd.stderr_);
    jw.key("mean"); jw.value(k.mean);
    jw.key("mean_stderr"); jw.value(k.stderr_);
    jw.key("median"); jw.value(quantile(kl_sorted, 0.5));
    jw.key("p99"); jw.value(quantile(kl_sorted, 0.99));
    jw.key("max"); jw.value(kl_sorted.back());
    jw.key("same_top_pct"); jw.value(same_top_pct);
    jw.end_object();
  }
  jw.end_object();
  std::printf("%s\n", jw.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  slm::tool::Args a(argc, argv);
  while (a.next()) {
    if (a.is("-h", "--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a.is("-m", "--model")) {
      o.model = a.value();
    } else if (a.is("-f", "--file")) {
      o.text_file = a.value();
    } else if (a.is("-c", "--ctx")) {
      o.n_ctx = static_cast<int>(a.int_value(2, 1 << 20));
    } else if (a.is("--stride")) {
      o.stride = static_cast<int>(a.int_value(1, 1 << 20));
    } else if (a.is("--kl-base")) {
      o.kl_base = a.value();
    } else if (a.is("-o", "--output")) {
      o.output = a.value();
      if (a.error().empty() && o.output != "text" && o.output != "json")
        a.fail("-o: expected text or json, got '" + o.output + "'");
    } else if (a.is("-t", "--threads")) {
      o.n_threads = static_cast<int>(a.int_value(1, 1024));
    } else if (a.is("--kv")) {
      o.kv = a.kv_value();
    } else if (a.is("--isa")) {
      o.isa = a.value();
    } else {
      a.unknown();
    }
  }
  if (!a.error().empty()) return fail(a.error());
  if (o.model.empty()) return fail("no model given (-m FILE); see --help");
  if (o.text_file.empty()) return fail("no text given (-f FILE); see --help");
  if (!o.isa.empty()) {
    slm::Status st = slm::tool::force_isa(o.isa);
    if (!st) return fail(st.message());
  }
  return run(o);
}
