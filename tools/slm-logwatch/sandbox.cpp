// slm-logwatch: privilege drop and the seccomp filter (see sandbox.hpp).
#include "sandbox.hpp"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__linux__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#endif

namespace logwatch {

#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))

namespace {

#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#else
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#endif

constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kDeny = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
constexpr uint32_t kKill = SECCOMP_RET_KILL_PROCESS;

// Low 32 bits of argument i (little-endian seccomp_data).
constexpr uint32_t arg_lo(int i) { return static_cast<uint32_t>(offsetof(struct seccomp_data, args) + 8 * i); }

class Filter {
 public:
  void ins(uint16_t code, uint32_t k, uint8_t jt = 0, uint8_t jf = 0) { prog_.push_back({code, jt, jf, k}); }

  void header() {
    ins(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    ins(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0);
    ins(BPF_RET | BPF_K, kKill);
    ins(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    ins(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1);
    ins(BPF_RET | BPF_K, kKill);
#endif
  }
  // nr allowed unconditionally.
  void allow(long nr) {
    ins(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1);
    ins(BPF_RET | BPF_K, kAllow);
  }
  // nr allowed when none of `mask` is set in argument `arg`.
  void allow_without(long nr, int arg, uint32_t mask) {
    ins(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 4);  // not nr: A still holds nr
    ins(BPF_LD | BPF_W | BPF_ABS, arg_lo(arg));
    ins(BPF_JMP | BPF_JSET | BPF_K, mask, 1, 0);
    ins(BPF_RET | BPF_K, kAllow);
    ins(BPF_RET | BPF_K, kDeny);
  }
  // nr allowed when argument `arg` is a or b (file descriptors 1 and 2).
  void allow_if_arg(long nr, int arg, uint32_t a, uint32_t b) {
    ins(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 5);
    ins(BPF_LD | BPF_W | BPF_ABS, arg_lo(arg));
    ins(BPF_JMP | BPF_JEQ | BPF_K, a, 2, 0);
    ins(BPF_JMP | BPF_JEQ | BPF_K, b, 1, 0);
    ins(BPF_RET | BPF_K, kDeny);
    ins(BPF_RET | BPF_K, kAllow);
  }
  void footer() { ins(BPF_RET | BPF_K, kDeny); }
  std::vector<sock_filter>& prog() { return prog_; }

 private:
  std::vector<sock_filter> prog_;
};

}  // namespace

std::string install_seccomp() {
  constexpr uint32_t kWriteFlags = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY);
  Filter f;
  f.header();
  // Input, output, files opened read-only (tail -F reopens a rotated log).
  for (long nr : {SYS_read, SYS_readv, SYS_pread64, SYS_close, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_lseek,
                  SYS_fcntl, SYS_ppoll, SYS_pselect6, SYS_getdents64})
    f.allow(nr);
#ifdef SLM_SANITIZER_RUNTIME
  // Sanitizer builds only: the runtime probes memory by writing it into a pipe (UBSan's vptr
  // check, ASan's reports), reads /proc/self/exe to symbolize and unsets the signal stack of
  // an exiting thread.
  for (long nr : {SYS_pipe2, SYS_write, SYS_readlinkat, SYS_sigaltstack}) f.allow(nr);
#if defined(__x86_64__)
  for (long nr : {SYS_pipe, SYS_readlink}) f.allow(nr);
#endif
#endif
  f.allow_if_arg(SYS_write, 0, 1, 2);
  f.allow_if_arg(SYS_writev, 0, 1, 2);
  f.allow_without(SYS_openat, 2, kWriteFlags);
  // Memory: the allocator and the kernels' thread pool; never executable mappings.
  for (long nr : {SYS_brk, SYS_munmap, SYS_mremap, SYS_madvise}) f.allow(nr);
  f.allow_without(SYS_mmap, 2, PROT_EXEC);
  f.allow_without(SYS_mprotect, 2, PROT_EXEC);
  // Threads that already exist: futexes, yielding; time, sleeping; signals; exit.
  for (long nr : {SYS_futex, SYS_sched_yield, SYS_sched_getaffinity, SYS_getpid, SYS_gettid, SYS_clock_gettime,
                  SYS_clock_getres, SYS_gettimeofday, SYS_clock_nanosleep, SYS_nanosleep, SYS_rt_sigreturn,
                  SYS_rt_sigprocmask, SYS_restart_syscall, SYS_exit, SYS_exit_group, SYS_getrandom, SYS_rseq})
    f.allow(nr);
#if defined(__x86_64__)
  for (long nr : {SYS_poll, SYS_select, SYS_stat, SYS_lstat, SYS_time}) f.allow(nr);
  f.allow_without(SYS_open, 1, kWriteFlags);
#endif
  f.footer();
  sock_fprog prog{static_cast<unsigned short>(f.prog().size()), f.prog().data()};

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
  // All threads (the context's workers already run): SECCOMP_FILTER_FLAG_TSYNC through seccomp(2);
  // prctl(PR_SET_SECCOMP) covers the calling thread only, so it is not a fallback here.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
    return std::string("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): ") + std::strerror(errno);
  return "";
}

#else

std::string install_seccomp() { return "seccomp: not supported on this platform"; }

#endif

std::string drop_root(const std::string& user) {
  if (geteuid() != 0) return "";
  uid_t uid = 65534;
  gid_t gid = 65534;
  if (!user.empty()) {
    if (const passwd* pw = getpwnam(user.c_str())) {
      uid = pw->pw_uid;
      gid = pw->pw_gid;
    } else if (std::sscanf(user.c_str(), "%u:%u", &uid, &gid) != 2) {
      return "--user " + user + ": no such user (give a name or uid:gid)";
    }
  }
  if (uid == 0) return "--user: refusing to keep running as root";
  if (setgroups(0, nullptr) != 0) return std::string("setgroups: ") + std::strerror(errno);
  if (setgid(gid) != 0) return std::string("setgid: ") + std::strerror(errno);
  if (setuid(uid) != 0) return std::string("setuid: ") + std::strerror(errno);
  if (setuid(0) == 0) return "setuid: could get root back after dropping it";
  return "";
}

int sandbox_selftest(const std::string& probe_path, const std::string& write_path) {
  int failures = 0;
  auto report = [&](const char* what, bool refused_expected, long rc, int err) {
    const bool refused = rc < 0;
    const bool ok = refused == refused_expected && (!refused || err == EPERM);
    std::printf("%s: %s%s%s\n", what, refused ? "refused (" : "allowed", refused ? std::strerror(err) : "",
                refused ? ")" : "");
    if (!ok) ++failures;
  };
  {
    // A path that does not exist: without the filter this fails with ENOENT (and never replaces
    // the process), with it EPERM.
    const char* path = "/nonexistent/slm-logwatch-selftest";
    char* const argv[] = {const_cast<char*>(path), nullptr};
    char* const envp[] = {nullptr};
    errno = 0;
    const long rc = syscall(SYS_execve, path, argv, envp);
    report("execve", true, rc, errno);
  }
  {
    errno = 0;
    const long rc = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    report("socket AF_INET", true, rc, errno);
    if (rc >= 0) close(static_cast<int>(rc));
  }
  {
    errno = 0;
    const long rc = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
    report("socket AF_UNIX", true, rc, errno);
    if (rc >= 0) close(static_cast<int>(rc));
  }
  {
    errno = 0;
    const long rc = syscall(SYS_openat, AT_FDCWD, write_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    report("open for writing", true, rc, errno);
    if (rc >= 0) close(static_cast<int>(rc));
  }
  {
    errno = 0;
    const long rc = syscall(SYS_openat, AT_FDCWD, probe_path.c_str(), O_RDWR | O_CLOEXEC);
    report("open read-write", true, rc, errno);
    if (rc >= 0) close(static_cast<int>(rc));
  }
  {
    errno = 0;
    const long rc = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (rc == 0) _exit(0);  // a child: must never happen
    report("fork (clone)", true, rc, errno);
  }
  {
    errno = 0;
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report("mmap PROT_EXEC", true, p == MAP_FAILED ? -1 : 0, errno);
    if (p != MAP_FAILED) munmap(p, 4096);
  }
  {
    errno = 0;
    const long rc = syscall(SYS_openat, AT_FDCWD, probe_path.c_str(), O_RDONLY | O_CLOEXEC);
    report("open read-only", false, rc, errno);
    if (rc >= 0) close(static_cast<int>(rc));
  }
  {
    errno = 0;
    void* p = std::malloc(64 << 20);  // large: an mmap
    report("malloc 64 MiB", false, p ? 0 : -1, errno);
    std::free(p);
  }
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}

}  // namespace logwatch
