// ThreadPool: every index runs exactly once per run, runs repeat without deadlock, sizes 1..N.
#include <doctest/doctest.h>

#include <atomic>
#include <vector>

#include "slm/thread_pool.hpp"

using slm::ThreadPool;

TEST_CASE("thread pool rejects bad sizes") {
  CHECK_FALSE(ThreadPool::create(0).ok());
  CHECK_FALSE(ThreadPool::create(-3).ok());
}

TEST_CASE("every index runs exactly once, over many runs") {
  for (int n : {1, 2, 3, 5}) {
    auto pool = ThreadPool::create(n);
    REQUIRE(pool.ok());
    REQUIRE((*pool)->size() == n);
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int> bad_n{0};
    const int runs = 2000;
    for (int r = 0; r < runs; ++r) {
      (*pool)->run([&](int i, int nt) {
        if (nt != n || i < 0 || i >= n) bad_n.fetch_add(1);
        else hits[static_cast<size_t>(i)].fetch_add(1);
      });
    }
    CHECK(bad_n.load() == 0);
    for (int i = 0; i < n; ++i) CHECK(hits[static_cast<size_t>(i)].load() == runs);
  }
}

TEST_CASE("run returns only after all threads finished their work") {
  auto pool = ThreadPool::create(3);
  REQUIRE(pool.ok());
  std::vector<long> out(3 * 1000, 0);
  for (int r = 0; r < 200; ++r) {
    (*pool)->run([&](int i, int n) {
      long b, e;
      slm::split_range(static_cast<long>(out.size()), i, n, &b, &e);
      for (long k = b; k < e; ++k) out[static_cast<size_t>(k)] += k;
    });
    // Read right after run(): a missing join would show as a stale value.
    long bad = 0;
    for (size_t k = 0; k < out.size(); ++k) bad += out[k] != static_cast<long>(k) * (r + 1);
    REQUIRE(bad == 0);
  }
}

TEST_CASE("runs after idle periods wake sleeping workers") {
  auto pool = ThreadPool::create(2);
  REQUIRE(pool.ok());
  for (int r = 0; r < 5; ++r) {
    std::atomic<int> count{0};
    (*pool)->run([&](int, int) { count.fetch_add(1); });
    CHECK(count.load() == 2);
    // Long enough for the worker to stop spinning and sleep on the futex.
    volatile double sink = 0;
    for (int k = 0; k < 2000000; ++k) sink = sink + k;
  }
}

TEST_CASE("split_range covers [0, n) in order without gaps") {
  for (long n : {0L, 1L, 7L, 100L}) {
    for (int parts : {1, 2, 3, 8}) {
      long expect = 0;
      for (int p = 0; p < parts; ++p) {
        long b, e;
        slm::split_range(n, p, parts, &b, &e);
        CHECK(b == expect);
        CHECK(e >= b);
        CHECK(e - b <= n / parts + 1);
        expect = e;
      }
      CHECK(expect == n);
    }
  }
}

TEST_CASE("barrier: no thread passes before all arrived, repeatedly") {
  for (int n : {1, 2, 3}) {
    auto pool = ThreadPool::create(n);
    REQUIRE(pool.ok());
    std::vector<int> stage(static_cast<size_t>(n), 0);
    std::atomic<int> violations{0};
    for (int r = 0; r < 300; ++r) {
      (*pool)->run([&](int i, int nt) {
        for (int step = 1; step <= 3; ++step) {
          stage[static_cast<size_t>(i)] = step;  // plain write: the barrier must publish it
          (*pool)->barrier();
          for (int j = 0; j < nt; ++j)
            if (stage[static_cast<size_t>(j)] < step) violations.fetch_add(1);
          (*pool)->barrier();  // nobody starts the next step while others still read this one
        }
      });
    }
    CHECK(violations.load() == 0);
  }
}
