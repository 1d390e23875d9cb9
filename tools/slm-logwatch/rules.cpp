// slm-logwatch: the rule table, timestamps and burst grouping (see rules.hpp).
#include "rules.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace logwatch {

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::kWarning: return "warning";
    case Severity::kError: return "error";
    case Severity::kCritical: return "critical";
  }
  return "warning";
}

// ---- The table ---------------------------------------------------------------------------------
// Order matters: the first match names the line. Patterns are matched case-insensitively.

const std::vector<Rule>& rules() {
  using S = Severity;
  static const std::vector<Rule> table = {
      {"kernel-oops", "kernel oops / BUG / panic", S::kCritical,
       {"oops:", "bug: unable to handle", "bug: kernel null pointer", "kernel bug at", "general protection fault",
        "kernel panic", "bug: scheduling while atomic", "bug: soft lockup", "watchdog: bug:"},
       {"traps: "}},
      {"kernel-warn", "kernel WARNING", S::kError, {"warning: cpu:", "[ cut here ]"}, {}},
      {"call-trace", "call trace", S::kError,
       {"call trace:", "<task>", "</task>", "<irq>", "</irq>", "rip: 00", "modules linked in:"}, {},
       /*frame=*/true},
      {"hung-task", "hung task / lockup / RCU stall", S::kError,
       {"blocked for more than", "hard lockup", "rcu_sched self-detected stall", "detected stalls on cpus"}, {}},
      {"oom-kill", "out-of-memory kill", S::kCritical,
       {"out of memory:", "invoked oom-killer", "oom-kill:", "killed process", "memory cgroup out of memory"}, {}},
      {"segfault", "process crash (segfault, trap, core dump)", S::kError,
       {"segfault at", "traps: ", "general protection ip:", "dumped core", "core dumped", "code=dumped"}, {}},
      {"fs-error", "filesystem error", S::kCritical,
       {"ext4-fs error", "ext4-fs warning", "ext4-fs (", "remounting filesystem read-only", "xfs (", "btrfs error",
        "btrfs warning", "fat-fs (", "journal has aborted", "corruption"},
       {"mounted filesystem", "recovery complete", "mounting", "re-mounted", "unmounting"}},
      {"io-error", "storage I/O error", S::kError,
       {"i/o error", "blk_update_request", "critical medium error", "medium error", "exception emask",
        "failed command:", "hardreset", "i/o timeout", "timeout, aborting", "timeout, reset controller", "controller is down", "sense key",
        "unrecovered read error"},
       {}},
      {"hw-error", "hardware error (MCE, EDAC, PCIe AER)", S::kCritical,
       {"machine check", "mce: ", "hardware error", "edac ", "pcie bus error", "aer: "},
       {"temperature"}},  // "mce: CPUn: Package temperature ..." is thermal
      {"usb", "USB disconnect / enumeration failure", S::kWarning,
       {"usb disconnect", "unable to enumerate usb device", "device descriptor read", "device not accepting address",
        "reset high-speed usb device", "reset superspeed usb device", "over-current"},
       {}},
      {"link-flap", "network link flap", S::kWarning,
       {"link is down", "carrier lost", "link down", "link is not ready"},  // "up" lines join as context
       {}},
      {"thermal", "thermal event / throttling", S::kWarning,
       {"temperature above threshold", "clock throttled", "critical temperature", "thermal throttling",
        "throttling"},
       {}},
      {"service-failure", "service failure", S::kError,
       {"failed to start", "failed with result", "main process exited, code=exited, status=",
        "main process exited, code=killed", "main process exited, code=dumped", "entered failed state",
        "start request repeated too quickly", "scheduled restart job"},
       {}},
  };
  return table;
}

namespace {

bool contains_ci(std::string_view hay_lower, std::string_view needle_lower) {
  return hay_lower.find(needle_lower) != std::string_view::npos;
}

// A call-trace frame: " func_name+0x1b/0x40 [module]" or " ? func+0x10/0x20".
bool is_frame(std::string_view s) {
  size_t plus = s.find("+0x");
  while (plus != std::string_view::npos) {
    size_t i = plus + 3;
    while (i < s.size() && std::isxdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i > plus + 3 && i + 3 < s.size() && s[i] == '/' && s[i + 1] == '0' && s[i + 2] == 'x') return true;
    plus = s.find("+0x", plus + 3);
  }
  return false;
}

bool digits(std::string_view s, size_t at, size_t n) {
  if (at + n > s.size()) return false;
  for (size_t i = at; i < at + n; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}
int num(std::string_view s, size_t at, size_t n) {
  int v = 0;
  for (size_t i = at; i < at + n; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil).
long days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const long yoe = y - era * 400;
  const long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace

const Rule* match(std::string_view line) {
  std::string lower(line.size(), '\0');
  std::transform(line.begin(), line.end(), lower.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  for (const Rule& r : rules()) {
    bool hit = r.frame && is_frame(line);
    for (std::string_view p : r.any) hit = hit || contains_ci(lower, p);
    if (!hit) continue;
    bool excluded = false;
    for (std::string_view p : r.unless) excluded = excluded || contains_ci(lower, p);
    if (!excluded) return &r;
  }
  return nullptr;
}

std::optional<double> line_time(std::string_view s) {
  // /dev/kmsg: "pri,seq,usec,flags;message"
  if (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
    const size_t semi = s.find(';');
    if (semi != std::string_view::npos && semi < 64) {
      const std::string head(s.substr(0, semi));
      const size_t c1 = head.find(','), c2 = c1 == std::string::npos ? c1 : head.find(',', c1 + 1);
      if (c2 != std::string::npos) return std::strtod(head.c_str() + c2 + 1, nullptr) / 1e6;
    }
  }
  // RFC 3339 / journalctl -o short-iso: 2026-11-26T13:31:03[.123][+0000]
  if (digits(s, 0, 4) && s.size() >= 19 && s[4] == '-' && digits(s, 5, 2) && s[7] == '-' && digits(s, 8, 2) &&
      (s[10] == 'T' || s[10] == ' ') && digits(s, 11, 2) && s[13] == ':' && digits(s, 14, 2) && s[16] == ':' &&
      digits(s, 17, 2)) {
    double t = static_cast<double>(days_from_civil(num(s, 0, 4), num(s, 5, 2), num(s, 8, 2))) * 86400.0 +
               num(s, 11, 2) * 3600.0 + num(s, 14, 2) * 60.0 + num(s, 17, 2);
    size_t i = 19;
    if (i < s.size() && s[i] == '.') {
      double scale = 0.1;
      for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, scale /= 10) t += (s[i] - '0') * scale;
    }
    if (i + 5 <= s.size() && (s[i] == '+' || s[i] == '-') && digits(s, i + 1, 2)) {
      const int hh = num(s, i + 1, 2);
      const int mm = digits(s, i + 3, 2) ? num(s, i + 3, 2) : (s[i + 3] == ':' && digits(s, i + 4, 2) ? num(s, i + 4, 2) : 0);
      t -= (s[i] == '+' ? 1 : -1) * (hh * 3600.0 + mm * 60.0);
    }
    return t;
  }
  // dmesg: "[  123.456789] ..."
  if (!s.empty() && s[0] == '[') {
    size_t i = 1;
    while (i < s.size() && s[i] == ' ') ++i;
    const size_t b = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i > b && i < s.size() && s[i] == ']') return std::strtod(std::string(s.substr(b, i - b)).c_str(), nullptr);
  }
  // syslog: "Nov 26 13:31:03 host ..."
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() >= 15 && s[3] == ' ' && s[9] == ':' && s[12] == ':') {
    for (int m = 0; m < 12; ++m) {
      if (s.substr(0, 3) != kMonths[m]) continue;
      const int day = s[4] == ' ' ? num(s, 5, 1) : (digits(s, 4, 2) ? num(s, 4, 2) : 0);
      if (day == 0 || !digits(s, 7, 2) || !digits(s, 10, 2) || !digits(s, 13, 2)) return std::nullopt;
      return static_cast<double>(days_from_civil(2001, m + 1, day) - days_from_civil(2001, 1, 1)) * 86400.0 +
             num(s, 7, 2) * 3600.0 + num(s, 10, 2) * 60.0 + num(s, 13, 2);
    }
  }
  return std::nullopt;
}

// ---- Bursts ------------------------------------------------------------------------------------

void Grouper::push(std::string_view text, double arrival_time) {
  ++lines_seen_;
  Line line;
  line.text = std::string(text.substr(0, limits_.max_line_bytes));
  if (text.size() > limits_.max_line_bytes) line.text += " [...]";
  // A line without a timestamp of its own (a continuation) shares the previous line's.
  const std::optional<double> t = line_time(text);
  line.time = t ? *t : (have_time_ ? last_time_ : arrival_time);
  if (t) {
    have_time_ = true;
    last_time_ = *t;
  }
  line.arrival = arrival_time;
  line.rule = match(text);
  if (open_) {
    // A line whose time runs backwards (another clock, a reboot) does not hold the burst open.
    const bool in_gap = line.time >= last_flagged_ && line.time - last_flagged_ <= limits_.gap_seconds;
    const bool too_long = line.time - open_->start > limits_.max_seconds;
    if (in_gap && !too_long) {  // flagged, or context inside the burst
      add_to_burst(std::move(line));
      return;
    }
    close();
  }
  if (line.rule) {
    open_.emplace();
    open_->start = line.time;
    for (Line& b : before_) open_->lines.push_back(std::move(b));
    before_.clear();
    add_to_burst(std::move(line));
    return;
  }
  before_.push_back(std::move(line));
  while (before_.size() > limits_.context_lines) before_.pop_front();
}

void Grouper::add_to_burst(Line line) {
  Burst& b = *open_;
  b.end = std::max(b.end, line.time);
  if (line.rule) {
    ++b.n_flagged;
    last_flagged_ = line.time;
    last_flagged_arrival_ = line.arrival;
    auto it = std::find(b.rules.begin(), b.rules.end(), line.rule);
    if (it == b.rules.end()) {
      b.rules.push_back(line.rule);
      b.counts.push_back(1);
    } else {
      ++b.counts[static_cast<size_t>(it - b.rules.begin())];
    }
    b.severity = std::max(b.severity, line.rule->severity);
  }
  // Keep the first max_lines/2 lines and a ring of the last max_lines/2.
  const size_t head = limits_.max_lines / 2, tail = limits_.max_lines - head;
  if (b.lines.size() < head) {
    b.lines.push_back(std::move(line));
    return;
  }
  if (tail_.size() < tail) {
    tail_.push_back(std::move(line));
    return;
  }
  if (tail == 0) {
    ++b.n_omitted;
    return;
  }
  tail_[tail_next_] = std::move(line);
  tail_next_ = (tail_next_ + 1) % tail;
  ++b.n_omitted;
}

void Grouper::close() {
  if (!open_) return;
  Burst& b = *open_;
  b.omitted_at = b.lines.size();
  for (size_t i = 0; i < tail_.size(); ++i) b.lines.push_back(std::move(tail_[(tail_next_ + i) % tail_.size()]));
  tail_.clear();
  tail_next_ = 0;
  done_.push_back(std::move(b));
  open_.reset();
}

void Grouper::tick(double now) {
  if (open_ && now - last_flagged_arrival_ > limits_.gap_seconds) close();
}

void Grouper::flush() { close(); }

std::optional<Burst> Grouper::take() {
  if (done_.empty()) return std::nullopt;
  Burst b = std::move(done_.front());
  done_.pop_front();
  return b;
}

}  // namespace logwatch
