// Double-precision naive deepseek2 forward pass (see deepseek2_reference.hpp). Deliberately plain.
#include "reference/deepseek2_reference.hpp"
#include "reference/reference.hpp"  // dequant

#include <algorithm>
#include <cmath>
#include <numeric>

#include "slm/dtype.hpp"

namespace slm::ref {

namespace {


using Vec = std::vector<double>;

// y = W x for W with x.size() columns (row-major), starting at row `first`, `rows` rows.
Vec matvec(const Vec& w, const Vec& x, int64_t rows, int64_t first = 0) {
  const size_t n = x.size();
  Vec y(static_cast<size_t>(rows), 0.0);
  for (size_t r = 0; r < y.size(); ++r) {
    double s = 0.0;
    const double* wr = w.data() + (static_cast<size_t>(first) + r) * n;
    for (size_t k = 0; k < n; ++k) s += wr[k] * x[k];
    y[r] = s;
  }
  return y;
}

Vec rmsnorm(const Vec& x, const Vec& g, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
  return y;
}

Vec swiglu(const Vec& gate, const Vec& up, const Vec& down, const Vec& x, int64_t n_ff, int64_t n_out) {
  Vec g = matvec(gate, x, n_ff);
  const Vec u = matvec(up, x, n_ff);
  for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return matvec(down, g, n_out);
}

Vec slice(const Vec& v, size_t begin, size_t n) { return Vec(v.begin() + static_cast<long>(begin), v.begin() + static_cast<long>(begin + n)); }

}  // namespace

Expected<Deepseek2Reference> Deepseek2Reference::load(const gguf::File& f) {
  Deepseek2Reference m;
  const std::string a = "deepseek2.";
  auto u = [&](const std::string& k, int64_t* out, int64_t fallback = -1) -> Status {
    if (fallback >= 0 && !f.find(a + k)) {
      *out = fallback;
      return Status::success();
    }
    auto v = f.get_uint(a + k);
    if (!v) return v.error();
    *out = static_cast<int64_t>(*v);
    return Status::success();
  };
  int64_t blocks = 0, nextn = 0, k_len = 0, v_len = 0, gating = 0;
  SLM_TRY(u("embedding_length", &m.n_embd_));
  SLM_TRY(u("block_count", &blocks));
  SLM_TRY(u("nextn_predict_layers", &nextn, 0));
  m.n_layer_ = blocks - nextn;
  SLM_TRY(u("attention.head_count", &m.n_head_));
  SLM_TRY(u("leading_dense_block_count", &m.n_dense_, 0));
  SLM_TRY(u("feed_forward_length", &m.n_ff_, 0));
  SLM_TRY(u("attention.q_lora_rank", &m.q_lora_, 0));
  SLM_TRY(u("attention.kv_lora_rank", &m.kv_lora_));
  SLM_TRY(u("rope.dimension_count", &m.rope_));
  const bool mla_keys = f.find(a + "attention.key_length_mla") != nullptr;
  SLM_TRY(u(mla_keys ? "attention.key_length_mla" : "attention.key_length", &k_len));
  SLM_TRY(u(mla_keys ? "attention.value_length_mla" : "attention.value_length", &v_len));
  m.nope_ = k_len - m.rope_;
  m.vdim_ = v_len;
  if (m.n_dense_ < m.n_layer_) {
    SLM_TRY(u("expert_count", &m.n_expert_));
    SLM_TRY(u("expert_used_count", &m.n_used_));
    SLM_TRY(u("expert_shared_count", &m.n_shared_, 0));
    SLM_TRY(u("expert_feed_forward_length", &m.n_ff_exp_));
    SLM_TRY(u("expert_group_count", &m.n_group_, 1));
    SLM_TRY(u("expert_group_used_count", &m.n_group_used_, m.n_group_));
    SLM_TRY(u("expert_gating_func", &gating, 0));
    m.sigmoid_ = gating == 2;
    m.norm_w_ = f.get_bool_or(a + "expert_weights_norm", false).value();
    m.scale_w_ = f.get_float_or(a + "expert_weights_scale", 1.0).value();
    if (m.scale_w_ == 0.0) m.scale_w_ = 1.0;
  }
  m.eps_ = f.get_float(a + "attention.layer_norm_rms_epsilon").value();
  const double base = f.get_float_or(a + "rope.freq_base", 10000.0).value();

  // YaRN as DeepSeek's reference code writes it (DeepseekV2YarnRotaryEmbedding): frequencies
  // below the correction range are divided by `factor`, above it kept, linearly mixed between;
  // the softmax scale grows by yarn_get_mscale(factor, mscale_all_dim)^2 with
  // mscale_all_dim = yarn_log_multiplier / 0.1 (the converter's convention).
  const auto stype = f.get_string(a + "rope.scaling.type");
  const bool yarn = stype && *stype == "yarn";
  const int64_t half = m.rope_ / 2;
  double mscale = 1.0;
  const double dim = static_cast<double>(m.rope_);
  for (int64_t i = 0; i < half; ++i) m.freq_.push_back(std::pow(base, -2.0 * static_cast<double>(i) / dim));
  if (yarn) {
    const double factor = f.get_float(a + "rope.scaling.factor").value();
    const double orig = static_cast<double>(f.get_uint(a + "rope.scaling.original_context_length").value());
    const double mscale_all_dim = f.get_float_or(a + "rope.scaling.yarn_log_multiplier", 0.0).value() / 0.1;
    auto corr = [&](double rot) { return dim * std::log(orig / (rot * 2.0 * M_PI)) / (2.0 * std::log(base)); };
    const double low = std::max(std::floor(corr(32.0)), 0.0);
    double high = std::min(std::ceil(corr(1.0)), dim - 1.0);
    if (high == low) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      const double mask = 1.0 - ramp;  // 1: extrapolation (original frequency)
      const double extra = m.freq_[static_cast<size_t>(i)];
      m.freq_[static_cast<size_t>(i)] = extra / factor * (1.0 - mask) + extra * mask;
    }
    if (mscale_all_dim != 0.0 && factor > 1.0) mscale = 0.1 * mscale_all_dim * std::log(factor) + 1.0;
  }
  m.scale_ = mscale * mscale / std::sqrt(static_cast<double>(k_len));

  auto get = [&](const std::string& name, Vec* out, bool required = true) -> Status {
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
  const int64_t H = m.n_head_, dn = m.nope_, dc = m.kv_lora_, dv = m.vdim_;
  m.layers_.resize(static_cast<size_t>(m.n_layer_));
  for (int64_t l = 0; l < m.n_layer_; ++l) {
    Layer& L = m.layers_[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    SLM_TRY(get(p + "attn_norm.weight", &L.attn_norm));
    if (m.q_lora_ > 0) {
      SLM_TRY(get(p + "attn_q_a.weight", &L.wq_a));
      SLM_TRY(get(p + "attn_q_a_norm.weight", &L.q_a_norm));
      SLM_TRY(get(p + "attn_q_b.weight", &L.wq_b));
    } else {
      SLM_TRY(get(p + "attn_q.weight", &L.wq));
    }
    SLM_TRY(get(p + "attn_kv_a_mqa.weight", &L.wkv_a));
    SLM_TRY(get(p + "attn_kv_a_norm.weight", &L.kv_a_norm));
    // W_UK_h (dn x dc) and W_UV_h (dv x dc) per head, from either layout.
    L.w_uk.assign(static_cast<size_t>(H), Vec(static_cast<size_t>(dn * dc)));
    L.w_uv.assign(static_cast<size_t>(H), Vec(static_cast<size_t>(dv * dc)));
    Vec kv_b, k_b, v_b;
    SLM_TRY(get(p + "attn_kv_b.weight", &kv_b, false));
    if (!kv_b.empty()) {
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dc; ++j) {
          for (int64_t i = 0; i < dn; ++i) L.w_uk[h][i * dc + j] = kv_b[((h * (dn + dv)) + i) * dc + j];
          for (int64_t i = 0; i < dv; ++i) L.w_uv[h][i * dc + j] = kv_b[((h * (dn + dv)) + dn + i) * dc + j];
        }
    } else {
      SLM_TRY(get(p + "attn_k_b.weight", &k_b));  // ne {dn, dc, H}: [h][j][i] = W_UK_h[i][j]
      SLM_TRY(get(p + "attn_v_b.weight", &v_b));  // ne {dc, dv, H}: [h][i][j] = W_UV_h[i][j]
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dc; ++j) {
          for (int64_t i = 0; i < dn; ++i) L.w_uk[h][i * dc + j] = k_b[(h * dc + j) * dn + i];
          for (int64_t i = 0; i < dv; ++i) L.w_uv[h][i * dc + j] = v_b[(h * dv + i) * dc + j];
        }
    }
    SLM_TRY(get(p + "attn_output.weight", &L.wo));
    SLM_TRY(get(p + "ffn_norm.weight", &L.ffn_norm));
    if (l < m.n_dense_) {
      SLM_TRY(get(p + "ffn_gate.weight", &L.w_gate));
      SLM_TRY(get(p + "ffn_up.weight", &L.w_up));
      SLM_TRY(get(p + "ffn_down.weight", &L.w_down));
    } else {
      SLM_TRY(get(p + "ffn_gate_inp.weight", &L.router));
      SLM_TRY(get(p + "exp_probs_b.bias", &L.bias, false));
      Vec g, up, d;
      SLM_TRY(get(p + "ffn_gate_exps.weight", &g));
      SLM_TRY(get(p + "ffn_up_exps.weight", &up));
      SLM_TRY(get(p + "ffn_down_exps.weight", &d));
      const size_t per = static_cast<size_t>(m.n_ff_exp_ * m.n_embd_);
      for (int64_t e = 0; e < m.n_expert_; ++e) {
        L.e_gate.push_back(slice(g, e * per, per));
        L.e_up.push_back(slice(up, e * per, per));
        L.e_down.push_back(slice(d, e * per, per));
      }
      if (m.n_shared_ > 0) {
        SLM_TRY(get(p + "ffn_gate_shexp.weight", &L.sh_gate));
        SLM_TRY(get(p + "ffn_up_shexp.weight", &L.sh_up));
        SLM_TRY(get(p + "ffn_down_shexp.weight", &L.sh_down));
      }
    }
  }
  return m;
}

std::vector<std::vector<double>> Deepseek2Reference::forward(const std::vector<int32_t>& tokens, std::span<const int32_t> forced,
                                                             double tie, int* followed) const {
  if (followed) *followed = 0;
  const int64_t E = n_embd_, H = n_head_, dn = nope_, dr = rope_, dc = kv_lora_, dv = vdim_, dk = dn + dr;
  const size_t T = tokens.size();
  // RoPE on adjacent pairs (2i, 2i+1): the GGUF layout of DeepSeek's interleaved rope dims.
  auto rotate = [&](double* v, size_t pos) {
    for (int64_t i = 0; i < dr / 2; ++i) {
      const double th = static_cast<double>(pos) * freq_[static_cast<size_t>(i)];
      const double x0 = v[2 * i], x1 = v[2 * i + 1];
      v[2 * i] = x0 * std::cos(th) - x1 * std::sin(th);
      v[2 * i + 1] = x0 * std::sin(th) + x1 * std::cos(th);
    }
  };
  chosen_.assign(T, std::vector<std::vector<int>>(static_cast<size_t>(n_layer_)));
  std::vector<Vec> x(T);
  for (size_t t = 0; t < T; ++t) x[t] = slice(embd_, static_cast<size_t>(tokens[t] * E), static_cast<size_t>(E));
  for (int64_t l = 0; l < n_layer_; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    // Naive MLA: full per-head keys and values from the latent.
    std::vector<Vec> q(T), k(T), v(T);
    for (size_t t = 0; t < T; ++t) {
      const Vec xn = rmsnorm(x[t], L.attn_norm, eps_);
      if (q_lora_ > 0) q[t] = matvec(L.wq_b, rmsnorm(matvec(L.wq_a, xn, q_lora_), L.q_a_norm, eps_), H * dk);
      else q[t] = matvec(L.wq, xn, H * dk);
      const Vec kva = matvec(L.wkv_a, xn, dc + dr);
      const Vec c = rmsnorm(slice(kva, 0, static_cast<size_t>(dc)), L.kv_a_norm, eps_);
      Vec kr = slice(kva, static_cast<size_t>(dc), static_cast<size_t>(dr));
      rotate(kr.data(), t);
      k[t].assign(static_cast<size_t>(H * dk), 0.0);
      v[t].assign(static_cast<size_t>(H * dv), 0.0);
      for (int64_t h = 0; h < H; ++h) {
        rotate(q[t].data() + h * dk + dn, t);
        for (int64_t i = 0; i < dn; ++i) {
          double s = 0.0;
          for (int64_t j = 0; j < dc; ++j) s += L.w_uk[h][i * dc + j] * c[j];
          k[t][h * dk + i] = s;
        }
        for (int64_t i = 0; i < dr; ++i) k[t][h * dk + dn + i] = kr[i];
        for (int64_t i = 0; i < dv; ++i) {
          double s = 0.0;
          for (int64_t j = 0; j < dc; ++j) s += L.w_uv[h][i * dc + j] * c[j];
          v[t][h * dv + i] = s;
        }
      }
    }
    for (size_t t = 0; t < T; ++t) {
      Vec att(static_cast<size_t>(H * dv), 0.0);
      for (int64_t h = 0; h < H; ++h) {
        Vec s(t + 1);
        for (size_t p = 0; p <= t; ++p) {
          double d = 0.0;
          for (int64_t i = 0; i < dk; ++i) d += q[t][h * dk + i] * k[p][h * dk + i];
          s[p] = d * scale_;
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0.0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (size_t p = 0; p <= t; ++p)
          for (int64_t i = 0; i < dv; ++i) att[h * dv + i] += s[p] / sum * v[p][h * dv + i];
      }
      const Vec o = matvec(L.wo, att, E);
      for (int64_t i = 0; i < E; ++i) x[t][i] += o[i];
    }
    for (size_t t = 0; t < T; ++t) {
      const Vec xn = rmsnorm(x[t], L.ffn_norm, eps_);
      Vec y(static_cast<size_t>(E), 0.0);
      if (l < n_dense_) {
        y = swiglu(L.w_gate, L.w_up, L.w_down, xn, n_ff_, E);
      } else {
        // Routing: scores (softmax or sigmoid); selection scores add the correction bias;
        // group-limited: keep the n_group_used best groups (V3: sum of a group's top two
        // selection scores, V2: its top one); top-k of the rest; weights are the scores of the
        // chosen experts (no bias), renormalised if asked, times the scale.
        const Vec logits = matvec(L.router, xn, n_expert_);
        Vec score(logits.size());
        if (sigmoid_) {
          for (size_t e = 0; e < score.size(); ++e) score[e] = 1.0 / (1.0 + std::exp(-logits[e]));
        } else {
          const double mx = *std::max_element(logits.begin(), logits.end());
          double sum = 0.0;
          for (size_t e = 0; e < score.size(); ++e) sum += (score[e] = std::exp(logits[e] - mx));
          for (double& s : score) s /= sum;
        }
        Vec sel = score;
        if (!L.bias.empty())
          for (size_t e = 0; e < sel.size(); ++e) sel[e] += L.bias[e];
        // Group-limited: the n_group_used best groups (V3: sum of a group's top two selection
        // scores, V2: its top one) in order; then the top-k experts inside the kept groups.
        const int64_t per = n_expert_ / n_group_;
        Vec gscore(static_cast<size_t>(n_group_), 0.0);
        std::vector<int64_t> gorder(static_cast<size_t>(n_group_));
        std::iota(gorder.begin(), gorder.end(), 0);
        for (int64_t g = 0; g < n_group_; ++g) {
          Vec in = slice(sel, static_cast<size_t>(g * per), static_cast<size_t>(per));
          std::sort(in.begin(), in.end(), std::greater<double>());
          gscore[g] = sigmoid_ && per > 1 ? in[0] + in[1] : in[0];
        }
        std::stable_sort(gorder.begin(), gorder.end(), [&](int64_t x, int64_t y) { return gscore[x] > gscore[y]; });
        auto top_k = [&](const std::vector<int64_t>& kept) {
          std::vector<int> order;
          for (int64_t e = 0; e < n_expert_; ++e)
            if (std::find(kept.begin(), kept.end(), e / per) != kept.end()) order.push_back(static_cast<int>(e));
          std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return sel[x] > sel[y]; });
          order.resize(static_cast<size_t>(n_used_));
          return order;
        };
        const int64_t n_keep = n_group_ > 1 ? n_group_used_ : n_group_;
        std::vector<int64_t> kept(gorder.begin(), gorder.begin() + n_keep);
        std::vector<int> order = top_k(kept);
        if (!forced.empty()) {
          const size_t n_moe = static_cast<size_t>(n_layer_ - n_dense_);
          const int32_t* fo = forced.data() + (t * n_moe + static_cast<size_t>(l - n_dense_)) * static_cast<size_t>(n_used_);
          std::vector<int> f(fo, fo + n_used_);
          std::vector<int> sa = order, sb = f;
          std::sort(sa.begin(), sa.end());
          std::sort(sb.begin(), sb.end());
          bool near = sa != sb;
          for (int e : f) near = near && e >= 0 && e < n_expert_;
          if (near) {
            // The other engine kept n_keep groups, each a near-tie with (or above) the last group
            // this reference keeps, among them the groups of the forced experts; which ones it
            // kept besides those is not recorded (a near-tie between two groups neither forced
            // expert is in still changes which experts compete). So every such set of groups is
            // tried: the forced experts are a near-tie when, for one of them, each forced expert
            // is within `tie` of the k-th best of those groups.
            std::vector<int64_t> need;
            for (int e : f)
              if (std::find(need.begin(), need.end(), e / per) == need.end()) need.push_back(e / per);
            const double last_group = gscore[kept.back()];
            auto near_group = [&](int64_t g) { return n_group_ <= 1 || gscore[g] >= last_group - tie; };
            for (int64_t g : need) near = near && near_group(g);
            near = near && static_cast<int64_t>(need.size()) <= n_keep;
            bool any = false;
            if (near) {
              std::vector<int64_t> optional;  // near-tie groups the forced experts do not need
              for (int64_t g : gorder)
                if (near_group(g) && std::find(need.begin(), need.end(), g) == need.end()) optional.push_back(g);
              const size_t extra = static_cast<size_t>(n_keep) - need.size();
              // Subsets of `optional` of size `extra`, by bit mask (n_group is small: 8 in V3).
              if (optional.size() >= extra && optional.size() < 20) {
                for (uint32_t mask = 0; mask < (1u << optional.size()) && !any; ++mask) {
                  if (static_cast<size_t>(__builtin_popcount(mask)) != extra) continue;
                  std::vector<int64_t> kept2 = need;
                  for (size_t i = 0; i < optional.size(); ++i)
                    if (mask & (1u << i)) kept2.push_back(optional[i]);
                  const std::vector<int> order2 = top_k(kept2);
                  bool ok = true;
                  for (int e : f) ok = ok && sel[e] >= sel[order2.back()] - tie;
                  any = ok;
                }
              }
            }
            near = near && any;
            if (near) {
              order = f;
              if (followed) ++*followed;
            }
          }
        }
        double wsum = 0.0;
        for (int e : order) wsum += score[e];
        chosen_[t][static_cast<size_t>(l)] = order;
        for (int e : order) {
          const double w = score[e] / (norm_w_ ? wsum : 1.0) * scale_w_;
          const Vec ye = swiglu(L.e_gate[e], L.e_up[e], L.e_down[e], xn, n_ff_exp_, E);
          for (int64_t i = 0; i < E; ++i) y[i] += w * ye[i];
        }
        if (n_shared_ > 0) {
          const Vec ys = swiglu(L.sh_gate, L.sh_up, L.sh_down, xn, n_ff_exp_ * n_shared_, E);
          for (int64_t i = 0; i < E; ++i) y[i] += ys[i];
        }
      }
      for (int64_t i = 0; i < E; ++i) x[t][i] += y[i];
    }
  }
  std::vector<std::vector<double>> logits(T);
  for (size_t t = 0; t < T; ++t) logits[t] = matvec(out_, rmsnorm(x[t], out_norm_, eps_), n_vocab_);
  return logits;
}

}  // namespace slm::ref
