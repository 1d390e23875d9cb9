// A persistent pool of worker threads owned by a context (no global pool, no OpenMP).
// The caller's thread takes part as worker 0; idle workers sleep instead of spinning forever.
#pragma once

#include <memory>

#include "slm/status.hpp"

namespace slm {

class ThreadPool {
 public:
  // n_threads >= 1 (1 = the caller only, no thread is started).
  static Expected<std::unique_ptr<ThreadPool>> create(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;

  // Runs fn(thread_index, n_threads) once on every thread and returns when all have finished.
  // No allocation per call: fn is passed by reference through a type-erased pointer.
  // One caller at a time: run() is not reentrant (fn must not call run() on the same pool) and
  // two threads must not call run() on one pool concurrently.
  template <class Fn>
  void run(Fn&& fn) {
    run_erased([](void* f, int i, int n) { (*static_cast<std::remove_reference_t<Fn>*>(f))(i, n); },
               const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Inside fn: returns once every thread of the current run() has called barrier() (the same
  // number of times), with their writes before it visible to all after it. Every thread must
  // call it, or the run deadlocks. A short spin, then a futex wait. Nothing happens when the
  // pool has one thread.
  void barrier();

 private:
  ThreadPool() = default;
  void run_erased(void (*call)(void*, int, int), void* fn);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits [0, n) into n_parts contiguous ranges; part i gets [begin, end). Used to give each
// thread whole output rows, so results are bit-identical for any thread count.
inline void split_range(long n, int part, int n_parts, long* begin, long* end) {
  const long base = n / n_parts, extra = n % n_parts;
  *begin = part * base + (part < extra ? part : extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}

}  // namespace slm
