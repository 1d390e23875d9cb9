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
    "      --jsonl FILE     instead of -f: one JSON object per line with \"prompt\" and\n"
    "                       \"completion\" strings; each line is evaluated from an empty cache\n"
    "                       and only the completion's tokens are scored (an answer's loss given\n"
    "                       its question, as a fine-tuning loss counts it). The text is encoded\n"
    "                       with control tokens recognised (a chat-template prompt), BOS first\n"
    "                       when the model adds it and the prompt does not start with it; the\n"
    "                       prompt's tokens must be a prefix of prompt + completion's\n"
    "  -c, --ctx N          window length in tokens (default min(512, training context))\n"
    "      --stride S       window advance (default CTX/2)\n"
    "      --kl-base FILE   also evaluate this base model (e.g. the F32/F16 original) on the same\n"
    "                       windows and report KL(base || model) per scored token: mean +- stderr,\n"
    "                       median, p99, max, the share of tokens whose top token agrees, and\n"
    "                       ln(PPL/base PPL) +- its paired stderr\n"
    "  -o, --output text|json  output format (default text; json: one object on stdout)\n"
    "  -t, --threads N      threads (default 1)\n"
    "      --kv f16|f32     KV cache type (default f16)\n"
    "      --isa NAME       force the kernel level (scalar, avx2, avxvnni, avx512, avx512vnni, amx, ...)\n";

struct Options {
  std::string model, text_file, jsonl, kl_base, output = "text";
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

// One evaluation from an empty cache: ids[first ..) are scored, each from the logits before it.
struct Segment {
  std::vector<int32_t> ids;
  int first = 1;
};

// --jsonl: one segment per line, scoring the completion (see kUsage).
slm::Expected<std::vector<Segment>> jsonl_segments(const slm::Model& m, const std::string& path) {
  auto text = slm::tool::read_file(path);
  if (!text) return text.error();
  const slm::Tokenizer* tok = m.tokenizer();
  if (tok == nullptr) return slm::errorf("%s: the model has no tokenizer", path.c_str());
  std::vector<Segment> out;
  size_t line_no = 0, pos = 0;
  const std::string& t = *text;
  while (pos < t.size()) {
    size_t end = t.find('\n', pos);
    if (end == std::string::npos) end = t.size();
    const std::string_view line(t.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto v = slm::json::parse(line);
    if (!v) return slm::errorf("%s:%zu: %s", path.c_str(), line_no, v.error().message.c_str());
    const slm::json::Value* prompt = v->find("prompt");
    const slm::json::Value* completion = v->find("completion");
    if (!prompt || !prompt->is_string() || !completion || !completion->is_string())
      return slm::errorf("%s:%zu: expected an object with \"prompt\" and \"completion\" strings", path.c_str(), line_no);
    const slm::EncodeOptions eo{.add_bos = false, .parse_special = true};
    auto p_ids = tok->encode(prompt->as_string(), eo);
    auto all = tok->encode(std::string(prompt->as_string()) + std::string(completion->as_string()), eo);
    if (!p_ids) return slm::errorf("%s:%zu: %s", path.c_str(), line_no, p_ids.error().message.c_str());
    if (!all) return slm::errorf("%s:%zu: %s", path.c_str(), line_no, all.error().message.c_str());
    if (all->size() <= p_ids->size() || !std::equal(p_ids->begin(), p_ids->end(), all->begin()))
      return slm::errorf("%s:%zu: the completion is empty, or the prompt's tokens are not a prefix of "
                         "prompt + completion's (the two merge across the boundary)", path.c_str(), line_no);
    Segment seg;
    const bool add_bos = tok->add_bos() && tok->bos() >= 0 && (*all)[0] != tok->bos();
    if (add_bos) seg.ids.push_back(tok->bos());
    seg.ids.insert(seg.ids.end(), all->begin(), all->end());
    seg.first = static_cast<int>(p_ids->size() + (add_bos ? 1 : 0));
    if (seg.first < 1) return slm::errorf("%s:%zu: empty prompt and no BOS: nothing to predict the first token from", path.c_str(), line_no);
    out.push_back(std::move(seg));
  }
  if (out.empty()) return slm::errorf("%s: no examples", path.c_str());
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
  auto model = slm::Model::load(o.model);
  if (!model) return fail(model.error().message);
  const slm::Model& m = **model;

  // What to evaluate: windows over one text (-f), or one segment per example (--jsonl).
  std::vector<Segment> segments;
  std::vector<Window> windows;
  int n_tokens = 0, n_ctx = 0, stride = 0;
  bool has_bos = false;
  if (!o.jsonl.empty()) {
    auto segs = jsonl_segments(m, o.jsonl);
    if (!segs) return fail(segs.error().message);
    segments = std::move(*segs);
    for (const Segment& seg : segments) {
      n_ctx = std::max(n_ctx, static_cast<int>(seg.ids.size()));
      n_tokens += static_cast<int>(seg.ids.size());
    }
  } else {
    auto text = slm::tool::read_file(o.text_file);
    if (!text) return fail(text.error().message);
    auto tokens = slm::tool::tokenize(m, *text, true);
    if (!tokens) return fail(tokens.error().message);
    const std::vector<int32_t>& ids = *tokens;
    n_tokens = static_cast<int>(ids.size());
    has_bos = n_tokens > 0 && m.tokenizer() != nullptr && m.tokenizer()->bos() >= 0 && ids[0] == m.tokenizer()->bos();
    const int64_t train_ctx = m.info().n_ctx_train > 0 ? m.info().n_ctx_train : 512;
    n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<int>(std::min<int64_t>(512, train_ctx));
    stride = o.stride > 0 ? o.stride : std::max(1, n_ctx / 2);
    if (n_ctx < 2) return fail("-c must be at least 2");
    if (stride > n_ctx) return fail("--stride " + std::to_string(stride) + " is larger than the window (-c " +
                                    std::to_string(n_ctx) + ")");
    windows = plan_windows(n_tokens, n_ctx, stride);
    if (windows.empty())
      return fail(o.text_file + ": " + std::to_string(n_tokens) + " tokens, too few to score with -c " +
                  std::to_string(n_ctx) + " (need more than " + std::to_string(n_ctx / 2) + ")");
    for (const Window& win : windows) {
      Segment seg;
      seg.ids.assign(ids.begin() + win.start, ids.begin() + win.end);
      if (has_bos && win.start > 0) seg.ids[0] = ids[0];
      seg.first = win.first_scored - win.start;
      segments.push_back(std::move(seg));
    }
  }

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
    if (o.jsonl.empty())
      std::printf("%d tokens%s, window %d, stride %d, %zu windows\n", n_tokens,
                  has_bos ? " (BOS first)" : "", n_ctx, stride, windows.size());
    else
      std::printf("%zu examples, %d tokens, the longest %d\n", segments.size(), n_tokens, n_ctx);
    std::fflush(stdout);
  }

  std::vector<double> nll, kl, base_nll;
  size_t same_top = 0;
  std::vector<double> lp, lp_base;
  std::vector<double> window_ppl;
  double eval_seconds = 0, base_seconds = 0;
  size_t evaluated = 0;
  for (size_t w = 0; w < segments.size(); ++w) {
    const Segment& seg = segments[w];
    const std::span<const int32_t> span(seg.ids);

    double t0 = slm::tool::now_seconds();
    c.reset();
    slm::Status st = c.eval(span, true);
    if (!st) return fail(st.message());
    eval_seconds += slm::tool::now_seconds() - t0;
    evaluated += seg.ids.size();
    if (base.ctx) {
      t0 = slm::tool::now_seconds();
      base.ctx->reset();
      st = base.ctx->eval(span, true);
      if (!st) return fail("--kl-base: " + st.message());
      base_seconds += slm::tool::now_seconds() - t0;
    }
    for (int j = seg.first; j < static_cast<int>(seg.ids.size()); ++j) {
      const int i = j - 1;  // logits at position j-1 predict token j
      auto logits = c.logits(i);
      if (!log_softmax(logits, lp)) return fail("non-finite logits at token " + std::to_string(i));
      nll.push_back(-lp[static_cast<size_t>(seg.ids[static_cast<size_t>(j)])]);
      if (base.ctx) {
        if (!log_softmax(base.ctx->logits(i), lp_base))
          return fail("--kl-base: non-finite logits at token " + std::to_string(i));
        base_nll.push_back(-lp_base[static_cast<size_t>(seg.ids[static_cast<size_t>(j)])]);
        kl.push_back(kl_divergence(lp_base, lp));
        if (slm::argmax(base.ctx->logits(i)) == slm::argmax(logits)) ++same_top;
      }
    }
    const double running = std::exp(mean_stderr(nll).mean);
    window_ppl.push_back(running);
    if (text_out && o.jsonl.empty()) {
      const Window& win = windows[w];
      std::printf("[%zu/%zu] tokens %d..%d scored (window %d..%d): running PPL %.4f\n", w + 1,
                  windows.size(), win.first_scored, win.end - 1, win.start, win.end - 1, running);
      std::fflush(stdout);
    } else if (text_out && ((w + 1) % 50 == 0 || w + 1 == segments.size())) {
      std::printf("[%zu/%zu] examples: running PPL %.4f\n", w + 1, segments.size(), running);
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
  if (!o.jsonl.empty()) {
    jw.key("jsonl"); jw.value(o.jsonl);
    jw.key("examples"); jw.value(static_cast<uint64_t>(segments.size()));
  }
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
    } else if (a.is("--jsonl")) {
      o.jsonl = a.value();
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
  if (o.text_file.empty() && o.jsonl.empty()) return fail("no text given (-f FILE or --jsonl FILE); see --help");
  if (!o.text_file.empty() && !o.jsonl.empty()) return fail("-f and --jsonl: give one of them, not both");
  if (!o.isa.empty()) {
    slm::Status st = slm::tool::force_isa(o.isa);
    if (!st) return fail(st.message());
  }
  return run(o);
}
