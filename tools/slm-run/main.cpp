// slm-run: generates text from a GGUF model, streaming it to stdout as tokens come; a one-shot
// prompt mode (chat template applied unless --raw) and an interactive multi-turn --chat mode.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "common/tool_common.hpp"
#include "slm/chat.hpp"
#include "slm/cpu.hpp"
#include "slm/model.hpp"

namespace {

const char* kUsage =
    "usage: slm-run -m MODEL.gguf [-p PROMPT | -f FILE | --chat] [options]\n"
    "\n"
    "Without -p, -f or --chat the prompt is read from stdin.\n"
    "\n"
    "  -m, --model FILE        GGUF model\n"
    "  -p, --prompt TEXT       prompt\n"
    "  -f, --file FILE         prompt from a file ('-' = stdin)\n"
    "      --raw               no chat template: the prompt is fed as is (after BOS)\n"
    "      --system TEXT       system message (chat template modes)\n"
    "      --template NAME     chat template by name instead of the model's: deepseek-r1,\n"
    "                          deepseek-r1-nothink, deepseek-v3, llama3, llama2, chatml, qwen3\n"
    "      --chat              interactive multi-turn chat on stdin (an empty line or EOF ends)\n"
    "      --hide-reasoning    do not print the <think>...</think> part\n"
    "  -n, --n-predict N       most tokens to generate (default 256; -1 = until the context is full)\n"
    "  -c, --ctx N             context length in tokens (default 4096)\n"
    "  -b, --batch N           tokens per prompt step (default 512)\n"
    "  -t, --threads N         threads (default 1)\n"
    "      --temp T            temperature (default 0.8; 0 = greedy, exact argmax)\n"
    "      --top-k K           (default 40; 0 = off)\n"
    "      --top-p P           (default 0.95; 1 = off)\n"
    "      --min-p P           (default 0.05; 0 = off)\n"
    "      --repeat-penalty R  (default 1.0 = off)\n"
    "      --repeat-last-n N   window for the penalty (default 64)\n"
    "      --seed S            sampler seed (default 0)\n"
    "      --kv f16|f32        KV cache type (default f16)\n"
    "      --isa NAME          force the kernel level (scalar, avx2, avxvnni, avx512, avx512vnni, amx, ...)\n"
    "      --print-ids         write the prompt and generated token ids to stderr\n"
    "      --verbose           print the model summary and settings to stderr\n"
    "      --no-stats          do not print speeds at the end\n";

struct Options {
  std::string model;
  std::string prompt;
  bool have_prompt = false;
  std::string prompt_file;
  bool raw = false;
  bool chat = false;
  std::string system;
  std::string template_name;
  bool hide_reasoning = false;
  int n_predict = 256;
  int n_ctx = 4096;
  int n_batch = 512;
  int n_threads = 1;
  slm::SamplerParams sp;
  slm::KvType kv = slm::KvType::F16;
  std::string isa;
  bool print_ids = false;
  bool verbose = false;
  bool stats = true;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "slm-run: %s\n", message.c_str());
  return 1;
}

// Prints generated text: reasoning dimmed on a terminal, plain when piped, or hidden.
class Printer {
 public:
  Printer(bool hide_reasoning, bool start_in_reasoning)
      : hide_(hide_reasoning), tty_(isatty(STDOUT_FILENO) == 1), split_(start_in_reasoning) {}
  void text(const std::string& s) { emit(split_.push(s)); }
  void finish() {
    emit(split_.finish());
    if (dim_) std::fputs("\x1b[0m", stdout), dim_ = false;
    std::fflush(stdout);
  }

 private:
  void emit(const slm::ReasoningSplitter::Output& out) {
    if (!hide_) put(out.reasoning, true);
    put(out.answer, false);
    std::fflush(stdout);
  }
  void put(const std::string& text, bool reasoning) {
    if (text.empty()) return;
    if (tty_ && reasoning != dim_) {
      std::fputs(reasoning ? "\x1b[2m" : "\x1b[0m", stdout);
      dim_ = reasoning;
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  bool hide_;
  bool tty_;
  bool dim_ = false;
  slm::ReasoningSplitter split_;
};

void print_ids(const char* label, const std::vector<int32_t>& ids) {
  std::string s = label;
  s += ":";
  for (int32_t id : ids) s += " " + std::to_string(id);
  s += "\n";
  std::fputs(s.c_str(), stderr);
}

struct Timing {
  int prompt_tokens = 0;
  double prompt_s = 0;
  int gen_tokens = 0;
  double gen_s = 0;
};

// Evaluates `input` (appended to what the context holds), then samples and streams up to
// n_predict tokens. Returns the generated ids (the end-of-generation token excluded).
slm::Expected<std::vector<int32_t>> generate(const Options& o, const slm::tool::TextModel& text,
                                             slm::Context& ctx, slm::Sampler& sampler,
                                             const std::vector<int32_t>& input, Printer& printer,
                                             Timing& timing) {
  if (static_cast<int>(input.size()) + ctx.n_past() > ctx.n_ctx())
    return slm::errorf("the prompt (%zu tokens) does not fit in the context (%d of %d used; "
                       "raise -c)", input.size(), ctx.n_past(), ctx.n_ctx());
  double t0 = slm::tool::now_seconds();
  slm::Status st = ctx.eval(input);
  if (!st) return st.error();
  for (int32_t id : input) sampler.accept(id);
  timing.prompt_s += slm::tool::now_seconds() - t0;
  timing.prompt_tokens += static_cast<int>(input.size());

  std::vector<int32_t> out;
  // Control tokens (BOS, <｜User｜>, ...) are not text: like llama.cpp's CLI, do not print them.
  // <think> and </think> are ordinary added tokens in the R1 vocabularies, so they still reach
  // the reasoning splitter.
  slm::StreamingDecoder stream(text.tokenizer(), {.skip_special = true});
  t0 = slm::tool::now_seconds();
  while (o.n_predict < 0 || static_cast<int>(out.size()) < o.n_predict) {
    const int32_t tok = sampler.sample(ctx.logits());
    if (text.is_eog(tok)) break;
    sampler.accept(tok);
    out.push_back(tok);
    printer.text(stream.push(tok));
    if (ctx.n_past() >= ctx.n_ctx()) break;  // the next eval would overflow: stop here
    st = ctx.eval(std::span<const int32_t>(&tok, 1));
    if (!st) return st.error();
  }
  printer.text(stream.flush());
  timing.gen_s += slm::tool::now_seconds() - t0;
  timing.gen_tokens += static_cast<int>(out.size());
  return out;
}

void print_stats(const Timing& t) {
  auto rate = [](int n, double s) { return s > 0 ? n / s : 0.0; };
  std::fprintf(stderr, "\nprompt: %d tokens in %.3f s (%.2f tok/s); generation: %d tokens in %.3f s (%.2f tok/s)\n",
               t.prompt_tokens, t.prompt_s, rate(t.prompt_tokens, t.prompt_s), t.gen_tokens,
               t.gen_s, rate(t.gen_tokens, t.gen_s));
}

// One prompt, one answer.
int run_once(const Options& o, const slm::tool::TextModel& text, slm::Context& ctx,
             slm::Sampler& sampler, const std::string& prompt) {
  const slm::ChatTemplate* tmpl = o.raw ? nullptr : text.chat_template();
  slm::Expected<std::vector<int32_t>> ids = std::vector<int32_t>{};
  if (tmpl) {
    std::vector<slm::ChatMessage> msgs;
    if (!o.system.empty()) msgs.push_back({"system", o.system});
    msgs.push_back({"user", prompt});
    ids = tmpl->render_ids(text.tokenizer(), msgs, true);
  } else {
    if (o.verbose && !o.raw) std::fputs("slm-run: the model has no chat template: prompt used as is\n", stderr);
    ids = text.encode(prompt, true);
  }
  if (!ids) return fail(ids.error().message);
  if (ids->empty()) return fail("the prompt has no tokens");
  if (o.print_ids) print_ids("prompt ids", *ids);

  Printer printer(o.hide_reasoning, tmpl && tmpl->prompt_opens_reasoning());
  Timing timing;
  auto out = generate(o, text, ctx, sampler, *ids, printer, timing);
  printer.finish();
  if (!out) return fail(out.error().message);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (o.print_ids) print_ids("generated ids", *out);
  if (o.stats) print_stats(timing);
  return 0;
}

// Interactive chat: each user line is a turn; the conversation is re-rendered with the template
// and only the tokens the context does not hold yet are evaluated.
int run_chat(const Options& o, const slm::tool::TextModel& text, slm::Context& ctx,
             slm::Sampler& sampler) {
  const slm::ChatTemplate* tmpl = o.raw ? nullptr : text.chat_template();
  if (!tmpl) return fail("--chat needs a model with a chat template this build recognises");
  std::vector<slm::ChatMessage> msgs;
  if (!o.system.empty()) msgs.push_back({"system", o.system});
  std::vector<int32_t> held;  // tokens in the context, in order
  Timing timing;
  const bool tty_in = isatty(STDIN_FILENO) == 1;
  std::string line;
  for (;;) {
    if (tty_in) std::fputs("\n> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line) || line.empty()) break;
    msgs.push_back({"user", line});
    auto ids = tmpl->render_ids(text.tokenizer(), msgs, true);
    if (!ids) return fail(ids.error().message);
    // Reuse the context when it holds a prefix of the new rendering; otherwise start over
    // (templates that drop earlier reasoning change the history).
    size_t common = 0;
    while (common < held.size() && common < ids->size() && held[common] == (*ids)[common]) ++common;
    std::vector<int32_t> input;
    if (common == held.size() && common < ids->size()) {
      input.assign(ids->begin() + static_cast<long>(common), ids->end());
    } else {
      ctx.reset();
      sampler.reset();
      held.clear();
      input = *ids;
    }
    if (o.print_ids) print_ids("prompt ids", input);
    Printer printer(o.hide_reasoning, tmpl->prompt_opens_reasoning());
    auto out = generate(o, text, ctx, sampler, input, printer, timing);
    printer.finish();
    if (!out) return fail(out.error().message);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (o.print_ids) print_ids("generated ids", *out);
    held.insert(held.end(), input.begin(), input.end());
    held.insert(held.end(), out->begin(), out->end());
    // The assistant's turn as generated (reasoning included: the template decides what of it
    // the history keeps).
    msgs.push_back({"assistant", text.tokenizer().decode(*out)});
  }
  if (o.stats) print_stats(timing);
  return 0;
}

int run(const Options& o) {
  const double t_load = slm::tool::now_seconds();
  auto model = slm::Model::load(o.model);
  if (!model) return fail(model.error().message);
  const slm::Model& m = **model;

  slm::ContextParams cp;
  cp.n_ctx = o.n_ctx;
  cp.n_batch = o.n_batch;
  cp.n_threads = o.n_threads;
  cp.kv_type = o.kv;
  auto ctx = m.create_context(cp);
  if (!ctx) return fail(ctx.error().message);
  if (o.verbose) {
    std::fprintf(stderr, "%s\n", m.summary().c_str());
    std::fprintf(stderr,
                 "context: %d tokens, KV %s (%s), context memory %s; threads %d; ISA %s%s%s; "
                 "load %.3f s\n",
                 cp.n_ctx, slm::kv_type_name(cp.kv_type),
                 slm::tool::human_bytes(static_cast<double>((*ctx)->kv_cache_bytes())).c_str(),
                 slm::tool::human_bytes(static_cast<double>((*ctx)->memory_bytes())).c_str(),
                 cp.n_threads, slm::isa_level_name(slm::default_isa_level()),
                 *slm::isa_env_note() ? "; " : "", slm::isa_env_note(),
                 slm::tool::now_seconds() - t_load);
    std::fprintf(stderr, "sampler: temp %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g, seed %llu\n",
                 static_cast<double>(o.sp.temperature), o.sp.top_k, static_cast<double>(o.sp.top_p),
                 static_cast<double>(o.sp.min_p), static_cast<double>(o.sp.repeat_penalty),
                 static_cast<unsigned long long>(o.sp.seed));
  }
  auto text = slm::tool::TextModel::create(m, o.template_name);
  if (!text) return fail(text.error().message);
  if (o.verbose) {
    const slm::ChatTemplate* t = text->chat_template();
    std::fprintf(stderr, "chat template: %s\n", o.raw ? "not used (--raw)" : t ? t->name().c_str() : "none (prompt used as is)");
  }
  slm::Sampler sampler(o.sp, m.info().n_vocab);
  if (o.chat) return run_chat(o, *text, **ctx, sampler);

  std::string prompt = o.prompt;
  if (!o.have_prompt) {
    auto text = slm::tool::read_file(o.prompt_file.empty() ? "-" : o.prompt_file);
    if (!text) return fail(text.error().message);
    prompt = std::move(*text);
  }
  return run_once(o, *text, **ctx, sampler, prompt);
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
    } else if (a.is("-p", "--prompt")) {
      o.prompt = a.value();
      o.have_prompt = true;
    } else if (a.is("-f", "--file")) {
      o.prompt_file = a.value();
    } else if (a.is("--raw")) {
      o.raw = true;
    } else if (a.is("--template")) {
      o.template_name = a.value();
    } else if (a.is("--system")) {
      o.system = a.value();
    } else if (a.is("--chat")) {
      o.chat = true;
    } else if (a.is("--hide-reasoning")) {
      o.hide_reasoning = true;
    } else if (a.is("-n", "--n-predict")) {
      o.n_predict = static_cast<int>(a.int_value(-1, 1 << 24));
    } else if (a.is("-c", "--ctx")) {
      o.n_ctx = static_cast<int>(a.int_value(1, 1 << 24));
    } else if (a.is("-b", "--batch")) {
      o.n_batch = static_cast<int>(a.int_value(1, 1 << 16));
    } else if (a.is("-t", "--threads")) {
      o.n_threads = static_cast<int>(a.int_value(1, 1024));
    } else if (a.is("--temp")) {
      o.sp.temperature = static_cast<float>(a.float_value(0, 100));
    } else if (a.is("--top-k")) {
      o.sp.top_k = static_cast<int>(a.int_value(0, INT32_MAX));
    } else if (a.is("--top-p")) {
      o.sp.top_p = static_cast<float>(a.float_value(0, 1));
    } else if (a.is("--min-p")) {
      o.sp.min_p = static_cast<float>(a.float_value(0, 1));
    } else if (a.is("--repeat-penalty")) {
      o.sp.repeat_penalty = static_cast<float>(a.float_value(0, 100));
    } else if (a.is("--repeat-last-n")) {
      o.sp.repeat_last_n = static_cast<int>(a.int_value(0, 1 << 20));
    } else if (a.is("--seed")) {
      o.sp.seed = static_cast<uint64_t>(a.int_value(0, INT64_MAX));
    } else if (a.is("--kv")) {
      o.kv = a.kv_value();
    } else if (a.is("--isa")) {
      o.isa = a.value();
    } else if (a.is("--print-ids")) {
      o.print_ids = true;
    } else if (a.is("--verbose")) {
      o.verbose = true;
    } else if (a.is("--no-stats")) {
      o.stats = false;
    } else {
      a.unknown();
    }
  }
  if (!a.error().empty()) return fail(a.error());
  if (o.model.empty()) return fail("no model given (-m FILE); see --help");
  if (o.have_prompt + !o.prompt_file.empty() + o.chat > 1)
    return fail("give at most one of -p, -f and --chat");
  if (!o.isa.empty()) {
    slm::Status st = slm::tool::force_isa(o.isa);
    if (!st) return fail(st.message());
  }
  return run(o);
}
