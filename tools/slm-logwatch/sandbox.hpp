// slm-logwatch: dropping what the process does not need once the model is loaded -- root
// privileges (setuid to an unprivileged user), and on Linux every system call outside a short
// allow-list (a seccomp BPF filter written by hand, no libseccomp).
#pragma once

#include <string>

namespace logwatch {

// Sets PR_SET_NO_NEW_PRIVS and installs the seccomp filter on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC). Allowed afterwards: reading, writing to stdout/stderr only,
// opening files read-only (to follow a rotated log), memory management without PROT_EXEC,
// futexes, clocks, sleeping, polling, exiting. Everything else -- execve, socket, connect,
// fork/clone, opening for writing, ptrace, ioctl -- fails with EPERM; a system call of another
// architecture (x32, i386 via int 0x80) kills the process. Returns an error text, "" on success.
std::string install_seccomp();

// When running as root: drop supplementary groups and switch to `user` (a name or uid:gid).
// Returns an error text, "" on success or when not root.
std::string drop_root(const std::string& user);

// After install_seccomp: tries what the filter must refuse and prints one line per attempt
// ("execve: refused (Operation not permitted)", ...). Returns 0 when every forbidden call was
// refused with EPERM and the allowed ones worked, 1 otherwise. `probe_path` is an existing
// world-readable file; `write_path` a path that must not be created.
int sandbox_selftest(const std::string& probe_path, const std::string& write_path);

}  // namespace logwatch
