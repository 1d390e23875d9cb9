// slm-convert: tiny Hugging Face checkpoints built here (random weights, the tiny byte-level
// tokenizer) are converted and checked: metadata keys, tensor names/shapes/types, the Q/K
// permutation (attention scores equal under HF's and ggml's RoPE), logits of the converted file
// (double reference and, when built, libslm's model) against a forward pass on the HF weights,
// the DeepSeek-V3 layout (MLA split, stacked experts), and that llama.cpp loads the files and
// computes the same next-token distribution.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "convert/hf_convert.hpp"
#include "reference/reference.hpp"
#include "slm/gguf.hpp"
#include "test_convert_helpers.hpp"
#ifdef SLM_TEST_HAVE_MODEL
#include "slm/model.hpp"
#endif

using namespace testconv;
using slm::DType;
namespace gguf = slm::gguf;

namespace {

std::string convert(const fs::path& dir, const fs::path& out, const std::string& outtype = "F32", bool keep_kv_b = false) {
  slm::convert::ConvertOptions o;
  o.outtype = outtype;
  o.keep_kv_b = keep_kv_b;
  o.n_threads = 2;
  slm::Status st = slm::convert::convert_hf(dir.string(), out.string(), o, nullptr);
  return st.ok() ? "" : st.message();
}

std::vector<float> tensor_f32(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  REQUIRE_MESSAGE(t != nullptr, name);
  std::vector<float> out(t->n_elements);
  slm::traits(t->type).to_float(t->data, out.data(), static_cast<int64_t>(t->n_elements));
  return out;
}

std::vector<int64_t> shape_of(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (t == nullptr) return {};
  return std::vector<int64_t>(t->ne, t->ne + t->n_dims);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return a.size() == b.size() ? m : 1e30;
}

const std::vector<int32_t> kPrompt = {266, 3, 70, 256, 40, 100, 9};

}  // namespace

TEST_CASE("convert: llama checkpoint -> GGUF metadata, tensors, vocabulary") {
  const fs::path dir = temp_dir("conv-llama");
  DenseSpec s;
  const Checkpoint c = write_dense_checkpoint(dir / "hf", s);
  REQUIRE(convert(dir / "hf", dir / "out.gguf") == "");
  auto f = gguf::File::open((dir / "out.gguf").string());
  REQUIRE(f.ok());
  CHECK(f->get_string("general.architecture").value() == "llama");
  CHECK(f->get_uint("general.file_type").value() == 0);
  CHECK(f->get_uint("llama.block_count").value() == 2);
  CHECK(f->get_uint("llama.embedding_length").value() == 256);
  CHECK(f->get_uint("llama.feed_forward_length").value() == 512);
  CHECK(f->get_uint("llama.attention.head_count").value() == 4);
  CHECK(f->get_uint("llama.attention.head_count_kv").value() == 2);
  CHECK(f->get_uint("llama.context_length").value() == 2048);
  CHECK(f->get_uint("llama.rope.dimension_count").value() == 64);
  CHECK(f->get_float("llama.rope.freq_base").value() == doctest::Approx(10000.0));
  CHECK(f->get_float("llama.attention.layer_norm_rms_epsilon").value() == doctest::Approx(1e-5));
  // Vocabulary: gpt2 BPE, llama-bpe pre-tokenizer (the Llama 3 regex), types, specials.
  const TinyTokenizer tok = tiny_tokenizer();
  CHECK(f->get_string("tokenizer.ggml.model").value() == "gpt2");
  CHECK(f->get_string("tokenizer.ggml.pre").value() == "llama-bpe");
  auto tokens = f->get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.ok());
  REQUIRE(tokens->size() == tok.tokens.size() + 4);
  CHECK((*tokens)[33] == "!");
  CHECK((*tokens)[static_cast<size_t>(tok.n_base)] == kBos);
  CHECK((*tokens)[tok.tokens.size()] == "[PAD" + std::to_string(tok.tokens.size()) + "]");
  auto types = f->get_int_array("tokenizer.ggml.token_type").value();
  CHECK(types[0] == 1);                                    // normal
  CHECK(types[static_cast<size_t>(tok.n_base)] == 3);      // control (special)
  CHECK(types[static_cast<size_t>(tok.n_base) + 4] == 4);  // <think>: user-defined
  CHECK(types.back() == 5);                                // padding id: unused
  auto merges = f->get_string_array("tokenizer.ggml.merges").value();
  REQUIRE(merges.size() == tok.merges.size());
  CHECK(merges[0] == "h e");
  CHECK(f->get_uint("tokenizer.ggml.bos_token_id").value() == static_cast<uint64_t>(tok.n_base));
  CHECK(f->get_uint("tokenizer.ggml.eos_token_id").value() == static_cast<uint64_t>(tok.n_base + 1));
  CHECK(f->get_uint("tokenizer.ggml.padding_token_id").value() == static_cast<uint64_t>(tok.n_base + 1));
  CHECK(f->get_bool("tokenizer.ggml.add_bos_token").value() == true);
  CHECK(f->get_bool("tokenizer.ggml.add_eos_token").value() == false);
  CHECK(f->get_string("tokenizer.chat_template").value().find("messages") != std::string_view::npos);
  // Tensors: names, ne (row length first), types.
  const int64_t V = static_cast<int64_t>(tok.tokens.size()) + 4;
  CHECK(f->tensors().size() == 1 + 2 * 9 + 2);
  CHECK(shape_of(*f, "token_embd.weight") == std::vector<int64_t>{256, V});
  CHECK(shape_of(*f, "output.weight") == std::vector<int64_t>{256, V});
  CHECK(shape_of(*f, "output_norm.weight") == std::vector<int64_t>{256});
  CHECK(shape_of(*f, "blk.1.attn_q.weight") == std::vector<int64_t>{256, 256});
  CHECK(shape_of(*f, "blk.1.attn_k.weight") == std::vector<int64_t>{256, 128});
  CHECK(shape_of(*f, "blk.1.ffn_down.weight") == std::vector<int64_t>{512, 256});
  for (const auto& t : f->tensors()) CHECK(t.type == DType::F32);
  // Unpermuted tensors are bit-identical to the checkpoint.
  CHECK(tensor_f32(*f, "blk.0.attn_v.weight") == c.w.at("model.layers.0.self_attn.v_proj.weight"));
  CHECK(tensor_f32(*f, "blk.1.ffn_down.weight") == c.w.at("model.layers.1.mlp.down_proj.weight"));
  CHECK(tensor_f32(*f, "token_embd.weight") == c.w.at("model.embed_tokens.weight"));
  CHECK(tensor_f32(*f, "blk.0.attn_q.weight") != c.w.at("model.layers.0.self_attn.q_proj.weight"));
  fs::remove_all(dir);
}

TEST_CASE("convert: llama Q/K permutation gives HF's attention scores under ggml's RoPE") {
  const fs::path dir = temp_dir("conv-perm");
  DenseSpec s;
  s.n_layer = 1;
  const Checkpoint c = write_dense_checkpoint(dir / "hf", s);
  REQUIRE(convert(dir / "hf", dir / "out.gguf") == "");
  auto f = gguf::File::open((dir / "out.gguf").string());
  REQUIRE(f.ok());
  const int64_t E = s.n_embd, hd = E / s.n_head;
  Rng rng(3);
  const std::vector<float> xa = rng.normals(static_cast<size_t>(E), 1.0f), xb = rng.normals(static_cast<size_t>(E), 1.0f);
  auto proj = [&](const std::vector<float>& w, const std::vector<float>& x, int64_t rows) {
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < E; ++k) y[static_cast<size_t>(r)] += static_cast<double>(w[static_cast<size_t>(r * E + k)]) * x[static_cast<size_t>(k)];
    return y;
  };
  // HF: pairs (i, i + hd/2) rotate together; ggml normal RoPE: pairs (2i, 2i + 1).
  auto rope = [&](std::vector<double> v, int64_t pos, bool hf) {
    for (size_t h = 0; h < v.size() / static_cast<size_t>(hd); ++h) {
      double* q = v.data() + h * static_cast<size_t>(hd);
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double ang = static_cast<double>(pos) * std::pow(s.theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
        double& a = hf ? q[i] : q[2 * i];
        double& b = hf ? q[i + hd / 2] : q[2 * i + 1];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(ang) - b0 * std::sin(ang);
        b = b0 * std::cos(ang) + a0 * std::sin(ang);
      }
    }
    return v;
  };
  const auto& wq = c.w.at("model.layers.0.self_attn.q_proj.weight");
  const auto& wk = c.w.at("model.layers.0.self_attn.k_proj.weight");
  const auto gq = tensor_f32(*f, "blk.0.attn_q.weight"), gk = tensor_f32(*f, "blk.0.attn_k.weight");
  double worst = 0, scale = 0;
  for (int64_t pa : {0, 3, 17}) {
    for (int64_t pb : {0, 5}) {
      const auto qh = rope(proj(wq, xa, E), pa, true), kh = rope(proj(wk, xb, E / 2), pb, true);
      const auto qg = rope(proj(gq, xa, E), pa, false), kg = rope(proj(gk, xb, E / 2), pb, false);
      const auto qg_unperm = rope(proj(gq, xa, E), pa, true);  // the wrong RoPE must not match
      double miss = 0;
      for (int64_t h = 0; h < s.n_head; ++h) {
        const int64_t kvh = h / (s.n_head / s.n_head_kv);
        double dh = 0, dg = 0, dw = 0;
        for (int64_t j = 0; j < hd; ++j) {
          dh += qh[static_cast<size_t>(h * hd + j)] * kh[static_cast<size_t>(kvh * hd + j)];
          dg += qg[static_cast<size_t>(h * hd + j)] * kg[static_cast<size_t>(kvh * hd + j)];
          dw += qg_unperm[static_cast<size_t>(h * hd + j)] * kh[static_cast<size_t>(kvh * hd + j)];
        }
        worst = std::max(worst, std::abs(dh - dg));
        scale = std::max(scale, std::abs(dh));
        miss = std::max(miss, std::abs(dh - dw));
      }
      if (pa != 0 || pb != 0) CHECK(miss > 1e-3 * scale);
    }
  }
  CHECK(scale > 0.1);
  CHECK(worst <= 1e-9 * scale);
  fs::remove_all(dir);
}

TEST_CASE("convert: logits of the converted file equal HF's forward pass (llama, qwen2, sharded, tied)") {
  struct Case {
    std::string arch;
    bool tied;
    int shards;
    std::string dtype;
  };
  for (const Case& k : {Case{"LlamaForCausalLM", false, 1, "F32"}, Case{"Qwen2ForCausalLM", false, 3, "F32"},
                        Case{"Qwen2ForCausalLM", true, 1, "BF16"}}) {
    CAPTURE(k.arch);
    CAPTURE(k.tied);
    const fs::path dir = temp_dir("conv-logits");
    DenseSpec s;
    s.arch = k.arch;
    s.tied = k.tied;
    s.shards = k.shards;
    s.dtype = k.dtype;
    const Checkpoint c = write_dense_checkpoint(dir / "hf", s);
    REQUIRE(convert(dir / "hf", dir / "out.gguf", "F32") == "");
    auto f = gguf::File::open((dir / "out.gguf").string());
    REQUIRE(f.ok());
    CHECK((f->find_tensor("output.weight") == nullptr) == k.tied);
    if (k.arch == "Qwen2ForCausalLM") {
      CHECK(f->get_string("tokenizer.ggml.pre").value() == "deepseek-r1-qwen");
      CHECK(f->find_tensor("blk.0.attn_q.bias") != nullptr);
    }
    const auto hf = hf_forward(c, kPrompt);
    auto ref = slm::ref::Reference::load(*f);
    REQUIRE(ref.ok());
    const auto got = ref->forward(kPrompt);
    double spread = 0;
    for (double z : hf.back()) spread = std::max(spread, std::abs(z));
    for (size_t t = 0; t < kPrompt.size(); ++t) CHECK(max_abs_diff(hf[t], got[t]) < 1e-6 * spread);
#ifdef SLM_TEST_HAVE_MODEL
    auto model = slm::Model::load((dir / "out.gguf").string());
    REQUIRE_MESSAGE(model.ok(), (model.ok() ? "" : model.error().message));
    slm::ContextParams cp;
    cp.n_ctx = 64;
    auto ctx = (*model)->create_context(cp);
    REQUIRE(ctx.ok());
    REQUIRE((*ctx)->eval(kPrompt, true).ok());
    double worst = 0;
    for (size_t t = 0; t < kPrompt.size(); ++t) {
      auto l = (*ctx)->logits(static_cast<int>(t));
      for (size_t i = 0; i < l.size(); ++i) worst = std::max(worst, std::abs(l[i] - hf[t][i]));
    }
    // float32 activations against a double forward pass on float32 weights.
    CHECK(worst < 1e-3 * spread);
#endif
    fs::remove_all(dir);
  }
}

TEST_CASE("convert: BF16 checkpoint, --outtype auto keeps BF16; F16 output; norms stay F32") {
  const fs::path dir = temp_dir("conv-bf16");
  DenseSpec s;
  s.dtype = "BF16";
  s.arch = "Qwen2ForCausalLM";
  const Checkpoint c = write_dense_checkpoint(dir / "hf", s);
  REQUIRE(convert(dir / "hf", dir / "auto.gguf", "auto") == "");
  REQUIRE(convert(dir / "hf", dir / "f16.gguf", "F16") == "");
  auto a = gguf::File::open((dir / "auto.gguf").string());
  auto h = gguf::File::open((dir / "f16.gguf").string());
  REQUIRE(a.ok());
  REQUIRE(h.ok());
  CHECK(a->get_uint("general.file_type").value() == 32);
  CHECK(h->get_uint("general.file_type").value() == 1);
  CHECK(a->find_tensor("blk.0.attn_q.weight")->type == DType::BF16);
  CHECK(h->find_tensor("blk.0.attn_q.weight")->type == DType::F16);
  for (const auto* f : {&*a, &*h}) {
    CHECK(f->find_tensor("blk.0.attn_norm.weight")->type == DType::F32);
    CHECK(f->find_tensor("blk.0.attn_q.bias")->type == DType::F32);
    CHECK(f->find_tensor("output_norm.weight")->type == DType::F32);
  }
  // BF16 -> BF16 is exact.
  CHECK(tensor_f32(*a, "blk.1.ffn_up.weight") == c.w.at("model.layers.1.mlp.up_proj.weight"));
  fs::remove_all(dir);
}

TEST_CASE("convert: errors name what is wrong") {
  const fs::path dir = temp_dir("conv-err");
  DenseSpec s;
  s.n_layer = 1;
  write_dense_checkpoint(dir / "hf", s);
  // Unknown architecture.
  write_file(dir / "hf" / "config.json", "{\"architectures\":[\"GPT2LMHeadModel\"]}");
  CHECK(convert(dir / "hf", dir / "o.gguf").find("GPT2LMHeadModel") != std::string::npos);
  // A config that disagrees with the weights.
  write_dense_checkpoint(dir / "hf", s);
  {
    std::ifstream in(dir / "hf" / "config.json");
    std::string cfg((std::istreambuf_iterator<char>(in)), {});
    cfg.replace(cfg.find("\"intermediate_size\":512"), 23, "\"intermediate_size\":768");
    write_file(dir / "hf" / "config.json", cfg);
  }
  const std::string e = convert(dir / "hf", dir / "o.gguf");
  CHECK(e.find("gate_proj") != std::string::npos);
  CHECK(e.find("shape") != std::string::npos);
  // An unrecognised pre-tokenizer regex.
  write_dense_checkpoint(dir / "hf", s);
  write_file(dir / "hf" / "tokenizer.json", tokenizer_json(tiny_tokenizer(), "\\w+|\\s"));
  CHECK(convert(dir / "hf", dir / "o.gguf").find("--pre") != std::string::npos);
  // A checkpoint tensor nobody maps.
  write_dense_checkpoint(dir / "hf", s);
  {
    std::vector<StTensor> ts = {st_tensor("model.layers.0.mlp.extra.weight", "F32", {2}, {1, 2})};
    write_safetensors(dir / "hf" / "extra.safetensors", ts);
  }
  CHECK(convert(dir / "hf", dir / "o.gguf").find("model.layers.0.mlp.extra.weight") != std::string::npos);
  CHECK(!fs::exists(dir / "o.gguf"));
  fs::remove_all(dir);
}

// ============================================================================================
// DeepSeek-V3
// ============================================================================================


TEST_CASE("convert: DeepSeek-V3 layout (MLA k_b/v_b split, stacked experts, exp_probs_b, MTP skipped)") {
  const fs::path dir = temp_dir("conv-ds");
  DsSpec d;
  const Checkpoint c = write_deepseek(dir / "hf", d, true);
  REQUIRE(convert(dir / "hf", dir / "out.gguf", "F32") == "");
  auto f = gguf::File::open((dir / "out.gguf").string());
  REQUIRE(f.ok());
  CHECK(f->get_string("general.architecture").value() == "deepseek2");
  CHECK(f->get_uint("deepseek2.block_count").value() == 2);
  CHECK(f->get_uint("deepseek2.attention.head_count_kv").value() == 1);
  CHECK(f->get_uint("deepseek2.attention.kv_lora_rank").value() == 64);
  CHECK(f->get_uint("deepseek2.attention.q_lora_rank").value() == 0);
  CHECK(f->get_uint("deepseek2.attention.key_length").value() == 64 + 16);
  CHECK(f->get_uint("deepseek2.attention.value_length").value() == 64);
  CHECK(f->get_uint("deepseek2.attention.key_length_mla").value() == 32 + 16);
  CHECK(f->get_uint("deepseek2.attention.value_length_mla").value() == 32);
  CHECK(f->get_uint("deepseek2.rope.dimension_count").value() == 16);
  CHECK(f->get_uint("deepseek2.expert_count").value() == 4);
  CHECK(f->get_uint("deepseek2.expert_used_count").value() == 2);
  CHECK(f->get_uint("deepseek2.expert_shared_count").value() == 1);
  CHECK(f->get_uint("deepseek2.leading_dense_block_count").value() == 1);
  CHECK(f->get_uint("deepseek2.expert_feed_forward_length").value() == 256);
  CHECK(f->get_uint("deepseek2.expert_gating_func").value() == 2);
  CHECK(f->get_bool("deepseek2.expert_weights_norm").value() == true);
  CHECK(f->get_float("deepseek2.expert_weights_scale").value() == doctest::Approx(2.5));
  CHECK(f->get_string("tokenizer.ggml.pre").value() == "deepseek-r1-qwen");
  // No tensor of the MTP layer (index 2 = num_hidden_layers).
  for (const auto& t : f->tensors()) CHECK(std::string(t.name).find("blk.2.") == std::string::npos);
  CHECK(shape_of(*f, "blk.0.ffn_gate.weight") == std::vector<int64_t>{256, 512});
  CHECK(shape_of(*f, "blk.1.ffn_gate_exps.weight") == std::vector<int64_t>{256, 256, 4});
  CHECK(shape_of(*f, "blk.1.ffn_down_exps.weight") == std::vector<int64_t>{256, 256, 4});
  CHECK(shape_of(*f, "blk.1.ffn_gate_inp.weight") == std::vector<int64_t>{256, 4});
  CHECK(shape_of(*f, "blk.1.exp_probs_b.bias") == std::vector<int64_t>{4});
  CHECK(shape_of(*f, "blk.1.ffn_up_shexp.weight") == std::vector<int64_t>{256, 256});
  CHECK(shape_of(*f, "blk.0.attn_kv_a_mqa.weight") == std::vector<int64_t>{256, 80});
  CHECK(shape_of(*f, "blk.0.attn_k_b.weight") == std::vector<int64_t>{32, 64, 4});
  CHECK(shape_of(*f, "blk.0.attn_v_b.weight") == std::vector<int64_t>{64, 32, 4});
  CHECK(f->find_tensor("blk.0.attn_kv_b.weight") == nullptr);
  // Values: experts stacked in order; k_b[h][c][j] = kv_b[h*(nope+v) + j][c]; v_b[h][j][c] =
  // kv_b[h*(nope+v) + nope + j][c].
  const auto ex = tensor_f32(*f, "blk.1.ffn_up_exps.weight");
  const auto& e2 = c.w.at("model.layers.1.mlp.experts.2.up_proj.weight");
  CHECK(std::equal(e2.begin(), e2.end(), ex.begin() + 2 * 256 * 256));
  const auto kb = tensor_f32(*f, "blk.1.attn_k_b.weight"), vb = tensor_f32(*f, "blk.1.attn_v_b.weight");
  const auto& kv = c.w.at("model.layers.1.self_attn.kv_b_proj.weight");
  const int64_t per = d.nope + d.v_dim;
  bool k_ok = true, v_ok = true;
  for (int64_t h = 0; h < d.n_head; ++h) {
    for (int64_t cc = 0; cc < d.kv_lora; ++cc) {
      for (int64_t j = 0; j < d.nope; ++j) {
        k_ok &= kb[static_cast<size_t>((h * d.kv_lora + cc) * d.nope + j)] == kv[static_cast<size_t>((h * per + j) * d.kv_lora + cc)];
      }
      for (int64_t j = 0; j < d.v_dim; ++j) {
        v_ok &= vb[static_cast<size_t>((h * d.v_dim + j) * d.kv_lora + cc)] == kv[static_cast<size_t>((h * per + d.nope + j) * d.kv_lora + cc)];
      }
    }
  }
  CHECK(k_ok);
  CHECK(v_ok);
  CHECK(tensor_f32(*f, "blk.1.exp_probs_b.bias") == c.w.at("model.layers.1.mlp.gate.e_score_correction_bias"));
  // --keep-kv-b: the older layout.
  REQUIRE(convert(dir / "hf", dir / "kvb.gguf", "F16", true) == "");
  auto g = gguf::File::open((dir / "kvb.gguf").string());
  REQUIRE(g.ok());
  CHECK(shape_of(*g, "blk.0.attn_kv_b.weight") == std::vector<int64_t>{64, 4 * 64});
  CHECK(g->find_tensor("blk.0.attn_k_b.weight") == nullptr);
  CHECK(g->get_uint("deepseek2.attention.head_count_kv").value() == 4);
  CHECK(g->find_tensor("blk.1.ffn_gate_inp.weight")->type == DType::F32);
  CHECK(g->find_tensor("blk.1.ffn_gate_exps.weight")->type == DType::F16);
  // With a Q LoRA (the project's own DeepSeek-V3 checkpoints): attn_q_a, attn_q_a_norm, attn_q_b.
  DsSpec dq;
  dq.q_lora = 96;
  write_deepseek(dir / "hfq", dq, false);
  REQUIRE(convert(dir / "hfq", dir / "q.gguf", "F32") == "");
  auto q = gguf::File::open((dir / "q.gguf").string());
  REQUIRE(q.ok());
  CHECK(q->get_uint("deepseek2.attention.q_lora_rank").value() == 96);
  CHECK(shape_of(*q, "blk.1.attn_q_a.weight") == std::vector<int64_t>{256, 96});
  CHECK(shape_of(*q, "blk.1.attn_q_a_norm.weight") == std::vector<int64_t>{96});
  CHECK(shape_of(*q, "blk.1.attn_q_b.weight") == std::vector<int64_t>{96, 4 * 48});
  CHECK(q->find_tensor("blk.1.attn_q.weight") == nullptr);
  fs::remove_all(dir);
}

// ============================================================================================
// llama.cpp
// ============================================================================================

TEST_CASE("convert: llama.cpp loads the converted files and agrees with HF's forward pass") {
  const std::string missing = node_missing();
  REQUIRE_MESSAGE(missing.empty(), missing);
  const fs::path dir = temp_dir("conv-node");
  std::vector<std::string> models;
  std::vector<Checkpoint> ckpts;
  for (const char* arch : {"LlamaForCausalLM", "Qwen2ForCausalLM"}) {
    DenseSpec s;
    s.arch = arch;
    const fs::path hf = dir / arch;
    ckpts.push_back(write_dense_checkpoint(hf, s));
    REQUIRE(convert(hf, dir / (std::string(arch) + ".gguf"), "F32") == "");
    models.push_back((dir / (std::string(arch) + ".gguf")).string());
  }
  // DeepSeek: the MLA split (F32, BF16; F16 attn_k_b trips an assertion in the prebuilt
  // llama.cpp's CPU scheduler, see docs/QUANTIZATION.md) and the attn_kv_b layout (F16).
  write_deepseek(dir / "ds", DsSpec{}, false);
  REQUIRE(convert(dir / "ds", dir / "ds.gguf", "F32") == "");
  models.push_back((dir / "ds.gguf").string());
  REQUIRE(convert(dir / "ds", dir / "ds-bf16.gguf", "BF16") == "");
  models.push_back((dir / "ds-bf16.gguf").string());
  REQUIRE(convert(dir / "ds", dir / "ds-kvb.gguf", "F32", true) == "");
  models.push_back((dir / "ds-kvb.gguf").string());

  const auto runs = run_llama(models, kPrompt, 0, dir);
  REQUIRE(runs.size() == models.size());
  for (size_t m = 0; m < models.size(); ++m) {
    CAPTURE(models[m]);
    CHECK_MESSAGE(runs[m].ok, runs[m].error);
    REQUIRE(runs[m].probs.size() == 1);
    double sum = 0;
    for (double p : runs[m].probs[0]) sum += p;
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-3));
  }
  // Dense F32: llama.cpp's distribution after the prompt matches HF's (tolerance as the F32
  // oracle: llama.cpp keeps K/V in F16).
  for (size_t m = 0; m < 2; ++m) {
    const auto p = softmax(hf_forward(ckpts[m], kPrompt).back());
    std::vector<double> q = runs[m].probs[0];
    q.resize(p.size(), 0.0);
    double top = 0;
    for (double x : p) top = std::max(top, x);
    CHECK(top > 0.05);  // a distribution far from uniform (1/276), so the check means something
    CHECK(max_abs_diff(p, q) < 5e-3);
  }
  // The split layout computes what the unsplit one does (llama.cpp decompresses K/V from the
  // latent either way), and BF16 weights stay close.
  CHECK(max_abs_diff(runs[2].probs[0], runs[4].probs[0]) < 1e-4);
  CHECK(max_abs_diff(runs[2].probs[0], runs[3].probs[0]) < 5e-3);
  fs::remove_all(dir);
}

