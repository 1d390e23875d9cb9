// slm-logwatch on recorded log excerpts (tests/data/logs): the right events are flagged, bursts
// are grouped, the rendered prompt is the expected one (--dry-run), budgets hold (tokens, rate,
// threads, memory, priority), stdin and a followed file work, and the sandbox refuses what it must.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../tools/slm-logwatch/rules.hpp"
#include "model/random_model.hpp"
#include "slm/json.hpp"

#ifndef SLM_LOGWATCH_TOOL
#define SLM_LOGWATCH_TOOL ""
#endif

namespace {

std::string source_dir() {
  const char* s = std::getenv("SLM_SOURCE_DIR");
  return s ? s : SLM_SOURCE_DIR_FALLBACK;
}
std::string log_path(const std::string& name) { return source_dir() + "/tests/data/logs/" + name; }

// A tiny random model written once per test run.
const std::string& model_path() {
  static std::string path = [] {
    auto spec = slm::mkmodel::preset("tiny", "qwen2");
    REQUIRE(spec.ok());
    spec->n_embd = 64, spec->n_ff = 128, spec->n_head = 4, spec->n_head_kv = 2;
    spec->type = "F32";
    const std::string p = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/slm_logwatch_" +
                          std::to_string(getpid()) + ".gguf";
    auto st = slm::mkmodel::write_file(*spec, p);
    REQUIRE_MESSAGE(st.ok(), st.message());
    return p;
  }();
  return path;
}
struct RemoveModel {
  ~RemoveModel() { std::remove(model_path().c_str()); }
};

struct Run {
  int status = -1;
  std::string out;
};

// Runs the tool with `args` (shell words), stdin from `input` when not empty.
Run run(const std::string& args, const std::string& input = "") {
  // LeakSanitizer needs ptrace/clone at exit, which the sandbox forbids.
  std::string cmd = "ASAN_OPTIONS=detect_leaks=0 " + std::string(SLM_LOGWATCH_TOOL) + " --model " + model_path() +
                    " " + args + " 2>&1";
  // SCHED_IDLE gets almost no CPU while other tests run (ctest -j2): only the priority check
  // below runs with the default.
  if (args.find("--idle-default") == std::string::npos) cmd.insert(cmd.find(" --model"), " --no-idle");
  else cmd.replace(cmd.find(" --idle-default"), 15, "");
  if (!input.empty()) cmd += " < " + input;
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return r;
}

std::vector<slm::json::Value> records(const std::string& out, const char* type) {
  std::vector<slm::json::Value> v;
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    if (nl == std::string::npos) nl = out.size();
    const std::string line = out.substr(start, nl - start);
    start = nl + 1;
    if (line.empty() || line[0] != '{') continue;
    auto j = slm::json::parse(line);
    REQUIRE_MESSAGE(j.ok(), line);
    const slm::json::Value* t = j->find("type");
    if (t && t->as_string() == type) v.push_back(std::move(*j));
  }
  return v;
}

std::vector<std::string> rules_of(const slm::json::Value& e) {
  std::vector<std::string> r;
  for (const auto& x : e.find("rules")->items()) r.emplace_back(x.as_string());
  return r;
}
std::string str(const slm::json::Value& e, const char* key) {
  const slm::json::Value* v = e.find(key);
  return v ? std::string(v->as_string()) : "";
}
int64_t num(const slm::json::Value& e, const char* key) {
  const slm::json::Value* v = e.find(key);
  return v ? static_cast<int64_t>(v->as_double()) : -1;
}

std::vector<slm::json::Value> dry_run(const std::string& log, const std::string& extra = "") {
  Run r = run("--input " + log_path(log) + " --no-follow --dry-run --format json " + extra);
  REQUIRE_MESSAGE(r.status == 0, r.out);
  auto end = records(r.out, "end");
  REQUIRE(end.size() == 1);
  return records(r.out, "event");
}

bool has_tool() {
  if (std::string(SLM_LOGWATCH_TOOL).empty()) {
    MESSAGE("slm-logwatch was not built (SLM_BUILD_TOOLS=OFF): tool checks did not run");
    return false;
  }
  return true;
}

}  // namespace

RemoveModel g_remove_model;

// ---- Rules and grouping, in process ------------------------------------------------------------

TEST_CASE("rule table: representative lines and non-events") {
  struct Case {
    const char* line;
    const char* rule;  // nullptr: not notable
  };
  const Case cases[] = {
      {"[ 5233.907114] BUG: kernel NULL pointer dereference, address: 0000000000000008", "kernel-oops"},
      {"[  12.1] Oops: 0000 [#1] PREEMPT SMP NOPTI", "kernel-oops"},
      {"[  12.2] WARNING: CPU: 2 PID: 1 at drivers/gpu/drm/i915/intel_pm.c:3240 foo+0x1/0x2", "kernel-warn"},
      {"[ 5233.907250]  process_one_work+0x16f/0x350", "call-trace"},
      {"kernel: Out of memory: Killed process 221402 (postgres) total-vm:17281540kB", "oom-kill"},
      {"kernel: myapp[3141]: segfault at 0 ip 000055d0c1e4a1b2 sp 00007ffe error 4 in myapp[55d0c1e49000+2000]",
       "segfault"},
      {"kernel: traps: agent[4410] general protection fault ip:7f3a1c2b8e41 sp:7ffd8c3a1f60 error:0", "segfault"},
      {"kernel: EXT4-fs error (device sdc1): ext4_find_entry:1683: inode #15466497", "fs-error"},
      {"kernel: I/O error, dev sdc, sector 495594512 op 0x0:(READ)", "io-error"},
      {"kernel: usb 1-1.4: USB disconnect, device number 17", "usb"},
      {"kernel: e1000e 0000:00:1f.6 eno1: NIC Link is Down", "link-flap"},
      {"kernel: mce: CPU2: Package temperature above threshold, cpu clock throttled", "thermal"},
      {"kernel: mce: [Hardware Error]: Machine check events logged", "hw-error"},
      {"systemd[1]: Failed to start nginx.service - A high performance web server.", "service-failure"},
      {"systemd[1]: nginx.service: Failed with result 'exit-code'.", "service-failure"},
      {"kernel: EXT4-fs (nvme0n1p2): mounted filesystem 3f1e0c2a r/w with ordered data mode.", nullptr},
      {"kernel: e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex", nullptr},
      {"sshd[10498]: Accepted publickey for deploy from 10.0.4.21 port 51812 ssh2", nullptr},
      {"systemd[1]: Started session-412.scope - Session 412 of User backup.", nullptr},
      {"kernel: mce: CPU2: Package temperature/speed normal", nullptr},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const logwatch::Rule* r = logwatch::match(c.line);
    if (c.rule == nullptr) {
      CHECK(r == nullptr);
    } else {
      REQUIRE(r != nullptr);
      CHECK(std::string(r->id) == c.rule);
    }
  }
}

TEST_CASE("timestamps of every supported format") {
  CHECK(logwatch::line_time("[ 5233.907114] x").value() == doctest::Approx(5233.907114));
  CHECK(logwatch::line_time("2026-11-26T09:21:47+0000 db01 kernel: x").value() ==
        doctest::Approx(1795684907.0));  // date -d 2026-11-26T09:21:47Z +%s
  CHECK(logwatch::line_time("2026-11-26T10:21:47.5+01:00 x").value() == doctest::Approx(1795684907.5));
  CHECK(logwatch::line_time("6,1234,5233907114,-;BUG: x").value() == doctest::Approx(5233.907114));
  CHECK(logwatch::line_time("Jan  2 00:00:10 host x").value() == doctest::Approx(86410.0));
  CHECK(!logwatch::line_time("no time here").has_value());
}

TEST_CASE("grouper: gaps split bursts, context lines, bounded lines with the middle omitted") {
  logwatch::BurstLimits lim;
  lim.gap_seconds = 5;
  lim.max_lines = 6;
  lim.context_lines = 2;
  logwatch::Grouper g(lim);
  g.push("[ 1.0] quiet one", 0);
  g.push("[ 2.0] quiet two", 0);
  g.push("[ 3.0] quiet three", 0);
  for (int i = 0; i < 10; ++i) g.push("[ " + std::to_string(10 + i) + ".0] usb 1-1: USB disconnect, device number 3", 0);
  g.push("[ 40.0] eno1: NIC Link is Down", 0);  // 21 s later: a new burst
  g.flush();
  auto a = g.take();
  auto b = g.take();
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(!g.take().has_value());
  CHECK(a->n_flagged == 10);
  CHECK(a->lines.size() == 6);  // 2 context + 10 flagged, capped at 6
  CHECK(a->n_omitted == 6);
  CHECK(a->lines[0].text == "[ 2.0] quiet two");
  CHECK(a->lines.back().text.find("[ 19.0]") == 0);
  CHECK(a->end - a->start == doctest::Approx(9.0));
  CHECK(std::string(b->rules.at(0)->id) == "link-flap");
  // A live stream that goes quiet closes the burst without a next line.
  g.push("[ 50.0] eno1: NIC Link is Down", 100.0);
  CHECK(!g.take().has_value());
  g.tick(103.0);
  CHECK(!g.take().has_value());
  g.tick(106.0);
  CHECK(g.take().has_value());
}

// ---- The tool on recorded logs -----------------------------------------------------------------

TEST_CASE("recorded logs: flagged events and bursts") {
  if (!has_tool()) return;
  struct Expect {
    const char* log;
    std::vector<std::vector<std::string>> bursts;  // rules of each burst
  };
  const Expect expects[] = {
      {"oops.log", {{"kernel-oops", "call-trace"}}},
      {"oom.log", {{"oom-kill"}}},
      {"ext4.log", {{"io-error", "fs-error"}}},
      {"usb_storm.log", {{"usb"}}},
      {"systemd.log", {{"service-failure"}}},
      {"quiet.log", {}},
      {"mixed.log", {{"link-flap"}, {"thermal"}, {"segfault", "service-failure"}, {"io-error"}}},
  };
  for (const Expect& e : expects) {
    CAPTURE(e.log);
    auto events = dry_run(e.log, "--rate 100");
    REQUIRE(events.size() == e.bursts.size());
    for (size_t i = 0; i < events.size(); ++i) CHECK(rules_of(events[i]) == e.bursts[i]);
  }
  auto oops = dry_run("oops.log");
  CHECK(str(oops[0], "severity") == "critical");
  CHECK(num(oops[0], "flagged") >= 20);
  auto usb = dry_run("usb_storm.log");
  CHECK(num(usb[0], "flagged") == 18);  // 14 disconnects, 3 descriptor errors, 1 enumeration failure
  CHECK(num(usb[0], "omitted") > 0);     // 63 lines, 60 kept
  CHECK(str(usb[0], "prompt").find("lines omitted") != std::string::npos);
}

TEST_CASE("the rendered prompt: R1 template, system prompt, the burst's lines and nothing else") {
  if (!has_tool()) return;
  auto events = dry_run("oops.log");
  REQUIRE(events.size() == 1);
  const std::string p = str(events[0], "prompt");
  CHECK(num(events[0], "prompt_tokens") > 100);
  // deepseek-r1: system prompt first, then <｜User｜>, then the generation prompt opening <think>.
  const size_t sys = p.find("You are a Linux reliability engineer");
  const size_t user = p.find("<｜User｜>");
  REQUIRE(sys != std::string::npos);
  REQUIRE(user != std::string::npos);
  CHECK(sys < user);
  CHECK(p.size() > 30);
  CHECK(p.substr(p.size() - std::string("<｜Assistant｜><think>\n").size()) == "<｜Assistant｜><think>\n");
  CHECK(p.find("The log monitor flagged these events: kernel oops / BUG / panic (") != std::string::npos);
  CHECK(p.find("call trace (") != std::string::npos);
  CHECK(p.find("BUG: kernel NULL pointer dereference, address: 0000000000000008") != std::string::npos);
  CHECK(p.find("ret_from_fork_asm+0x1b/0x30") != std::string::npos);
  CHECK(p.find("---[ end trace") != std::string::npos);
  CHECK(p.find("disconnect from AP") == std::string::npos);  // 68 s later: not part of the burst
  CHECK(p.find("What happened, and what should I check?") != std::string::npos);
  // The same in text mode.
  Run t = run("--input " + log_path("systemd.log") + " --no-follow --dry-run");
  REQUIRE(t.status == 0);
  CHECK(t.out.find("== [error] service-failure") != std::string::npos);
  CHECK(t.out.find("--- prompt (") != std::string::npos);
  CHECK(t.out.find("bind() to 0.0.0.0:443 failed") != std::string::npos);
}

TEST_CASE("budgets: tokens per explanation, rate limit, threads, priority, memory") {
  if (!has_tool()) return;
  // Real generation: tokens per explanation, threads.
  Run r = run("--input " + log_path("mixed.log") + " --no-follow --format json --max-tokens 6 --rate 100 --threads 3 "
              "--burst-max-lines 3");
  REQUIRE_MESSAGE(r.status == 0, r.out);
  auto start = records(r.out, "start");
  REQUIRE(start.size() == 1);
  CHECK(num(start[0], "threads") == 3);
  CHECK(num(start[0], "process_threads") == 3);  // the caller + 2 workers, nothing else
  CHECK(str(start[0], "sandbox") == "seccomp");
  auto events = records(r.out, "event");
  REQUIRE(events.size() == 4);
  for (const auto& e : events) {
    CHECK(e.find("explained")->as_bool());
    CHECK(num(e, "tokens") >= 1);
    CHECK(num(e, "tokens") <= 6);
    CHECK(e.find("answer") != nullptr);
    CHECK(e.find("reasoning") == nullptr);  // hidden by default
  }
  // Rate: 2 per minute, 4 bursts arriving at once (prompts only, so the run takes well under
  // the 30 s a new token takes to accrue).
  auto limited = dry_run("mixed.log", "--rate 2");
  REQUIRE(limited.size() == 4);
  CHECK(limited[0].find("prompt") != nullptr);
  CHECK(limited[1].find("prompt") != nullptr);
  CHECK(str(limited[2], "skipped") == "rate limit");
  CHECK(str(limited[3], "skipped") == "rate limit");
  CHECK(limited[3].find("prompt") == nullptr);
  // Default priority: nice 19 and SCHED_IDLE (a short run: it gets little CPU under load).
  Run idle = run("--input " + log_path("quiet.log") + " --no-follow --dry-run --format json --idle-default");
  REQUIRE(idle.status == 0);
  auto idle_start = records(idle.out, "start");
  REQUIRE(idle_start.size() == 1);
  CHECK(str(idle_start[0], "priority") == "nice 19, SCHED_IDLE");

  Run big = run("--input " + log_path("quiet.log") + " --no-follow --max-memory 1 --ctx 65536");
  CHECK(big.status == 1);
  CHECK(big.out.find("over the --max-memory budget") != std::string::npos);
}

TEST_CASE("stdin (journalctl piped in) and a followed file (tail -F with rotation)") {
  if (!has_tool()) return;
  Run r = run("--dry-run --format json", log_path("systemd.log"));
  REQUIRE(r.status == 0);
  CHECK(records(r.out, "event").size() == 1);

  const std::string dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
  const std::string path = dir + "/slm_logwatch_follow_" + std::to_string(getpid()) + ".log";
  const std::string out = path + ".out";
  { std::ofstream(path) << "2026-11-26T06:00:01+0000 h CRON[1]: (root) CMD (true)\n"; }
  const std::string cmd = "ASAN_OPTIONS=detect_leaks=0 exec " + std::string(SLM_LOGWATCH_TOOL) + " --model " +
                          model_path() + " --no-idle --input " + path + " --dry-run --format json --burst-gap 1 > " + out + " 2>&1";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto wait_for = [&](const std::string& what) {
    for (int i = 0; i < 300; ++i) {
      std::ifstream f(out);
      std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (s.find(what) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  CHECK(wait_for("\"type\":\"start\""));
  { std::ofstream(path, std::ios::app) << "2026-11-26T06:00:02+0000 h kernel: eno1: NIC Link is Down\n"; }
  CHECK(wait_for("link-flap"));  // closed by the idle timer (1 s), not by a next line
  // Rotation: the file is renamed and a new one appears at the path.
  std::rename(path.c_str(), (path + ".1").c_str());
  { std::ofstream(path) << "2026-11-26T06:01:00+0000 h kernel: Out of memory: Killed process 7 (x)\n"; }
  CHECK(wait_for("oom-kill"));
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  std::remove(path.c_str());
  std::remove((path + ".1").c_str());
  std::remove(out.c_str());
}

TEST_CASE("/dev/kmsg when readable: starts, reads under the sandbox, stops on SIGTERM") {
  if (!has_tool()) return;
  FILE* k = std::fopen("/dev/kmsg", "r");
  if (k == nullptr) {
    MESSAGE("/dev/kmsg is not readable here: the --kmsg check did not run");
    return;
  }
  std::fclose(k);
  const std::string out = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/slm_logwatch_kmsg_" +
                          std::to_string(getpid()) + ".out";
  const std::string cmd = "ASAN_OPTIONS=detect_leaks=0 exec " + std::string(SLM_LOGWATCH_TOOL) + " --model " +
                          model_path() + " --no-idle --kmsg-from-start --dry-run --format json > " + out + " 2>&1";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  bool started = false;
  for (int i = 0; i < 300 && !started; ++i) {
    std::ifstream f(out);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    started = s.find("\"sandbox\":\"seccomp\"") != std::string::npos;
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(started);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // reads the ring under the filter
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  std::ifstream f(out);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  INFO(s);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(s.find("\"type\":\"end\"") != std::string::npos);
  std::remove(out.c_str());
}

TEST_CASE("sandbox: after loading, exec, sockets, fork, writing files and executable memory are refused") {
  if (!has_tool()) return;
  const std::string target = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                             "/slm_logwatch_forbidden_" + std::to_string(getpid());
  Run r = run("--sandbox-selftest " + target);
  INFO(r.out);
  CHECK(r.status == 0);
  for (const char* what : {"execve: refused (Operation not permitted)", "socket AF_INET: refused (Operation not permitted)",
                           "socket AF_UNIX: refused (Operation not permitted)",
                           "open for writing: refused (Operation not permitted)",
                           "fork (clone): refused (Operation not permitted)",
                           "mmap PROT_EXEC: refused (Operation not permitted)", "open read-only: allowed",
                           "malloc 64 MiB: allowed"})
    CHECK(r.out.find(what) != std::string::npos);
  struct stat st;
  CHECK(stat(target.c_str(), &st) != 0);  // never created
  // Without the filter the same probes succeed: the self-test can fail.
  Run open = run("--sandbox-selftest " + target + " --no-sandbox");
  CHECK(open.status == 1);
  CHECK(open.out.find("socket AF_INET: allowed") != std::string::npos);
  std::remove(target.c_str());
}
