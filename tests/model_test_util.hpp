// Helpers shared by the model tests (test_model.cpp, test_deepseek2.cpp): a context with the
// usual test settings, and the error measure engine logits are judged by.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/model.hpp"

namespace slm_test {

// The model in `bytes` (which must outlive it), loaded with or without load-time interleaving.
inline std::unique_ptr<slm::Model> load_buffer(const std::vector<uint8_t>& bytes, bool interleave) {
  auto file = slm::gguf::File::from_buffer(bytes.data(), bytes.size());
  REQUIRE_MESSAGE(file.ok(), (file.ok() ? "" : file.error().message));
  slm::ModelParams mp;
  mp.interleave_weights = interleave;
  auto model = slm::Model::from_file(std::move(*file), mp);
  REQUIRE_MESSAGE(model.ok(), (model.ok() ? "" : model.error().message));
  return std::move(*model);
}

inline std::unique_ptr<slm::Context> make_ctx(const slm::Model& m, int n_threads = 1,
                                              slm::KvType kv = slm::KvType::F16, int n_ctx = 64, int n_batch = 512) {
  slm::ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_threads = n_threads;
  cp.kv_type = kv;
  cp.n_batch = n_batch;
  auto ctx = slm::Context::create(m, cp);
  REQUIRE_MESSAGE(ctx.ok(), (ctx.ok() ? "" : ctx.error().message));
  return std::move(*ctx);
}

// Largest |engine - reference| over the vocabulary, relative to the reference logits' RMS
// (the scale a logit error should be judged against; ~15 for the random test models).
inline double rel_err(std::span<const float> eng, const std::vector<double>& ref) {
  double ss = 0.0, worst = 0.0;
  for (double v : ref) ss += v * v;
  const double rms = std::sqrt(ss / static_cast<double>(ref.size()));
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(eng[i] - ref[i]));
  return worst / rms;
}

// -log softmax(logits)[token], the softmax in double precision.
inline double nll(std::span<const float> logits, int32_t token) {
  double mx = -INFINITY, s = 0.0;
  for (float v : logits) mx = std::max(mx, static_cast<double>(v));
  for (float v : logits) s += std::exp(static_cast<double>(v) - mx);
  return std::log(s) + mx - static_cast<double>(logits[static_cast<size_t>(token)]);
}

}  // namespace slm_test
