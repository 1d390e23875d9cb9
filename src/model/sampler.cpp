// Token sampling: penalties, greedy or temperature + top-k + top-p + min-p, seeded RNG.
#include <algorithm>
#include <cmath>
#include <limits>

#include "slm/model.hpp"

namespace slm {

namespace {

uint64_t splitmix64(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Larger logit first; the lower id first on ties, so the order is total and reproducible.
bool by_logit_desc(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

Sampler::Sampler(const SamplerParams& params, int64_t n_vocab) : params_(params), n_vocab_(std::max<int64_t>(n_vocab, 0)) {
  history_.resize(static_cast<size_t>(std::max(params_.repeat_last_n, 0)));
  candidates_.resize(static_cast<size_t>(n_vocab_));
  penalized_.resize(static_cast<size_t>(n_vocab_));
  seen_.assign(static_cast<size_t>(n_vocab_), 0);
  reset();
}

void Sampler::reset() {
  history_next_ = 0;
  history_size_ = 0;
  uint64_t s = params_.seed;
  rng_state_[0] = splitmix64(&s);
  rng_state_[1] = splitmix64(&s);
  if ((rng_state_[0] | rng_state_[1]) == 0) rng_state_[0] = 1;  // the all-zero state is a fixed point
}

double Sampler::next_uniform() {
  // xoroshiro128** (Blackman & Vigna, 2018): 128-bit state, period 2^128 - 1.
  const uint64_t s0 = rng_state_[0];
  uint64_t s1 = rng_state_[1];
  const uint64_t result = rotl(s0 * 5, 7) * 9;
  s1 ^= s0;
  rng_state_[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
  rng_state_[1] = rotl(s1, 37);
  return static_cast<double>(result >> 11) * 0x1.0p-53;  // 53 random bits
}

void Sampler::accept(int32_t token) {
  if (history_.empty()) return;
  history_[history_next_] = token;
  history_next_ = (history_next_ + 1) % history_.size();
  history_size_ = std::min(history_size_ + 1, history_.size());
}

int32_t Sampler::sample(std::span<const float> logits) {
  const size_t n = std::min(logits.size(), static_cast<size_t>(n_vocab_));
  if (n == 0) return -1;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i) penalized_[i] = std::isnan(logits[i]) ? neg_inf : logits[i];

  // Penalties: each distinct token of the last repeat_last_n accepted ones, once.
  if (params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f) {
    for (size_t j = 0; j < history_size_; ++j) {
      const int32_t tok = history_[j];
      if (tok < 0 || static_cast<size_t>(tok) >= n || seen_[static_cast<size_t>(tok)]) continue;
      seen_[static_cast<size_t>(tok)] = 1;
      float& l = penalized_[static_cast<size_t>(tok)];
      if (params_.repeat_penalty > 0.0f) l = l > 0.0f ? l / params_.repeat_penalty : l * params_.repeat_penalty;
      l -= params_.presence_penalty;
    }
    for (size_t j = 0; j < history_size_; ++j) {
      const int32_t tok = history_[j];
      if (tok >= 0 && static_cast<size_t>(tok) < n) seen_[static_cast<size_t>(tok)] = 0;
    }
  }

  if (!(params_.temperature > 0.0f)) return argmax({penalized_.data(), n});

  // Temperature, then top-k: the k largest, sorted.
  const float inv_t = 1.0f / params_.temperature;
  for (size_t i = 0; i < n; ++i) candidates_[i] = {penalized_[i] * inv_t, static_cast<int32_t>(i)};
  size_t k = params_.top_k > 0 ? std::min(static_cast<size_t>(params_.top_k), n) : n;
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(k),
                    candidates_.begin() + static_cast<ptrdiff_t>(n), by_logit_desc);
  if (candidates_[0].first == neg_inf) return candidates_[0].second;  // nothing finite

  // Softmax over the k kept (probabilities replace the logits in place).
  const float max = candidates_[0].first;
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    candidates_[i].first = std::exp(candidates_[i].first - max);
    sum += candidates_[i].first;
  }
  for (size_t i = 0; i < k; ++i) candidates_[i].first = static_cast<float>(candidates_[i].first / sum);

  // Top-p: the smallest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double cum = 0.0;
    size_t keep = k;
    for (size_t i = 0; i < k; ++i) {
      cum += candidates_[i].first;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    k = keep;
  }
  // Min-p: drop tokens less likely than min_p times the most likely one.
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p * candidates_[0].first;
    size_t keep = 1;
    while (keep < k && candidates_[keep].first >= threshold) ++keep;
    k = keep;
  }

  // Draw from what is left, renormalized.
  double mass = 0.0;
  for (size_t i = 0; i < k; ++i) mass += candidates_[i].first;
  const double u = next_uniform() * mass;
  double cum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    cum += candidates_[i].first;
    if (u < cum) return candidates_[i].second;
  }
  return candidates_[k - 1].second;
}

}  // namespace slm
