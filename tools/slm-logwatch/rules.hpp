// slm-logwatch: the table of notable log events, line timestamps, and the grouping of flagged
// lines into bursts (one explanation per burst), all with bounded memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace logwatch {

enum class Severity { kWarning = 0, kError = 1, kCritical = 2 };
const char* severity_name(Severity s);

// One kind of notable event: a line matches when it contains any of `any` (case-insensitive)
// and none of `unless`. `frame` rules match call-trace frame lines ("func+0x1b/0x40").
struct Rule {
  const char* id;
  const char* title;  // what the prompt calls it
  Severity severity;
  std::vector<std::string_view> any;
  std::vector<std::string_view> unless;
  bool frame = false;
};

const std::vector<Rule>& rules();

// The rule a line matches (the first in table order), or nullptr.
const Rule* match(std::string_view line);

// Seconds from the line's own timestamp: journalctl short-iso / RFC 3339 ("2026-11-26T13:31:03
// [.frac][+zone]", as seconds since the epoch), kernel "[  123.456789]" (seconds since boot),
// /dev/kmsg records ("6,1234,123456789,-;", microseconds since boot), syslog "Nov 26 13:31:03"
// (seconds since the start of the year). nullopt when the line has none.
std::optional<double> line_time(std::string_view line);

struct Line {
  std::string text;
  double time = 0;      // line_time, or the arrival time when the line has none
  double arrival = 0;   // when it was read (the caller's clock)
  const Rule* rule = nullptr;
};

struct Burst {
  std::vector<Line> lines;         // context before, flagged lines and what came between
  std::vector<const Rule*> rules;  // distinct rules, in order of first appearance
  std::vector<size_t> counts;      // flagged lines per entry of `rules`
  size_t n_flagged = 0;
  size_t n_omitted = 0;            // lines dropped from the middle (max_lines)...
  size_t omitted_at = 0;           // ...before lines[omitted_at]
  Severity severity = Severity::kWarning;
  double start = 0, end = 0;
};

struct BurstLimits {
  double gap_seconds = 30.0;      // a flagged line within this of the last one joins the burst
  double max_seconds = 120.0;     // a burst closes after this long
  size_t max_lines = 60;          // lines kept per burst (the first and the last halves)
  size_t context_lines = 3;       // unflagged lines before the first flagged one
  size_t max_line_bytes = 1024;   // longer lines are cut
};

// Feeds lines in order; completed bursts are queued for take().
class Grouper {
 public:
  explicit Grouper(BurstLimits limits) : limits_(limits) {}
  void push(std::string_view text, double arrival_time);
  // Closes the open burst when `now` (the arrival clock) is past its gap: a live stream that
  // goes quiet ends the burst without waiting for the next line.
  void tick(double now);
  void flush();  // closes the open burst (end of input)
  std::optional<Burst> take();
  size_t lines_seen() const { return lines_seen_; }

 private:
  void add_to_burst(Line line);
  void close();

  BurstLimits limits_;
  std::deque<Line> before_;         // the last context_lines unflagged lines
  std::optional<Burst> open_;
  std::vector<Line> tail_;          // lines past max_lines/2 once the burst is full (ring)
  size_t tail_next_ = 0;
  double last_flagged_ = 0, last_flagged_arrival_ = 0;
  double last_time_ = 0;   // timestamp of the last line that had one
  bool have_time_ = false;
  std::deque<Burst> done_;
  size_t lines_seen_ = 0;
};

}  // namespace logwatch
