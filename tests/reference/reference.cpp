// Double-precision reference forward pass (see reference.hpp). Deliberately naive.
#include "reference/reference.hpp"

#include <cmath>

#include "slm/dtype.hpp"

namespace slm::ref {

Expected<std::vector<double>> dequant(const gguf::File& f, const std::string& name, bool required) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (t == nullptr) {
    if (required) return errorf("reference: tensor %s missing", name.c_str());
    return std::vector<double>();
  }
  const TypeTraits& tt = traits(t->type);
  auto rb = row_bytes(t->type, t->ne[0]);
  if (!rb || tt.to_float == nullptr) return errorf("reference: tensor %s: type %s", name.c_str(), tt.name);
  std::vector<float> row(static_cast<size_t>(t->ne[0]));
  std::vector<double> out;
  out.reserve(t->n_elements);
  for (int64_t r = 0; r < t->rows(); ++r) {
    tt.to_float(t->data + static_cast<size_t>(r) * *rb, row.data(), t->ne[0]);
    for (float v : row) out.push_back(v);
  }
  return out;
}

namespace {


// y = W x, W with `rows` rows of x.size() columns.
std::vector<double> matvec(const std::vector<double>& w, const std::vector<double>& x, int64_t rows) {
  const size_t n = x.size();
  std::vector<double> y(static_cast<size_t>(rows), 0.0);
  for (size_t r = 0; r < y.size(); ++r) {
    double s = 0.0;
    for (size_t k = 0; k < n; ++k) s += w[r * n + k] * x[k];
    y[r] = s;
  }
  return y;
}

std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& g, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
  return y;
}

}  // namespace

Expected<Reference> Reference::load(const gguf::File& f) {
  Reference m;
  auto arch = f.get_string("general.architecture");
  if (!arch) return arch.error();
  m.arch_ = std::string(*arch);
  const std::string a = m.arch_ + ".";
  auto u = [&](const std::string& k, int64_t* out) -> Status {
    auto v = f.get_uint(a + k);
    if (!v) return v.error();
    *out = static_cast<int64_t>(*v);
    return Status::success();
  };
  SLM_TRY(u("embedding_length", &m.n_embd_));
  SLM_TRY(u("block_count", &m.n_layer_));
  SLM_TRY(u("feed_forward_length", &m.n_ff_));
  SLM_TRY(u("attention.head_count", &m.n_head_));
  SLM_TRY(u("attention.head_count_kv", &m.n_head_kv_));
  m.head_dim_ = m.n_embd_ / m.n_head_;
  m.n_rot_ = m.head_dim_;
  if (f.find(a + "rope.dimension_count")) SLM_TRY(u("rope.dimension_count", &m.n_rot_));
  auto eps = f.get_float(a + "attention.layer_norm_rms_epsilon");
  if (!eps) return eps.error();
  m.eps_ = *eps;
  auto base = f.get_float_or(a + "rope.freq_base", 10000.0);
  if (!base) return base.error();
  m.base_ = *base;

  // Frequencies: theta_i = base^(-2i/n_rot), divided by the rope_freqs factor when present, or
  // rescaled by Llama 3.1's rule (Meta's apply_scaling) when the keys say so.
  auto factors = dequant(f, "rope_freqs.weight", false);
  if (!factors) return factors.error();
  auto stype = f.get_string(a + "rope.scaling.type");
  const bool llama3_keys = stype && *stype == "llama3";
  for (int64_t i = 0; i < m.n_rot_ / 2; ++i) {
    double freq = std::pow(m.base_, -2.0 * static_cast<double>(i) / static_cast<double>(m.n_rot_));
    if (!factors->empty()) {
      freq /= (*factors)[static_cast<size_t>(i)];
    } else if (llama3_keys) {
      const double factor = f.get_float(a + "rope.scaling.factor").value();
      const double lo = f.get_float(a + "rope.scaling.low_freq_factor").value();
      const double hi = f.get_float(a + "rope.scaling.high_freq_factor").value();
      const double old_ctx = static_cast<double>(f.get_uint(a + "rope.scaling.original_context_length").value());
      const double wavelen = 2.0 * M_PI / freq;
      if (wavelen > old_ctx / lo) {
        freq = freq / factor;
      } else if (wavelen >= old_ctx / hi) {
        const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
        freq = (1.0 - smooth) * freq / factor + smooth * freq;
      }
    }
    m.freq_.push_back(freq);
  }

  auto get = [&](const std::string& name, std::vector<double>* out, bool required = true) -> Status {
    auto v = dequant(f, name, required);
    if (!v) return v.error();
    *out = std::move(*v);
    return Status::success();
  };
  SLM_TRY(get("token_embd.weight", &m.embd_));
  m.n_vocab_ = static_cast<int64_t>(m.embd_.size()) / m.n_embd_;
  SLM_TRY(get("output_norm.weight", &m.out_norm_));
  SLM_TRY(get("output.weight", &m.out_, false));
  if (m.out_.empty()) m.out_ = m.embd_;
  m.layers_.resize(static_cast<size_t>(m.n_layer_));
  for (int64_t l = 0; l < m.n_layer_; ++l) {
    Layer& L = m.layers_[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    SLM_TRY(get(p + "attn_norm.weight", &L.attn_norm));
    SLM_TRY(get(p + "attn_q.weight", &L.wq));
    SLM_TRY(get(p + "attn_k.weight", &L.wk));
    SLM_TRY(get(p + "attn_v.weight", &L.wv));
    SLM_TRY(get(p + "attn_q.bias", &L.bq, false));
    SLM_TRY(get(p + "attn_k.bias", &L.bk, false));
    SLM_TRY(get(p + "attn_v.bias", &L.bv, false));
    SLM_TRY(get(p + "attn_output.weight", &L.wo));
    SLM_TRY(get(p + "ffn_norm.weight", &L.ffn_norm));
    SLM_TRY(get(p + "ffn_gate.weight", &L.w_gate));
    SLM_TRY(get(p + "ffn_up.weight", &L.w_up));
    SLM_TRY(get(p + "ffn_down.weight", &L.w_down));
  }
  return m;
}

std::vector<std::vector<double>> Reference::forward(const std::vector<int32_t>& tokens) const {
  const int64_t E = n_embd_, hd = head_dim_, T = static_cast<int64_t>(tokens.size());
  const int64_t group = n_head_ / n_head_kv_;
  const bool neox = arch_ == "qwen2";
  auto rotate = [&](std::vector<double>& v, int64_t n_heads, int64_t pos) {
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t i = 0; i < n_rot_ / 2; ++i) {
        const int64_t a = h * hd + (neox ? i : 2 * i);
        const int64_t b = h * hd + (neox ? i + n_rot_ / 2 : 2 * i + 1);
        const double th = static_cast<double>(pos) * freq_[static_cast<size_t>(i)];
        const double x0 = v[static_cast<size_t>(a)], x1 = v[static_cast<size_t>(b)];
        v[static_cast<size_t>(a)] = x0 * std::cos(th) - x1 * std::sin(th);
        v[static_cast<size_t>(b)] = x0 * std::sin(th) + x1 * std::cos(th);
      }
    }
  };
  auto add = [](std::vector<double>& x, const std::vector<double>& y) {
    for (size_t i = 0; i < y.size(); ++i) x[i] += y[i];
  };

  std::vector<std::vector<double>> x(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t)
    x[static_cast<size_t>(t)].assign(embd_.begin() + tokens[static_cast<size_t>(t)] * E,
                                     embd_.begin() + (tokens[static_cast<size_t>(t)] + 1) * E);
  for (const Layer& L : layers_) {
    std::vector<std::vector<double>> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)), v(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      const auto xn = rmsnorm(x[static_cast<size_t>(t)], L.attn_norm, eps_);
      q[static_cast<size_t>(t)] = matvec(L.wq, xn, n_head_ * hd);
      k[static_cast<size_t>(t)] = matvec(L.wk, xn, n_head_kv_ * hd);
      v[static_cast<size_t>(t)] = matvec(L.wv, xn, n_head_kv_ * hd);
      if (!L.bq.empty()) add(q[static_cast<size_t>(t)], L.bq);
      if (!L.bk.empty()) add(k[static_cast<size_t>(t)], L.bk);
      if (!L.bv.empty()) add(v[static_cast<size_t>(t)], L.bv);
      rotate(q[static_cast<size_t>(t)], n_head_, t);
      rotate(k[static_cast<size_t>(t)], n_head_kv_, t);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(n_head_ * hd), 0.0);
      for (int64_t h = 0; h < n_head_; ++h) {
        const int64_t kh = h / group;
        std::vector<double> s(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t p = 0; p <= t; ++p) {
          double d = 0.0;
          for (int64_t i = 0; i < hd; ++i)
            d += q[static_cast<size_t>(t)][static_cast<size_t>(h * hd + i)] * k[static_cast<size_t>(p)][static_cast<size_t>(kh * hd + i)];
          s[static_cast<size_t>(p)] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[static_cast<size_t>(p)]);
        }
        double sum = 0.0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t p = 0; p <= t; ++p)
          for (int64_t i = 0; i < hd; ++i)
            att[static_cast<size_t>(h * hd + i)] += s[static_cast<size_t>(p)] / sum * v[static_cast<size_t>(p)][static_cast<size_t>(kh * hd + i)];
      }
      add(x[static_cast<size_t>(t)], matvec(L.wo, att, E));
    }
    for (int64_t t = 0; t < T; ++t) {
      const auto xn = rmsnorm(x[static_cast<size_t>(t)], L.ffn_norm, eps_);
      auto g = matvec(L.w_gate, xn, n_ff_);
      const auto up = matvec(L.w_up, xn, n_ff_);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * up[i];
      add(x[static_cast<size_t>(t)], matvec(L.w_down, g, E));
    }
  }
  std::vector<std::vector<double>> logits(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t)
    logits[static_cast<size_t>(t)] = matvec(out_, rmsnorm(x[static_cast<size_t>(t)], out_norm_, eps_), n_vocab_);
  return logits;
}

}  // namespace slm::ref
