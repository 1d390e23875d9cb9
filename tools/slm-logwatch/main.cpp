// slm-logwatch: watches a log stream (stdin, a followed file, /dev/kmsg, `journalctl -f -o
// short-iso` piped in), flags notable events by a rule table, groups them into bursts and asks a
// DeepSeek-R1-family model what happened and what to check -- as a daemon on a budget (threads,
// tokens, explanations per minute, memory, idle CPU priority) and inside a seccomp sandbox.
// It uses only the C API (slm/slm.h): the proof that the ABI is enough for a real host.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rules.hpp"
#include "sandbox.hpp"
#include "slm/slm.h"

namespace {

using logwatch::Burst;

// ---- Options -----------------------------------------------------------------------------------

struct Options {
  std::string model;
  std::string input;          // "" or "-": stdin
  bool kmsg = false;
  bool kmsg_from_start = false;
  bool follow = true;         // for --input FILE: keep reading like tail -F
  bool json = false;
  bool dry_run = false;       // print prompts, generate nothing
  bool print_prompts = false; // print prompts and generate
  bool show_reasoning = false;
  int threads = 2;
  int max_tokens = 384;
  double rate_per_minute = 4;
  double max_memory_mib = 4096;
  int n_ctx = 4096;
  bool idle_priority = true;
  bool sandbox = true;
  std::string user;           // when started as root
  std::string chat_template = "deepseek-r1";
  float temperature = 0.6f;   // DeepSeek's recommendation for R1 (0.5-0.7)
  uint64_t seed = 1;
  logwatch::BurstLimits limits;
  std::string selftest_write_path;  // --sandbox-selftest PATH
};

void usage(FILE* out) {
  std::fputs(
      "usage: slm-logwatch --model M.gguf [input] [options]\n"
      "input (default: stdin, e.g. `journalctl -f -o short-iso | slm-logwatch --model m.gguf`):\n"
      "  --input FILE         read FILE and follow it like tail -F (--no-follow: stop at its end)\n"
      "  --kmsg               read /dev/kmsg (new messages; --kmsg-from-start: the whole ring)\n"
      "output:\n"
      "  --format text|json   plain text (default) or one JSON object per line\n"
      "  --show-reasoning     include the model's reasoning (hidden by default)\n"
      "  --dry-run            print the prompt of each burst, generate nothing\n"
      "  --print-prompts      print the prompt of each burst, then the explanation\n"
      "budgets:\n"
      "  --threads N          threads for the model (default 2)\n"
      "  --max-tokens N       tokens per explanation, reasoning included (default 384)\n"
      "  --rate N             explanations per minute (default 4; bursts above it are listed only)\n"
      "  --max-memory MIB     refuse to start when model + context need more (default 4096)\n"
      "  --ctx N              context length (default 4096)\n"
      "  --no-idle            keep normal priority (default: nice 19 and SCHED_IDLE)\n"
      "bursts:\n"
      "  --burst-gap S        flagged lines closer than S seconds form one burst (default 30)\n"
      "  --burst-max-lines N  lines per burst kept for the prompt (default 60)\n"
      "  --context-lines N    unflagged lines before the first flagged one (default 3)\n"
      "model:\n"
      "  --template NAME      chat template (default deepseek-r1)\n"
      "  --temperature T, --seed N\n"
      "isolation:\n"
      "  --no-sandbox         do not install the seccomp filter\n"
      "  --user NAME          user to switch to when started as root (default nobody)\n"
      "  --sandbox-selftest P after sandboxing, try forbidden calls (exec, socket, writing P)\n",
      out);
}

bool parse_args(int argc, char** argv, Options* o) {
  auto need = [&](int& i) -> const char* {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "slm-logwatch: %s needs a value\n", argv[i]);
      return nullptr;
    }
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = nullptr;
    auto num = [&](double lo, double hi, double* out) {
      if ((v = need(i)) == nullptr) return false;
      char* end = nullptr;
      const double d = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(d >= lo && d <= hi)) {
        std::fprintf(stderr, "slm-logwatch: %s: expected a number in [%g, %g], got '%s'\n", a.c_str(), lo, hi, v);
        return false;
      }
      *out = d;
      return true;
    };
    double d = 0;
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--model" || a == "-m") {
      if ((v = need(i)) == nullptr) return false;
      o->model = v;
    } else if (a == "--input" || a == "-i") {
      if ((v = need(i)) == nullptr) return false;
      o->input = v;
    } else if (a == "--kmsg") {
      o->kmsg = true;
    } else if (a == "--kmsg-from-start") {
      o->kmsg = o->kmsg_from_start = true;
    } else if (a == "--follow") {
      o->follow = true;
    } else if (a == "--no-follow") {
      o->follow = false;
    } else if (a == "--format") {
      if ((v = need(i)) == nullptr) return false;
      if (std::strcmp(v, "json") != 0 && std::strcmp(v, "text") != 0) {
        std::fprintf(stderr, "slm-logwatch: --format: expected text or json, got '%s'\n", v);
        return false;
      }
      o->json = std::strcmp(v, "json") == 0;
    } else if (a == "--json") {
      o->json = true;
    } else if (a == "--show-reasoning") {
      o->show_reasoning = true;
    } else if (a == "--dry-run") {
      o->dry_run = true;
    } else if (a == "--print-prompts") {
      o->print_prompts = true;
    } else if (a == "--threads") {
      if (!num(1, 256, &d)) return false;
      o->threads = static_cast<int>(d);
    } else if (a == "--max-tokens") {
      if (!num(1, 32768, &d)) return false;
      o->max_tokens = static_cast<int>(d);
    } else if (a == "--rate") {
      if (!num(0, 1e6, &o->rate_per_minute)) return false;
    } else if (a == "--max-memory") {
      if (!num(1, 1e9, &o->max_memory_mib)) return false;
    } else if (a == "--ctx") {
      if (!num(64, 1 << 20, &d)) return false;
      o->n_ctx = static_cast<int>(d);
    } else if (a == "--no-idle") {
      o->idle_priority = false;
    } else if (a == "--burst-gap") {
      if (!num(0, 86400, &o->limits.gap_seconds)) return false;
    } else if (a == "--burst-max-lines") {
      if (!num(2, 10000, &d)) return false;
      o->limits.max_lines = static_cast<size_t>(d);
    } else if (a == "--context-lines") {
      if (!num(0, 1000, &d)) return false;
      o->limits.context_lines = static_cast<size_t>(d);
    } else if (a == "--template") {
      if ((v = need(i)) == nullptr) return false;
      o->chat_template = v;
    } else if (a == "--temperature") {
      if (!num(0, 10, &d)) return false;
      o->temperature = static_cast<float>(d);
    } else if (a == "--seed") {
      if (!num(0, 1e18, &d)) return false;
      o->seed = static_cast<uint64_t>(d);
    } else if (a == "--no-sandbox") {
      o->sandbox = false;
    } else if (a == "--user") {
      if ((v = need(i)) == nullptr) return false;
      o->user = v;
    } else if (a == "--sandbox-selftest") {
      if ((v = need(i)) == nullptr) return false;
      o->selftest_write_path = v;
    } else {
      std::fprintf(stderr, "slm-logwatch: unknown option '%s' (see --help)\n", a.c_str());
      return false;
    }
  }
  if (o->model.empty()) {
    std::fprintf(stderr, "slm-logwatch: --model is required (see --help)\n");
    return false;
  }
  if (o->kmsg && !o->input.empty()) {
    std::fprintf(stderr, "slm-logwatch: --kmsg and --input are exclusive\n");
    return false;
  }
  return true;
}

// ---- Output ------------------------------------------------------------------------------------

// JSON string with invalid UTF-8 replaced by U+FFFD (log lines may hold any bytes).
std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      int n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
      bool ok = n > 0 && i + n <= s.size();
      for (int k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      if (ok && n == 3) {
        const unsigned c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
      }
      if (ok && n == 4) {
        const unsigned c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
      }
      if (ok) {
        out.append(s.data() + i, static_cast<size_t>(n));
        i += static_cast<size_t>(n);
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
    }
  }
  return out + "\"";
}

double now_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// ---- The prompt --------------------------------------------------------------------------------

const char* kSystemPrompt =
    "You are a Linux reliability engineer reading system logs for an administrator. A log monitor "
    "has flagged a burst of notable events and shows you the log lines around them. Explain in "
    "plain language what most likely happened, which component is involved (kernel subsystem, "
    "driver, device, filesystem, service or process) and how serious it is. Then list at most "
    "three concrete things to check next (commands, files or settings). Base every statement on "
    "the lines shown; when they are not enough to tell, say what is missing. Answer in at most "
    "150 words, without repeating the log lines.";

std::string user_prompt(const Burst& b, size_t keep_lines) {
  std::string p = "The log monitor flagged these events:";
  for (size_t i = 0; i < b.rules.size(); ++i) {
    p += i ? "; " : " ";
    p += b.rules[i]->title;
    p += " (" + std::to_string(b.counts[i]) + (b.counts[i] == 1 ? " line)" : " lines)");
  }
  char span[128];
  std::snprintf(span, sizeof span, ".\nTime span: %.1f s. Log excerpt, oldest first:\n\n", b.end - b.start);
  p += span;
  // keep_lines < lines: drop from the middle, keeping the start (what triggered it) and the end.
  const size_t n = b.lines.size();
  const size_t head = std::min(n, (keep_lines + 1) / 2), tail = std::min(n - head, keep_lines / 2);
  for (size_t i = 0; i < n; ++i) {
    const bool keep = i < head || i >= n - tail;
    if (i == head && head + tail < n) p += "[... " + std::to_string(n - head - tail) + " lines omitted ...]\n";
    if (b.n_omitted > 0 && i == b.omitted_at && keep)
      p += "[... " + std::to_string(b.n_omitted) + " lines omitted ...]\n";
    if (keep) p += b.lines[i].text + "\n";
  }
  p += "\nWhat happened, and what should I check?";
  return p;
}

// ---- Input -------------------------------------------------------------------------------------

class Source {
 public:
  std::string open(const Options& o) {
    if (o.kmsg) {
      kmsg_ = true;
      fd_ = ::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd_ < 0) return std::string("/dev/kmsg: ") + std::strerror(errno) +
                          (errno == EPERM || errno == EACCES
                               ? " (kernel.dmesg_restrict: run as root, it drops to --user after opening, or "
                                 "pipe `journalctl -k -f -o short-iso` instead)"
                               : "");
      if (!o.kmsg_from_start) lseek(fd_, 0, SEEK_END);
      return "";
    }
    if (o.input.empty() || o.input == "-") {
      fd_ = 0;
      return "";
    }
    path_ = o.input;
    follow_ = o.follow;
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return path_ + ": " + std::strerror(errno);
    remember();
    return "";
  }

  // Waits up to timeout_ms for input and appends complete lines to `lines`. Returns false at
  // the end of a stream that is not followed.
  bool read_lines(int timeout_ms, std::vector<std::string>* lines) {
    char buf[65536];
    if (fd_ < 0) return false;
    if (path_.empty()) {  // a pipe, a terminal or /dev/kmsg: poll
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, timeout_ms);
      if (r <= 0) return true;
    }
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      if (kmsg_ && errno == EPIPE) return true;  // records were overwritten: continue
      return false;
    }
    if (n == 0) {
      if (path_.empty() || !follow_) {
        if (!partial_.empty()) lines->push_back(std::move(partial_));
        partial_.clear();
        return false;
      }
      struct timespec ts{0, static_cast<long>(timeout_ms) * 1000000L};
      nanosleep(&ts, nullptr);
      check_rotation();
      return true;
    }
    if (kmsg_) {  // one record per read: "pri,seq,usec,flags;text\n KEY=value\n..."
      std::string rec(buf, static_cast<size_t>(n));
      const size_t nl = rec.find('\n');
      if (nl != std::string::npos) rec.resize(nl);
      const size_t semi = rec.find(';');
      if (semi != std::string::npos) {
        const size_t c1 = rec.find(','), c2 = c1 == std::string::npos ? c1 : rec.find(',', c1 + 1);
        const double t = c2 == std::string::npos ? 0 : std::strtod(rec.c_str() + c2 + 1, nullptr) / 1e6;
        char stamp[40];
        std::snprintf(stamp, sizeof stamp, "[%12.6f] ", t);
        lines->push_back(stamp + rec.substr(semi + 1));
      }
      return true;
    }
    partial_.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = partial_.find('\n', start)) != std::string::npos) {
      lines->push_back(partial_.substr(start, nl - start));
      start = nl + 1;
    }
    partial_.erase(0, start);
    if (partial_.size() > kMaxPartial) {  // an endless line: cut it
      lines->push_back(partial_.substr(0, kMaxPartial));
      partial_.clear();
    }
    return true;
  }

 private:
  static constexpr size_t kMaxPartial = 1 << 16;

  void remember() {
    struct stat st{};
    if (fstat(fd_, &st) == 0) {
      ino_ = st.st_ino;
      dev_ = st.st_dev;
    }
  }
  // tail -F: a new file at the path (rotation) or a truncated one is read from its start.
  void check_rotation() {
    struct stat by_path{}, open_st{};
    if (stat(path_.c_str(), &by_path) != 0) return;  // gone for now: keep the old one
    const off_t pos = lseek(fd_, 0, SEEK_CUR);
    if (by_path.st_ino != ino_ || by_path.st_dev != dev_) {
      const int nfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (nfd < 0) return;
      ::close(fd_);
      fd_ = nfd;
      remember();
    } else if (fstat(fd_, &open_st) == 0 && open_st.st_size < pos) {
      lseek(fd_, 0, SEEK_SET);
    }
  }

  int fd_ = -1;
  bool kmsg_ = false, follow_ = false;
  std::string path_, partial_;
  ino_t ino_ = 0;
  dev_t dev_ = 0;
};

// ---- Explaining --------------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;
slm_context* g_ctx = nullptr;

void on_signal(int) {
  g_stop = 1;
  if (g_ctx) slm_context_cancel(g_ctx);  // one atomic store: async-signal-safe
}

struct Answer {
  std::string answer, reasoning;
};

int32_t on_token(void* user, int32_t, const char* text, size_t len, slm_channel ch) {
  auto* a = static_cast<Answer*>(user);
  (ch == SLM_CHANNEL_REASONING ? a->reasoning : a->answer).append(text, len);
  return g_stop ? 1 : 0;
}

const char* stop_name(int32_t r) {
  switch (r) {
    case SLM_STOP_EOG: return "end";
    case SLM_STOP_MAX_TOKENS: return "max-tokens";
    case SLM_STOP_CALLBACK: return "stopped";
    case SLM_STOP_CANCELLED: return "cancelled";
    case SLM_STOP_CONTEXT_FULL: return "context-full";
    default: return "none";
  }
}

class Watcher {
 public:
  Watcher(const Options& o, slm_model* model, slm_context* ctx) : o_(o), model_(model), ctx_(ctx) {
    tokens_ = o.rate_per_minute;
  }

  void handle(const Burst& b) {
    ++n_bursts_;
    // Token bucket: rate_per_minute explanations, refilled continuously (wall clock).
    const double now = now_seconds();
    if (last_refill_ > 0) tokens_ = std::min(o_.rate_per_minute, tokens_ + (now - last_refill_) * o_.rate_per_minute / 60.0);
    last_refill_ = now;
    const bool allowed = tokens_ >= 1.0;
    if (allowed) tokens_ -= 1.0;

    std::string record;
    std::string head = header(b, allowed);
    std::string prompt_text;
    std::vector<int32_t> ids;
    std::string error;
    if (allowed) error = render(b, &prompt_text, &ids);
    Answer ans;
    slm_generate_result r{};
    if (allowed && error.empty() && !o_.dry_run) {
      slm_context_reset(ctx_);
      slm_generate_params gp = slm_generate_default_params();
      gp.max_tokens = o_.max_tokens;
      gp.on_token = on_token;
      gp.user_data = &ans;
      gp.split_reasoning = 1;
      gp.starts_in_reasoning = slm_chat_opens_reasoning(model_, o_.chat_template.c_str());
      const slm_status s = slm_generate(ctx_, ids.data(), ids.size(), &gp, &r);
      if (s != SLM_OK) error = slm_context_error(ctx_);
      ++n_explained_;
    }
    emit(b, allowed, head, prompt_text, ids.size(), ans, r, error);
  }

  size_t bursts() const { return n_bursts_; }
  size_t explained() const { return n_explained_; }

 private:
  std::string header(const Burst& b, bool allowed) const {
    std::string rules;
    for (size_t i = 0; i < b.rules.size(); ++i) rules += (i ? "," : "") + std::string(b.rules[i]->id);
    (void)allowed;
    return rules;
  }

  // Renders the prompt; lines are dropped from the middle until prompt + answer fit n_ctx.
  std::string render(const Burst& b, std::string* text, std::vector<int32_t>* ids) {
    size_t keep = b.lines.size();
    while (true) {
      const std::string user = user_prompt(b, keep);
      slm_chat_message msgs[2] = {{"system", kSystemPrompt}, {"user", user.c_str()}};
      size_t n = 0;
      slm_status s = slm_chat_tokenize(model_, o_.chat_template.c_str(), msgs, 2, 1, nullptr, 0, &n);
      if (s != SLM_OK && s != SLM_ERR_BUFFER_TOO_SMALL) return slm_last_error();
      if (static_cast<long>(n) + o_.max_tokens <= o_.n_ctx || keep <= 2) {
        ids->resize(n);
        s = slm_chat_tokenize(model_, o_.chat_template.c_str(), msgs, 2, 1, ids->data(), ids->size(), &n);
        if (s != SLM_OK) return slm_last_error();
        if (static_cast<long>(n) >= o_.n_ctx) return "prompt does not fit the context (raise --ctx)";
        if (o_.dry_run || o_.print_prompts) {
          size_t tn = 0;
          slm_chat_apply(model_, o_.chat_template.c_str(), msgs, 2, 1, nullptr, 0, &tn);
          text->assign(tn, '\0');
          if (slm_chat_apply(model_, o_.chat_template.c_str(), msgs, 2, 1, text->data(), text->size(), &tn) != SLM_OK)
            return slm_last_error();
        }
        return "";
      }
      keep = keep * 3 / 4;
    }
  }

  void emit(const Burst& b, bool allowed, const std::string& rule_ids, const std::string& prompt, size_t prompt_tokens,
            const Answer& ans, const slm_generate_result& r, const std::string& error) {
    std::string first;
    for (const auto& l : b.lines)
      if (l.rule) {
        first = l.text;
        break;
      }
    if (o_.json) {
      std::string j = "{\"type\":\"event\",\"rules\":[";
      for (size_t i = 0; i < b.rules.size(); ++i) j += (i ? "," : "") + json_str(b.rules[i]->id);
      j += "],\"counts\":{";
      for (size_t i = 0; i < b.rules.size(); ++i)
        j += (i ? "," : "") + json_str(b.rules[i]->id) + ":" + std::to_string(b.counts[i]);
      char num[160];
      std::snprintf(num, sizeof num, "},\"severity\":\"%s\",\"lines\":%zu,\"flagged\":%zu,\"omitted\":%zu,\"span\":%.3f,",
                    logwatch::severity_name(b.severity), b.lines.size() + b.n_omitted, b.n_flagged, b.n_omitted,
                    b.end - b.start);
      j += num;
      j += "\"first\":" + json_str(first) + ",\"explained\":" + (allowed && !o_.dry_run && error.empty() ? "true" : "false");
      if (!allowed) j += ",\"skipped\":\"rate limit\"";
      if (!prompt.empty()) j += ",\"prompt\":" + json_str(prompt) + ",\"prompt_tokens\":" + std::to_string(prompt_tokens);
      if (allowed && !o_.dry_run && error.empty()) {
        std::snprintf(num, sizeof num, ",\"tokens\":%d,\"stop\":\"%s\",\"seconds\":%.3f", r.n_generated,
                      stop_name(r.stop_reason), r.prefill_seconds + r.decode_seconds);
        j += num;
        j += ",\"answer\":" + json_str(ans.answer);
        if (o_.show_reasoning) j += ",\"reasoning\":" + json_str(ans.reasoning);
      }
      if (!error.empty()) j += ",\"error\":" + json_str(error);
      j += "}\n";
      std::fputs(j.c_str(), stdout);
    } else {
      std::printf("== [%s] %s: %zu lines (%zu flagged), %.1f s\n   first: %s\n", logwatch::severity_name(b.severity),
                  rule_ids.c_str(), b.lines.size() + b.n_omitted, b.n_flagged, b.end - b.start, first.c_str());
      if (!allowed) std::printf("   (not explained: rate limit of %g per minute)\n", o_.rate_per_minute);
      if (!prompt.empty()) std::printf("--- prompt (%zu tokens) ---\n%s\n--- end of prompt ---\n", prompt_tokens, prompt.c_str());
      if (!error.empty()) std::printf("   error: %s\n", error.c_str());
      if (allowed && !o_.dry_run && error.empty()) {
        if (o_.show_reasoning && !ans.reasoning.empty()) std::printf("--- reasoning ---\n%s\n", ans.reasoning.c_str());
        std::printf("%s\n   (%d tokens, %s, %.1f s)\n", ans.answer.c_str(), r.n_generated, stop_name(r.stop_reason),
                    r.prefill_seconds + r.decode_seconds);
      }
    }
    std::fflush(stdout);
  }

  const Options& o_;
  slm_model* model_;
  slm_context* ctx_;
  double tokens_ = 0, last_refill_ = 0;
  size_t n_bursts_ = 0, n_explained_ = 0;
};

int process_threads() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "Threads: %d", &n) == 1) break;
  std::fclose(f);
  return n;
}

}  // namespace

// ---- Main --------------------------------------------------------------------------------------

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, &o)) return 2;

  // Lowest CPU priority first: nice and the scheduling policy are per thread on Linux, and the
  // context's worker threads inherit them when they are created below.
  std::string priority = "normal";
  if (o.idle_priority) {
    errno = 0;
    setpriority(PRIO_PROCESS, 0, 19);
    sched_param sp{};
    const bool idle = sched_setscheduler(0, SCHED_IDLE, &sp) == 0;
    priority = std::string("nice ") + std::to_string(getpriority(PRIO_PROCESS, 0)) + (idle ? ", SCHED_IDLE" : "");
  }

  Source source;
  if (std::string err = source.open(o); !err.empty()) {
    std::fprintf(stderr, "slm-logwatch: %s\n", err.c_str());
    return 1;
  }

  // Memory budget: known before anything is loaded.
  slm_context_params cp = slm_context_default_params();
  cp.n_ctx = o.n_ctx;
  cp.n_threads = o.threads;
  cp.n_batch = 256;
  cp.sampler.temperature = o.temperature;
  cp.sampler.seed = o.seed;
  slm_memory_estimate need{};
  if (slm_memory_required(o.model.c_str(), nullptr, &cp, &need) != SLM_OK) {
    std::fprintf(stderr, "slm-logwatch: %s\n", slm_last_error());
    return 1;
  }
  const double need_mib = static_cast<double>(need.total_bytes) / 1048576.0;
  if (need_mib > o.max_memory_mib) {
    std::fprintf(stderr,
                 "slm-logwatch: the model and its context need %.1f MiB (weights %.1f, model %.1f, context %.1f with "
                 "KV %.1f), over the --max-memory budget of %.0f MiB (lower --ctx or raise the budget)\n",
                 need_mib, need.weights_bytes / 1048576.0, need.model_bytes / 1048576.0, need.context_bytes / 1048576.0,
                 need.kv_bytes / 1048576.0, o.max_memory_mib);
    return 1;
  }

  slm_model* model = nullptr;
  if (slm_model_load_file(o.model.c_str(), nullptr, &model) != SLM_OK) {
    std::fprintf(stderr, "slm-logwatch: %s\n", slm_last_error());
    return 1;
  }
  slm_context* ctx = nullptr;
  if (slm_context_create(model, &cp, &ctx) != SLM_OK) {
    std::fprintf(stderr, "slm-logwatch: %s\n", slm_last_error());
    slm_model_free(model);
    return 1;
  }
  g_ctx = ctx;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Isolation: everything needing privileges or new resources is done; drop them.
  if (std::string err = logwatch::drop_root(o.user); !err.empty()) {
    std::fprintf(stderr, "slm-logwatch: %s\n", err.c_str());
    return 1;
  }
  const int n_threads_running = process_threads();
  const unsigned uid = static_cast<unsigned>(getuid());
  std::string sandbox = "off (--no-sandbox)";
  if (o.sandbox) {
    const std::string err = logwatch::install_seccomp();
    if (!err.empty() && !o.selftest_write_path.empty()) {
      std::fprintf(stderr, "slm-logwatch: sandbox: %s\n", err.c_str());
      return 1;
    }
    sandbox = err.empty() ? "seccomp" : "off: " + err;
  }
  if (!o.selftest_write_path.empty()) {
    const int rc = logwatch::sandbox_selftest("/proc/self/status", o.selftest_write_path);
    slm_context_free(ctx);
    slm_model_free(model);
    return rc;
  }

  slm_model_info info{};
  slm_model_get_info(model, &info);
  if (o.json) {
    std::printf("{\"type\":\"start\",\"model\":%s,\"arch\":%s,\"threads\":%d,\"process_threads\":%d,\"isa\":\"%s\","
                "\"memory_mib\":%.1f,\"budget_mib\":%.0f,\"priority\":%s,\"sandbox\":%s,\"uid\":%u,"
                "\"max_tokens\":%d,\"rate_per_minute\":%g,\"dry_run\":%s}\n",
                json_str(o.model).c_str(), json_str(info.arch).c_str(), o.threads, n_threads_running, slm_isa_level(),
                need_mib, o.max_memory_mib, json_str(priority).c_str(), json_str(sandbox).c_str(),
                uid, o.max_tokens, o.rate_per_minute, o.dry_run ? "true" : "false");
    std::fflush(stdout);
  } else {
    std::fprintf(stderr,
                 "slm-logwatch: %s (%s), %d threads, isa %s, %.1f MiB of %.0f, %s, sandbox %s, %d tokens per "
                 "explanation, %g per minute\n",
                 o.model.c_str(), info.arch, o.threads, slm_isa_level(), need_mib, o.max_memory_mib, priority.c_str(),
                 sandbox.c_str(), o.max_tokens, o.rate_per_minute);
  }

  logwatch::Grouper grouper(o.limits);
  Watcher watcher(o, model, ctx);
  std::vector<std::string> lines;
  bool more = true;
  while (more && !g_stop) {
    lines.clear();
    more = source.read_lines(250, &lines);
    const double now = now_seconds();
    for (const std::string& l : lines) grouper.push(l, now);
    if (more) grouper.tick(now);
    else grouper.flush();
    while (auto b = grouper.take()) {
      if (g_stop) break;
      watcher.handle(*b);
    }
  }
  if (o.json)
    std::printf("{\"type\":\"end\",\"lines\":%zu,\"bursts\":%zu,\"explained\":%zu}\n", grouper.lines_seen(),
                watcher.bursts(), watcher.explained());
  else
    std::fprintf(stderr, "slm-logwatch: %zu lines, %zu bursts, %zu explained\n", grouper.lines_seen(),
                 watcher.bursts(), watcher.explained());
  std::fflush(stdout);
  slm_context_free(ctx);
  slm_model_free(model);
  return 0;
}
