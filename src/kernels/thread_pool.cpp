// ThreadPool: persistent workers that spin briefly, then sleep on a futex-backed atomic wait.
//
// One run is one "generation": the caller publishes (call, fn), bumps `generation_` and runs
// index 0 itself; each worker notices the bump, runs its index and decrements `pending_`; the
// last one wakes the caller. Nothing is allocated per run. std::atomic::wait/notify map to futex
// on Linux, and libstdc++ skips the wake syscall when nobody sleeps, so a run whose workers are
// still spinning costs two cache-line transfers per worker.
#include "slm/thread_pool.hpp"

#include <atomic>
#include <cstdint>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

namespace slm {
namespace {

// About 20-50 us of polling on current x86 (PAUSE is ~40-140 cycles): long enough to cover the
// gap between two matmuls of one decode step, short enough not to burn a shared core for long.
constexpr int kSpinIterations = 2000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

struct ThreadPool::Impl {
  int n_threads = 1;
  std::vector<std::thread> workers;
  // Written by the caller before bumping generation_ (release), read by workers after (acquire).
  void (*call)(void*, int, int) = nullptr;
  void* fn = nullptr;
  bool stop = false;
  alignas(64) std::atomic<uint32_t> generation{0};
  alignas(64) std::atomic<int> pending{0};
  // barrier(): arrivals in the current phase, and the phase number the waiters watch.
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<uint32_t> phase{0};

  void worker_loop(int index) {
    uint32_t seen = 0;
    for (;;) {
      uint32_t g = generation.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
        cpu_relax();
        g = generation.load(std::memory_order_acquire);
      }
      while (g == seen) {
        generation.wait(seen, std::memory_order_acquire);
        g = generation.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop) return;
      call(fn, index, n_threads);
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) pending.notify_one();
    }
  }
};

Expected<std::unique_ptr<ThreadPool>> ThreadPool::create(int n_threads) {
  if (n_threads < 1 || n_threads > 4096)
    return errorf("thread pool: n_threads must be in [1, 4096], got %d", n_threads);
  std::unique_ptr<ThreadPool> pool(new (std::nothrow) ThreadPool());
  if (!pool) return errorf("thread pool: out of memory");
  pool->impl_.reset(new (std::nothrow) Impl());
  if (!pool->impl_) return errorf("thread pool: out of memory");
  Impl& impl = *pool->impl_;
  impl.n_threads = n_threads;
  try {
    impl.workers.reserve(static_cast<size_t>(n_threads - 1));
    for (int i = 1; i < n_threads; ++i) impl.workers.emplace_back([&impl, i] { impl.worker_loop(i); });
  } catch (const std::exception& e) {
    // The destructor stops and joins the workers that did start.
    impl.n_threads = static_cast<int>(impl.workers.size()) + 1;
    return errorf("thread pool: cannot start thread %zu of %d: %s", impl.workers.size() + 1,
                  n_threads, e.what());
  }
  return pool;
}

ThreadPool::~ThreadPool() {
  if (!impl_) return;
  impl_->stop = true;
  impl_->generation.fetch_add(1, std::memory_order_release);
  impl_->generation.notify_all();
  for (std::thread& t : impl_->workers) t.join();
}

int ThreadPool::size() const { return impl_->n_threads; }

void ThreadPool::run_erased(void (*call)(void*, int, int), void* fn) {
  Impl& impl = *impl_;
  if (impl.n_threads == 1) {
    call(fn, 0, 1);
    return;
  }
  impl.call = call;
  impl.fn = fn;
  impl.pending.store(impl.n_threads - 1, std::memory_order_relaxed);
  impl.generation.fetch_add(1, std::memory_order_release);
  impl.generation.notify_all();
  call(fn, 0, impl.n_threads);
  int left = impl.pending.load(std::memory_order_acquire);
  for (int spin = 0; left != 0 && spin < kSpinIterations; ++spin) {
    cpu_relax();
    left = impl.pending.load(std::memory_order_acquire);
  }
  while (left != 0) {
    impl.pending.wait(left, std::memory_order_acquire);
    left = impl.pending.load(std::memory_order_acquire);
  }
}

void ThreadPool::barrier() {
  Impl& impl = *impl_;
  if (impl.n_threads == 1) return;
  const uint32_t p = impl.phase.load(std::memory_order_acquire);
  if (impl.arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == impl.n_threads) {
    // Last to arrive: reset the count for the next barrier, then release the others.
    impl.arrived.store(0, std::memory_order_relaxed);
    impl.phase.store(p + 1, std::memory_order_release);
    impl.phase.notify_all();
    return;
  }
  uint32_t now = impl.phase.load(std::memory_order_acquire);
  for (int spin = 0; now == p && spin < kSpinIterations; ++spin) {
    cpu_relax();
    now = impl.phase.load(std::memory_order_acquire);
  }
  while (now == p) {
    impl.phase.wait(p, std::memory_order_acquire);
    now = impl.phase.load(std::memory_order_acquire);
  }
}

}  // namespace slm
