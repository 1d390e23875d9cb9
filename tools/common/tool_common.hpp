// Small helpers the command-line tools share: argument parsing, timing, memory, hashing, ISA.
// Header-only and tool-side only: nothing here belongs to the library.
#pragma once

#include <sys/resource.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "slm/cpu.hpp"
#include "slm/model.hpp"
#include "slm/status.hpp"

namespace slm::tool {

// ============================================================================================
// Argument parsing
// ============================================================================================

// Walks argv one option at a time; value() takes the option's argument or records an error.
class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() {
    ++i_;
    return i_ < argc_ && error_.empty();
  }
  std::string_view current() const { return argv_[i_]; }
  bool is(std::string_view a, std::string_view b = {}) const {
    return current() == a || (!b.empty() && current() == b);
  }
  // The value after the current option ("" and an error when missing).
  std::string value() {
    if (i_ + 1 >= argc_) {
      fail("option " + std::string(current()) + " needs a value");
      return {};
    }
    return argv_[++i_];
  }
  long long int_value(long long min, long long max) {
    const std::string opt(current());
    const std::string v = value();
    if (!error_.empty()) return 0;
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || x < min || x > max) {
      fail("option " + opt + ": '" + v + "' is not an integer in [" + std::to_string(min) + ", " +
           std::to_string(max) + "]");
      return 0;
    }
    return x;
  }
  double float_value(double min, double max) {
    const std::string opt(current());
    const std::string v = value();
    if (!error_.empty()) return 0;
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(x) || x < min || x > max) {
      fail("option " + opt + ": '" + v + "' is not a number in [" + std::to_string(min) + ", " +
           std::to_string(max) + "]");
      return 0;
    }
    return x;
  }
  // The value of --kv: the KV cache element type (f16 or f32).
  KvType kv_value() {
    const std::string v = value();
    if (v == "f32") return KvType::F32;
    if (v != "f16" && error_.empty()) fail("--kv: expected f16 or f32, got '" + v + "'");
    return KvType::F16;
  }
  void fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }
  void unknown() { fail("unknown option '" + std::string(current()) + "' (see --help)"); }
  const std::string& error() const { return error_; }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string error_;
};

// "1,2,8" or "1 2 8" -> {1, 2, 8}; an Error naming the bad item otherwise.
inline Expected<std::vector<long long>> parse_int_list(std::string_view text, long long min,
                                                       long long max) {
  std::vector<long long> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i]))))
      ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && text[j] != ',' && !std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
    const std::string item(text.substr(i, j - i));
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || x < min || x > max)
      return errorf("'%s' is not an integer in [%lld, %lld]", item.c_str(), min, max);
    out.push_back(x);
    i = j;
  }
  if (out.empty()) return errorf("empty list of integers");
  return out;
}

// The whole file (or stdin for "-") as bytes.
inline Expected<std::string> read_file(const std::string& path) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return errorf("%s: cannot open (%s)", path.c_str(), std::strerror(errno));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return errorf("%s: read error", path.c_str());
  return s;
}

// ============================================================================================
// Measuring
// ============================================================================================

inline double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

// CPU time (user + system, all threads) this process has used, in seconds. On a shared machine
// tokens per CPU-second says what the cores did while they were scheduled.
inline double process_cpu_seconds() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// Peak resident set size of this process in bytes (Linux reports ru_maxrss in KiB).
inline size_t peak_rss_bytes() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

// FNV-1a over the bytes of the logits: a short fingerprint so that a change in numerics shows
// up in a benchmark log (equal hashes = bit-identical logits).
inline uint32_t logits_hash(std::span<const float> logits) {
  uint32_t h = 2166136261u;
  const auto* p = reinterpret_cast<const unsigned char*>(logits.data());
  for (size_t i = 0; i < logits.size_bytes(); ++i) {
    h ^= p[i];
    h *= 16777619u;
  }
  return h;
}

inline std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// 1234567 -> "1.23 M"; for parameter counts and bytes.
inline std::string human(double v, const char* unit) {
  const char* prefixes[] = {"", " K", " M", " G", " T"};
  int p = 0;
  while (std::fabs(v) >= 1000 && p < 4) {
    v /= 1000;
    ++p;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, p == 0 ? "%.0f%s%s" : "%.2f%s%s", v, prefixes[p], unit);
  return buf;
}

inline std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

struct MeanStd {
  double mean = 0, stdev = 0;
};
// Mean and sample standard deviation (Bessel's correction, as llama-bench); stdev 0 for n < 2.
inline MeanStd mean_std(std::span<const double> xs) {
  MeanStd r;
  if (xs.empty()) return r;
  for (double x : xs) r.mean += x;
  r.mean /= static_cast<double>(xs.size());
  if (xs.size() > 1) {
    double ss = 0;
    for (double x : xs) ss += (x - r.mean) * (x - r.mean);
    r.stdev = std::sqrt(ss / static_cast<double>(xs.size() - 1));
  }
  return r;
}

// ============================================================================================
// ISA level
// ============================================================================================

// Forces the kernel level for this process (--isa NAME). The kernels read SLM_ISA once, on first
// use, so this must run before a model is loaded or a kernel is called. An unknown name or a
// level this CPU or build lacks is an error (the library silently ignores a bad SLM_ISA; a flag
// the user typed should not be ignored).
inline Status force_isa(const std::string& name) {
  auto level = parse_isa_level(name);
  if (!level) return level.error();
  // Set before anything asks for the level: detection reads SLM_ISA once, on first use.
  setenv("SLM_ISA", isa_level_name(*level), 1);
  if (default_isa_level() == *level) return Status::success();
  if (!isa_level_supported(*level))
    return errorf("--isa %s: not supported here (this CPU and build go up to %s)", name.c_str(),
                  isa_level_name(cpu_max_isa_level()));
  return errorf("--isa %s: the kernel level was already fixed at %s", name.c_str(),
                isa_level_name(default_isa_level()));
}

}  // namespace slm::tool
