// Sampler: greedy, each filter's effect, penalties, seeding and reproducibility.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "slm/model.hpp"

namespace {

slm::SamplerParams plain(float temperature, uint64_t seed = 1) {
  slm::SamplerParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  p.presence_penalty = 0.0f;
  p.seed = seed;
  return p;
}

// Logits whose softmax is 0.4, 0.3, 0.2, 0.1 over ids 0..3 and ~0 elsewhere (8 ids).
std::vector<float> four_way() {
  return {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f), -50, -50, -50, -50};
}

std::vector<int> histogram(slm::Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int> h(logits.size(), 0);
  for (int i = 0; i < n; ++i) {
    const int32_t t = s.sample(logits);
    REQUIRE(t >= 0);
    REQUIRE(t < static_cast<int32_t>(logits.size()));
    h[static_cast<size_t>(t)]++;
  }
  return h;
}

}  // namespace

TEST_CASE("argmax: largest, lowest id on ties, NaN never wins") {
  CHECK(slm::argmax(std::vector<float>{1, 3, 3, 2}) == 1);
  CHECK(slm::argmax(std::vector<float>{NAN, -1, NAN}) == 1);
  CHECK(slm::argmax(std::vector<float>{}) == -1);
}

TEST_CASE("greedy sampling is argmax whatever the seed") {
  const std::vector<float> l = {0.1f, 2.0f, 5.0f, 5.0f, -3.0f};
  for (uint64_t seed : {0ull, 1ull, 99ull}) {
    slm::Sampler s(plain(0.0f, seed), 5);
    for (int i = 0; i < 5; ++i) CHECK(s.sample(l) == 2);
  }
}

TEST_CASE("temperature 1 with no filters draws from the softmax") {
  slm::Sampler s(plain(1.0f, 42), 8);
  const int n = 20000;
  auto h = histogram(s, four_way(), n);
  const double want[4] = {0.4, 0.3, 0.2, 0.1};
  for (int i = 0; i < 4; ++i) {
    // Binomial standard deviation sqrt(p(1-p)/n) <= 0.0035: 5 sigma.
    CHECK(std::abs(h[static_cast<size_t>(i)] / static_cast<double>(n) - want[i]) < 0.018);
  }
  CHECK(h[4] + h[5] + h[6] + h[7] == 0);
}

TEST_CASE("low temperature concentrates, high temperature spreads") {
  slm::Sampler cold(plain(0.1f, 3), 8), hot(plain(5.0f, 3), 8);
  auto hc = histogram(cold, four_way(), 2000);
  auto hh = histogram(hot, four_way(), 2000);
  CHECK(hc[0] > 1800);  // p(0) = 0.4^10 / sum_i p_i^10 = 0.946
  CHECK(hh[3] > 300);                  // flattened: p(3) ~ 0.2 instead of 0.1
  CHECK(hh[0] < hc[0]);
}

TEST_CASE("top-k keeps only the k most likely") {
  auto p = plain(1.0f, 5);
  p.top_k = 2;
  slm::Sampler s(p, 8);
  auto h = histogram(s, four_way(), 4000);
  CHECK(h[2] + h[3] == 0);
  CHECK(std::abs(h[0] / 4000.0 - 0.4 / 0.7) < 0.04);
  p.top_k = 1;
  slm::Sampler g(p, 8);
  for (int i = 0; i < 50; ++i) CHECK(g.sample(four_way()) == 0);
}

TEST_CASE("top-p keeps the smallest prefix reaching p") {
  auto p = plain(1.0f, 6);
  p.top_p = 0.65f;  // 0.4 + 0.3 = 0.7 >= 0.65: ids 0 and 1
  slm::Sampler s(p, 8);
  auto h = histogram(s, four_way(), 4000);
  CHECK(h[0] > 0);
  CHECK(h[1] > 0);
  CHECK(h[2] + h[3] == 0);
  p.top_p = 0.35f;  // id 0 alone
  slm::Sampler one(p, 8);
  auto h1 = histogram(one, four_way(), 500);
  CHECK(h1[0] == 500);
}

TEST_CASE("min-p drops tokens below min_p times the top probability") {
  auto p = plain(1.0f, 7);
  p.min_p = 0.6f;  // threshold 0.24: keeps 0.4, 0.3
  slm::Sampler s(p, 8);
  auto h = histogram(s, four_way(), 4000);
  CHECK(h[0] > 0);
  CHECK(h[1] > 0);
  CHECK(h[2] + h[3] == 0);
  p.min_p = 0.2f;  // threshold 0.08: keeps all four
  slm::Sampler all(p, 8);
  auto ha = histogram(all, four_way(), 4000);
  CHECK(ha[3] > 0);
}

TEST_CASE("repetition penalty and presence penalty push back repeated tokens") {
  const std::vector<float> l = {2.0f, 1.9f, -1.0f};
  auto p = plain(0.0f);
  p.repeat_penalty = 1.5f;  // 2.0 -> 1.33 < 1.9
  slm::Sampler s(p, 3);
  CHECK(s.sample(l) == 0);
  s.accept(0);
  CHECK(s.sample(l) == 1);
  s.accept(0);  // counted once however often it appears
  CHECK(s.sample(l) == 1);
  s.reset();
  CHECK(s.sample(l) == 0);

  // Window: only the last repeat_last_n accepted tokens count.
  p.repeat_last_n = 2;
  slm::Sampler w(p, 3);
  w.accept(0);
  w.accept(2);
  CHECK(w.sample(l) == 1);
  w.accept(2);  // 0 falls out of the window
  CHECK(w.sample(l) == 0);

  // Negative logits are multiplied (pushed further down).
  const std::vector<float> neg = {-1.0f, -1.2f};
  slm::Sampler n(p, 2);
  n.accept(0);
  CHECK(n.sample(neg) == 1);  // -1.5 < -1.2

  auto q = plain(0.0f);
  q.presence_penalty = 0.5f;
  slm::Sampler pres(q, 3);
  pres.accept(0);
  CHECK(pres.sample(l) == 1);  // 2.0 - 0.5 < 1.9
}

TEST_CASE("same seed and settings give the same tokens; another seed differs") {
  slm::SamplerParams p;  // defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05
  p.seed = 1234;
  p.repeat_penalty = 1.1f;
  std::vector<float> l(300);
  for (size_t i = 0; i < l.size(); ++i) l[i] = static_cast<float>(std::sin(static_cast<double>(i) * 0.7) * 2.0);
  auto run = [&](uint64_t seed) {
    auto q = p;
    q.seed = seed;
    slm::Sampler s(q, static_cast<int64_t>(l.size()));
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      const int32_t t = s.sample(l);
      s.accept(t);
      out.push_back(t);
    }
    return out;
  };
  CHECK(run(1234) == run(1234));
  CHECK(run(1234) != run(1235));
  // reset() restarts the same sequence.
  slm::Sampler s(p, static_cast<int64_t>(l.size()));
  std::vector<int32_t> a, b;
  for (int i = 0; i < 20; ++i) a.push_back(s.sample(l));
  s.reset();
  for (int i = 0; i < 20; ++i) b.push_back(s.sample(l));
  CHECK(a == b);
}
