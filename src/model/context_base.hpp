// What every architecture's Context shares: eval's checks and its split into n_batch steps,
// the logits of the last eval (one row, or every row with all_logits), and the position count.
// An architecture implements forward() (one step: the math) and says where its last-token
// logits row lives; everything else here is the same for llama/qwen2 and deepseek2.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "model/context_memory.hpp"
#include "slm/model.hpp"
#include "slm/status.hpp"

namespace slm::model_memory {

class ContextBase : public Context {
 public:
  Status eval(std::span<const int32_t> tokens, bool all_logits) final {
    if (tokens.empty()) return errorf("eval: no tokens");
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (n_past_ + n > params_.n_ctx)
      return errorf("eval: context overflow: %lld tokens at position %d exceed n_ctx %d", static_cast<long long>(n),
                    n_past_, params_.n_ctx);
    for (int64_t i = 0; i < n; ++i)
      if (tokens[i] < 0 || tokens[i] >= n_vocab_)
        return errorf("eval: token %d (index %lld) outside the vocabulary [0, %lld)", tokens[i],
                      static_cast<long long>(i), static_cast<long long>(n_vocab_));
    const int n_past_before = n_past_;
    n_logits_ = 0;
    all_logits_ = all_logits;
    if (all_logits) logits_all_.resize(static_cast<size_t>(n * n_vocab_));  // grows only
    begin_eval();
    for (int64_t start = 0; start < n; start += params_.n_batch) {
      const int64_t len = std::min<int64_t>(params_.n_batch, n - start);
      Status s = forward(tokens.subspan(static_cast<size_t>(start), static_cast<size_t>(len)), start, start + len == n);
      end_step(len, s.ok());
      if (!s) {
        n_past_ = n_past_before;  // positions past it are overwritten by the next eval
        return s;
      }
    }
    n_logits_ = all_logits ? n : 1;
    return Status::success();
  }

  std::span<const float> logits(int i) const final {
    if (n_logits_ == 0) return {};
    const size_t V = static_cast<size_t>(n_vocab_);
    if (!all_logits_) {
      if (i != -1 && i != last_eval_size_ - 1) return {};
      return {last_token_logits(), V};
    }
    const int64_t idx = i < 0 ? n_logits_ + i : i;
    if (idx < 0 || idx >= n_logits_) return {};
    return {logits_all_.data() + static_cast<size_t>(idx) * V, V};
  }

  int n_past() const final { return n_past_; }
  int n_ctx() const final { return params_.n_ctx; }
  void reset() final {
    n_past_ = 0;
    n_logits_ = 0;
  }

 protected:
  ContextBase(const ContextParams& params, int64_t n_vocab) : params_(params), n_vocab_(n_vocab) {}

  // One step over `tokens` (at most n_batch) at positions n_past_ ..: must advance n_past_ and
  // last_eval_size_ (= first + tokens.size()), and write logits: every token's into
  // logits_all_ (row first + t) when all_logits_, else the last token's when last_chunk.
  virtual Status forward(std::span<const int32_t> tokens, int64_t first, bool last_chunk) = 0;
  // The (n_vocab,) row forward() writes the last token's logits to without all_logits.
  virtual const float* last_token_logits() const = 0;
  // Hooks around the steps of one eval (deepseek2 records the experts each step chose).
  virtual void begin_eval() {}
  virtual void end_step(int64_t n_tokens, bool ok) {
    (void)n_tokens;
    (void)ok;
  }

  IsaLevel isa() const { return isa_of(params_); }

  const ContextParams params_;
  const int64_t n_vocab_;
  std::vector<float> logits_all_;  // (n_tokens, n_vocab) with all_logits; grows, never shrinks
  int n_past_ = 0;
  int64_t n_logits_ = 0;
  int last_eval_size_ = 0;
  bool all_logits_ = false;
};

}  // namespace slm::model_memory
