// The C ABI (slm.h): status codes and messages, loading from a file and a buffer, memory
// estimates, tokens and chat text, evaluation against the C++ API, generation (callback stop,
// cancel from another thread, budgets), several contexts and models, the text stream.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "capi/text_stream.hpp"
#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"
#include "slm/gguf.hpp"
#include "slm/model.hpp"
#include "slm/slm.hpp"
#include "test_capi_util.hpp"

using capi_test::Context;
using capi_test::greedy_params;
using capi_test::Model;
using capi_test::small_spec;

namespace {

std::vector<int32_t> tokenize(const slm_model* m, const std::string& text, bool bos = false) {
  size_t n = 0;
  slm_status st = slm_tokenize(m, text.data(), text.size(), bos, 0, nullptr, 0, &n);
  REQUIRE((st == SLM_OK || st == SLM_ERR_BUFFER_TOO_SMALL));
  std::vector<int32_t> ids(n);
  REQUIRE(slm_tokenize(m, text.data(), text.size(), bos, 0, ids.data(), ids.size(), &n) == SLM_OK);
  return ids;
}

struct Collected {
  std::vector<int32_t> tokens;
  std::string answer, reasoning;
  int stop_after = -1;  // stop when this many tokens were seen
};

int32_t collect(void* user, int32_t token, const char* text, size_t len, slm_channel ch) {
  auto* c = static_cast<Collected*>(user);
  if (c->tokens.empty() || c->tokens.back() != token || len == 0) c->tokens.push_back(token);
  (ch == SLM_CHANNEL_REASONING ? c->reasoning : c->answer).append(text, len);
  return c->stop_after >= 0 && static_cast<int>(c->tokens.size()) >= c->stop_after ? 1 : 0;
}

// Greedy continuation through the C++ API, for comparison.
std::vector<int32_t> cpp_greedy(const std::vector<uint8_t>& bytes, const std::vector<int32_t>& prompt, int n) {
  auto file = slm::gguf::File::from_buffer(bytes.data(), bytes.size());
  REQUIRE(file.ok());
  auto model = slm::Model::from_file(std::move(*file));
  REQUIRE(model.ok());
  slm::ContextParams cp;
  cp.n_ctx = 256;
  auto ctx = slm::Context::create(**model, cp);
  REQUIRE(ctx.ok());
  REQUIRE((*ctx)->eval(prompt).ok());
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t t = slm::argmax((*ctx)->logits());
    out.push_back(t);
    REQUIRE((*ctx)->eval({&t, 1}).ok());
  }
  return out;
}

}  // namespace

TEST_CASE("versions, status names and defaults") {
  CHECK(slm_abi_version() == SLM_ABI_VERSION);
  CHECK(std::string(slm_version_string()).size() >= 5);
  CHECK(std::string(slm_status_name(SLM_OK)) == "ok");
  CHECK(std::string(slm_status_name(SLM_ERR_CONTEXT_FULL)) == "context full");
  CHECK(std::string(slm_status_name(static_cast<slm_status>(99))) == "unknown status");
  const std::string isa = slm_isa_level();
  CHECK((isa == "scalar" || isa == "avx2" || isa == "avx512" || isa == "avx512vnni" || isa == "amx" || isa == "neon" ||
         isa == "neon-dotprod"));
  slm_context_params cp = slm_context_default_params();
  CHECK(cp.struct_size == sizeof(slm_context_params));
  CHECK(cp.n_ctx == 4096);
  CHECK(cp.n_threads == 1);
  CHECK(slm_generate_default_params().max_tokens == 256);
}

TEST_CASE("load failures are statuses with messages") {
  slm_model* m = reinterpret_cast<slm_model*>(0x1);
  CHECK(slm_model_load_file("/nonexistent/dir/model.gguf", nullptr, &m) == SLM_ERR_IO);
  CHECK(m == nullptr);
  CHECK(std::string(slm_last_error()).find("/nonexistent/dir/model.gguf") != std::string::npos);

  const char junk[] = "GGUF but not really a gguf file at all";
  CHECK(slm_model_load_buffer(junk, sizeof junk, nullptr, &m) == SLM_ERR_FORMAT);
  CHECK(std::string(slm_last_error()).size() > 10);
  CHECK(slm_model_load_buffer(nullptr, 0, nullptr, &m) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(slm_model_load_file(nullptr, nullptr, &m) == SLM_ERR_INVALID_ARGUMENT);

  // A truncated model: the header parses or not, but never crashes and never loads.
  auto bytes = capi_test::model_bytes(small_spec());
  for (size_t cut : {size_t{8}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    CHECK(slm_model_load_buffer(bytes.data(), cut, nullptr, &m) == SLM_ERR_FORMAT);
  }

  slm_model_params bad = slm_model_default_params();
  bad.struct_size = 1000;
  CHECK(slm_model_load_buffer(bytes.data(), bytes.size(), &bad, &m) == SLM_ERR_INVALID_ARGUMENT);

  // The message is per thread: another thread's failure does not change ours.
  CHECK(slm_model_load_file("/nonexistent/a.gguf", nullptr, &m) == SLM_ERR_IO);
  std::thread([&] { CHECK(slm_model_load_file("/nonexistent/b.gguf", nullptr, &m) == SLM_ERR_IO); }).join();
  CHECK(std::string(slm_last_error()).find("a.gguf") != std::string::npos);
}

TEST_CASE("load from a file and from a buffer; info") {
  auto bytes = capi_test::model_bytes(small_spec());
  capi_test::TempFile file(bytes);
  slm_model* a = nullptr;
  REQUIRE(slm_model_load_file(file.path.c_str(), nullptr, &a) == SLM_OK);
  Model b;
  slm_model_info ia{}, ib{};
  REQUIRE(slm_model_get_info(a, &ia) == SLM_OK);
  REQUIRE(slm_model_get_info(b.model, &ib) == SLM_OK);
  CHECK(std::string(ia.arch) == "qwen2");
  CHECK(ia.n_vocab == 512);
  CHECK(ia.n_embd == 64);
  CHECK(ia.n_layer == 2);
  CHECK(ia.n_params == ib.n_params);
  CHECK(ia.weights_bytes == ib.weights_bytes);
  CHECK(ia.bos == 259);
  CHECK(ia.eos == 260);
  CHECK(std::string(ia.chat_template).empty());  // the random model's vocabulary has no template
  slm_model_free(a);
  slm_model_free(nullptr);
}

TEST_CASE("memory required before loading matches what the context allocates") {
  auto bytes = capi_test::model_bytes(small_spec());
  capi_test::TempFile file(bytes);
  Model m;
  for (int n_ctx : {64, 1000}) {
    for (int threads : {1, 3}) {
      for (int kv : {SLM_KV_F16, SLM_KV_F32}) {
        slm_context_params cp = greedy_params(n_ctx, threads);
        cp.kv_type = kv;
        slm_memory_estimate from_path{}, from_buf{}, from_model{};
        REQUIRE(slm_memory_required(file.path.c_str(), nullptr, &cp, &from_path) == SLM_OK);
        REQUIRE(slm_memory_required_buffer(bytes.data(), bytes.size(), nullptr, &cp, &from_buf) == SLM_OK);
        REQUIRE(slm_model_memory_required(m.model, &cp, &from_model) == SLM_OK);
        CHECK(from_path.context_bytes == from_buf.context_bytes);
        CHECK(from_path.context_bytes == from_model.context_bytes);
        CHECK(from_path.weights_bytes == bytes.size());
        // KV: 2 (K, V) x layers x positions x kv_dim (2 heads x 16) x element size.
        CHECK(from_path.kv_bytes == size_t{2} * 2 * static_cast<size_t>(n_ctx) * 32 * (kv == SLM_KV_F16 ? 2 : 4));
        CHECK(from_path.total_bytes == from_path.weights_bytes + from_path.model_bytes + from_path.context_bytes);
        Context c(m.model, cp);
        CHECK(slm_context_memory_bytes(c.ctx) == from_path.context_bytes);
        CHECK(slm_context_n_threads(c.ctx) == threads);
      }
    }
  }
  slm_memory_estimate e{};
  slm_context_params cp = slm_context_default_params();
  cp.n_ctx = 0;
  CHECK(slm_memory_required(file.path.c_str(), nullptr, &cp, &e) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(slm_memory_required("/nonexistent.gguf", nullptr, nullptr, &e) == SLM_ERR_IO);
}

TEST_CASE("memory required: weights interleaved at load are heap, not mapped, and only when asked") {
  slm::mkmodel::Spec spec = small_spec();
  spec.type = "Q8_0";  // 64-wide rows: Q8_0 blocks of 32; every matrix has a multiple of 16 rows
  auto bytes = capi_test::model_bytes(spec);
  capi_test::TempFile file(bytes);
  slm_context_params cp = greedy_params(64, 1);
  slm_model_params on = slm_model_default_params(), off = slm_model_default_params();
  CHECK(on.interleave_weights == 1);
  off.interleave_weights = 0;
  slm_memory_estimate est_on{}, est_off{}, buf_on{};
  REQUIRE(slm_memory_required(file.path.c_str(), &on, &cp, &est_on) == SLM_OK);
  REQUIRE(slm_memory_required(file.path.c_str(), &off, &cp, &est_off) == SLM_OK);
  REQUIRE(slm_memory_required_buffer(bytes.data(), bytes.size(), &on, &cp, &buf_on) == SLM_OK);
  CHECK(est_off.weights_bytes == bytes.size());
  CHECK(buf_on.weights_bytes == est_on.weights_bytes);
  CHECK(buf_on.model_bytes == est_on.model_bytes);
  // What moves from mapped to heap, and the total does not change.
  const size_t moved = est_off.weights_bytes - est_on.weights_bytes;
  CHECK(est_on.model_bytes - est_off.model_bytes == moved);
  CHECK(est_on.total_bytes == est_off.total_bytes);
  for (const slm_model_params* mp : {&on, &off}) {
    slm_model* model = nullptr;
    REQUIRE(slm_model_load_file(file.path.c_str(), mp, &model) == SLM_OK);
    slm_memory_estimate loaded{};
    REQUIRE(slm_model_memory_required(model, &cp, &loaded) == SLM_OK);
    const slm_memory_estimate& before = mp == &on ? est_on : est_off;
    CHECK(loaded.weights_bytes == before.weights_bytes);
    CHECK(loaded.model_bytes == before.model_bytes);
    slm_model_free(model);
  }
  if (slm::kernels::interleave_pays(slm::default_isa_level(), slm::DType::Q8_0)) {
    // 2 layers x (q 64 + k 32 + v 32 + o 64 + gate 128 + up 128 rows of 64, down 64 rows of 128)
    // + output 512 rows of 64; a block is 32 values in 34 bytes; each matrix padded to 64 bytes.
    size_t expect = 0;
    for (int layer = 0; layer < 2; ++layer)
      for (size_t rows : {64, 32, 32, 64, 128, 128}) expect += (rows * 68 + 63) / 64 * 64;
    expect += 2 * ((64 * 136 + 63) / 64 * 64) + (512 * 68 + 63) / 64 * 64;
    CHECK(moved == expect);
  } else {
    CHECK(moved == 0);
  }
}

TEST_CASE("deepseek2: kv_bytes is the latent cache") {
  auto spec = slm::mkmodel::preset("tiny", "deepseek2");
  REQUIRE(spec.ok());
  spec->type = "F32";
  Model m(*spec);
  for (int n_ctx : {64, 1000}) {
    for (int kv : {SLM_KV_F16, SLM_KV_F32}) {
      slm_context_params cp = greedy_params(n_ctx, 1);
      cp.kv_type = kv;
      slm_memory_estimate e{};
      REQUIRE(slm_model_memory_required(m.model, &cp, &e) == SLM_OK);
      // n_layer x (kv_lora_rank + rope dims) x n_ctx x element size (sizeof f16 by default).
      const size_t want = static_cast<size_t>(spec->n_layer) * static_cast<size_t>(spec->ds.kv_lora_rank + spec->n_rot) *
                          static_cast<size_t>(n_ctx) * (kv == SLM_KV_F16 ? 2 : 4);
      CHECK(e.kv_bytes == want);
      CHECK(e.kv_bytes > 0);
      CHECK(e.kv_bytes < e.context_bytes);
    }
  }
}

TEST_CASE("context arena through the C API and the C++ wrapper") {
  for (const char* arch : {"qwen2", "deepseek2"}) {
    CAPTURE(std::string(arch));
    slm::mkmodel::Spec spec = small_spec();
    if (std::string(arch) == "deepseek2") {
      auto ds = slm::mkmodel::preset("tiny", "deepseek2");
      REQUIRE(ds.ok());
      ds->type = "F32";
      spec = *ds;
    }
    Model m(spec);
    slm_context_params cp = greedy_params(128, 2);
    const size_t need = slm_context_arena_bytes(m.model, &cp);
    REQUIRE(need > 0);
    slm_memory_estimate e{};
    REQUIRE(slm_model_memory_required(m.model, &cp, &e) == SLM_OK);
    CHECK(need < e.context_bytes);  // the C layer's sampler and text stream are not in it
    void* arena = std::aligned_alloc(64, need);
    REQUIRE(arena != nullptr);
    // Too small: a clear error with the size needed.
    slm_context_params small = cp;
    small.arena = arena;
    small.arena_bytes = need - 64;
    slm_context* bad = nullptr;
    CHECK(slm_context_create(m.model, &small, &bad) == SLM_ERR_INVALID_ARGUMENT);
    CHECK(bad == nullptr);
    CHECK(std::string(slm_last_error()).find(std::to_string(need)) != std::string::npos);
    // Exact: the same logits as a context that allocates its own memory.
    slm_context_params ap = cp;
    ap.arena = arena;
    ap.arena_bytes = need;
    {
      Context with(m.model, ap), without(m.model, cp);
      const int32_t prompt[] = {3, 1, 4, 1, 5, 9, 2, 6};
      REQUIRE(slm_prefill(with.ctx, prompt, 8) == SLM_OK);
      REQUIRE(slm_prefill(without.ctx, prompt, 8) == SLM_OK);
      const float *la = nullptr, *lb = nullptr;
      size_t na = 0, nb = 0;
      REQUIRE(slm_logits(with.ctx, &la, &na) == SLM_OK);
      REQUIRE(slm_logits(without.ctx, &lb, &nb) == SLM_OK);
      REQUIRE(na == nb);
      CHECK(std::memcmp(la, lb, na * sizeof(float)) == 0);
    }
    // The C++ wrapper passes the same struct; arena_bytes() is the same figure.
    auto wm = slm::abi::Model::from_buffer(m.bytes.data(), m.bytes.size());
    REQUIRE_MESSAGE(wm.ok(), wm.error());
    CHECK(wm->arena_bytes(cp) == need);
    {
      auto wc = wm->new_context(ap);
      REQUIRE_MESSAGE(wc.ok(), wc.error());
    }
    std::free(arena);
  }
}

TEST_CASE("tokenize, detokenize and buffer sizes") {
  Model m;
  const std::string text = "the cat sat on the mat, naïve café ✓";
  auto ids = tokenize(m.model, text);
  CHECK(ids.size() > 5);
  size_t n = 0;
  std::vector<char> out(text.size());
  REQUIRE(slm_detokenize(m.model, ids.data(), ids.size(), 0, out.data(), out.size(), &n) == SLM_OK);
  CHECK(std::string(out.data(), n) == text);
  // Too small: nothing written past capacity, needed size reported.
  std::vector<int32_t> small(2, -7);
  CHECK(slm_tokenize(m.model, text.data(), text.size(), 0, 0, small.data(), 1, &n) == SLM_ERR_BUFFER_TOO_SMALL);
  CHECK(n == ids.size());
  CHECK(small[1] == -7);
  const int32_t bad = 100000;
  CHECK(slm_detokenize(m.model, &bad, 1, 0, out.data(), out.size(), &n) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(slm_token_is_eog(m.model, 260) == 1);
  CHECK(slm_token_is_eog(m.model, 5) == 0);
  // BOS on request (the random vocabulary's add_bos default).
  auto with_bos = tokenize(m.model, "x", true);
  CHECK((with_bos.size() == 1 || with_bos.front() == 259));
}

TEST_CASE("chat template: deepseek-r1 text and tokens") {
  Model m;
  slm_chat_message msgs[] = {{"system", "You are terse."}, {"user", "Why?"}};
  size_t n = 0;
  CHECK(slm_chat_apply(m.model, "deepseek-r1", msgs, 2, 1, nullptr, 0, &n) == SLM_ERR_BUFFER_TOO_SMALL);
  std::string text(n, '\0');
  REQUIRE(slm_chat_apply(m.model, "deepseek-r1", msgs, 2, 1, text.data(), text.size(), &n) == SLM_OK);
  CHECK(text.find("You are terse.<｜User｜>Why?<｜Assistant｜><think>\n") != std::string::npos);
  CHECK(slm_chat_opens_reasoning(m.model, "deepseek-r1") == 1);
  CHECK(slm_chat_opens_reasoning(m.model, "deepseek-v3") == 0);
  std::vector<int32_t> ids(4096);
  REQUIRE(slm_chat_tokenize(m.model, "deepseek-r1", msgs, 2, 1, ids.data(), ids.size(), &n) == SLM_OK);
  ids.resize(n);
  std::string back(8192, '\0');
  size_t nb = 0;
  REQUIRE(slm_detokenize(m.model, ids.data(), ids.size(), 0, back.data(), back.size(), &nb) == SLM_OK);
  back.resize(nb);
  CHECK(back == text);
  CHECK(slm_chat_apply(m.model, "no-such-template", msgs, 2, 1, text.data(), text.size(), &n) ==
        SLM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slm_last_error()).find("no-such-template") != std::string::npos);
  CHECK(slm_chat_apply(m.model, nullptr, msgs, 2, 1, text.data(), text.size(), &n) == SLM_ERR_INVALID_ARGUMENT);
  slm_chat_message bad[] = {{"robot", "hi"}};
  CHECK(slm_chat_apply(m.model, "deepseek-r1", bad, 1, 1, text.data(), text.size(), &n) == SLM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("prefill, decode, logits and sample agree with the C++ API; generate agrees with both") {
  auto spec = small_spec();
  Model m(spec);
  const std::vector<int32_t> prompt = {259, 40, 41, 42, 100, 7};
  const auto expect = cpp_greedy(m.bytes, prompt, 12);

  Context c(m.model, greedy_params());
  REQUIRE(slm_prefill(c.ctx, prompt.data(), prompt.size()) == SLM_OK);
  std::vector<int32_t> got;
  for (int i = 0; i < 12; ++i) {
    const float* logits = nullptr;
    size_t nv = 0;
    REQUIRE(slm_logits(c.ctx, &logits, &nv) == SLM_OK);
    CHECK(nv == 512);
    int32_t t = -1;
    REQUIRE(slm_sample(c.ctx, &t) == SLM_OK);
    CHECK(t == slm::argmax({logits, nv}));
    got.push_back(t);
    REQUIRE(slm_decode(c.ctx, t) == SLM_OK);
  }
  CHECK(got == expect);
  CHECK(slm_context_n_past(c.ctx) == 18);

  // generate: the same tokens (unless an end token comes first), reported through the callback.
  REQUIRE(slm_context_reset(c.ctx) == SLM_OK);
  CHECK(slm_context_n_past(c.ctx) == 0);
  Collected col;
  slm_generate_params gp = slm_generate_default_params();
  gp.max_tokens = 12;
  gp.on_token = collect;
  gp.user_data = &col;
  gp.split_reasoning = 0;
  slm_generate_result r{};
  REQUIRE(slm_generate(c.ctx, prompt.data(), prompt.size(), &gp, &r) == SLM_OK);
  CHECK(r.n_prompt == 6);
  CHECK(r.n_generated == 12);
  CHECK(r.stop_reason == SLM_STOP_MAX_TOKENS);
  CHECK(col.tokens == expect);
  // The last token is reported but not evaluated: 6 + 11 positions.
  CHECK(slm_context_n_past(c.ctx) == 17);
}

TEST_CASE("per-context kernel level: each runnable level gives the scalar level's tokens; others are refused") {
  Model m(small_spec());
  const std::vector<int32_t> prompt = {259, 40, 41, 42, 100, 7};
  std::vector<int32_t> scalar_tokens;
  for (const char* name : {"scalar", "avx2", "avx512", "avx512vnni", "amx", "neon", "neon-dotprod"}) {
    CAPTURE(name);
    slm_context_params p = greedy_params();
    char copy[32];
    std::snprintf(copy, sizeof copy, "%s", name);  // the library keeps no pointer to it
    p.isa = copy;
    slm_context* ctx = nullptr;
    const auto level = slm::parse_isa_level(name);
    REQUIRE(level.ok());
    if (!slm::isa_level_supported(*level)) {
      CHECK(slm_context_create(m.model, &p, &ctx) == SLM_ERR_INVALID_ARGUMENT);
      CHECK(std::string(slm_last_error()).find("not supported") != std::string::npos);
      continue;
    }
    REQUIRE(slm_context_create(m.model, &p, &ctx) == SLM_OK);
    std::memset(copy, 0, sizeof copy);
    REQUIRE(slm_prefill(ctx, prompt.data(), prompt.size()) == SLM_OK);
    std::vector<int32_t> got;
    for (int i = 0; i < 8; ++i) {
      int32_t t = -1;
      REQUIRE(slm_sample(ctx, &t) == SLM_OK);
      got.push_back(t);
      REQUIRE(slm_decode(ctx, t) == SLM_OK);
    }
    if (scalar_tokens.empty()) scalar_tokens = got;
    CHECK(got == scalar_tokens);
    slm_context_free(ctx);
  }
  slm_context_params p = greedy_params();
  p.isa = "avx9000";
  slm_context* ctx = nullptr;
  CHECK(slm_context_create(m.model, &p, &ctx) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slm_last_error()).find("isa") != std::string::npos);
}

TEST_CASE("evaluation errors name the problem on the context") {
  Model m;
  Context c(m.model, greedy_params(8));
  const int32_t bad = 512;
  CHECK(slm_decode(c.ctx, bad) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slm_context_error(c.ctx)).find("outside the vocabulary") != std::string::npos);
  std::vector<int32_t> nine(9, 5);
  CHECK(slm_prefill(c.ctx, nine.data(), nine.size()) == SLM_ERR_CONTEXT_FULL);
  CHECK(slm_context_n_past(c.ctx) == 0);
  CHECK(slm_prefill(c.ctx, nullptr, 3) == SLM_ERR_INVALID_ARGUMENT);
  const float* l = nullptr;
  CHECK(slm_logits(c.ctx, &l, nullptr) == SLM_ERR_INVALID_ARGUMENT);
  int32_t t = 0;
  CHECK(slm_sample(c.ctx, &t) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(slm_generate(c.ctx, nullptr, 0, nullptr, nullptr) == SLM_ERR_INVALID_ARGUMENT);
  // A full context stops generation cleanly.
  REQUIRE(slm_prefill(c.ctx, nine.data(), 6) == SLM_OK);
  slm_generate_params gp = slm_generate_default_params();
  gp.max_tokens = 100;
  slm_generate_result r{};
  CHECK(slm_generate(c.ctx, nullptr, 0, &gp, &r) == SLM_OK);
  CHECK((r.stop_reason == SLM_STOP_CONTEXT_FULL || r.stop_reason == SLM_STOP_EOG));
  CHECK(slm_context_n_past(c.ctx) <= 8);
  // Bad context parameters.
  slm_context* ctx = nullptr;
  slm_context_params p = slm_context_default_params();
  p.n_threads = 0;
  CHECK(slm_context_create(m.model, &p, &ctx) == SLM_ERR_INVALID_ARGUMENT);
  p = slm_context_default_params();
  p.sampler.top_p = 0.0f;
  CHECK(slm_context_create(m.model, &p, &ctx) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(slm_last_error()).find("top_p") != std::string::npos);
  CHECK(ctx == nullptr);
}

TEST_CASE("the callback stops generation; max_tokens 0 generates nothing") {
  Model m;
  Context c(m.model, greedy_params());
  const std::vector<int32_t> prompt = {1, 2, 3};
  Collected col;
  col.stop_after = 3;
  slm_generate_params gp = slm_generate_default_params();
  gp.on_token = collect;
  gp.user_data = &col;
  gp.max_tokens = 50;
  slm_generate_result r{};
  REQUIRE(slm_generate(c.ctx, prompt.data(), prompt.size(), &gp, &r) == SLM_OK);
  if (r.stop_reason != SLM_STOP_EOG) {
    CHECK(r.stop_reason == SLM_STOP_CALLBACK);
    CHECK(r.n_generated == 3);
  }
  gp.max_tokens = 0;
  REQUIRE(slm_generate(c.ctx, nullptr, 0, &gp, &r) == SLM_OK);
  CHECK(r.n_generated == 0);
  CHECK(r.stop_reason == SLM_STOP_MAX_TOKENS);
}

TEST_CASE("cancel from another thread stops a long generation") {
  Model m;
  slm_context_params p = greedy_params(4096);
  p.sampler.temperature = 1.0f;
  Context c(m.model, p);
  const std::vector<int32_t> prompt = {1, 2, 3};
  struct Seen {
    std::atomic<int> n{0};
  } seen;
  slm_generate_params gp = slm_generate_default_params();
  gp.max_tokens = 4000;
  gp.on_token = [](void* u, int32_t, const char*, size_t, slm_channel) -> int32_t {
    static_cast<Seen*>(u)->n.fetch_add(1);
    return 0;
  };
  gp.user_data = &seen;
  std::thread canceller([&] {
    while (seen.n.load() < 5) std::this_thread::sleep_for(std::chrono::microseconds(200));
    slm_context_cancel(c.ctx);
  });
  slm_generate_result r{};
  // Generation may end by itself (an end token) before the cancel lands; loop until it lands.
  slm_status st = SLM_OK;
  for (int i = 0; i < 200 && st == SLM_OK; ++i) st = slm_generate(c.ctx, i == 0 ? prompt.data() : nullptr, i == 0 ? 3 : 0, &gp, &r);
  canceller.join();
  CHECK(st == SLM_ERR_CANCELLED);
  CHECK(r.stop_reason == SLM_STOP_CANCELLED);
  CHECK(std::string(slm_context_error(c.ctx)).find("cancelled") != std::string::npos);
  CHECK(slm_context_n_past(c.ctx) < 4000);
  // Stays cancelled until cleared.
  CHECK(slm_decode(c.ctx, 5) == SLM_ERR_CANCELLED);
  slm_context_clear_cancel(c.ctx);
  CHECK(slm_decode(c.ctx, 5) == SLM_OK);
}

TEST_CASE("two contexts on one model in two threads, two models in one process") {
  Model m;
  Model other(small_spec(11));
  const std::vector<int32_t> prompt = {259, 10, 20, 30};
  auto run = [](const slm_model* model, const std::vector<int32_t>& pr, int threads) {
    slm_context_params p = greedy_params(128, threads);
    p.sampler.temperature = 0.7f;
    p.sampler.seed = 42;
    slm_context* ctx = nullptr;
    REQUIRE(slm_context_create(model, &p, &ctx) == SLM_OK);
    Collected col;
    slm_generate_params gp = slm_generate_default_params();
    gp.max_tokens = 40;
    gp.on_token = collect;
    gp.user_data = &col;
    gp.split_reasoning = 0;
    slm_generate_result r{};
    REQUIRE(slm_generate(ctx, pr.data(), pr.size(), &gp, &r) == SLM_OK);
    slm_context_free(ctx);
    return col.tokens;
  };
  const auto alone = run(m.model, prompt, 1);
  const auto alone_other = run(other.model, prompt, 2);
  std::vector<int32_t> a, b, d;
  std::thread t1([&] { a = run(m.model, prompt, 1); });
  std::thread t2([&] { b = run(m.model, prompt, 2); });
  std::thread t3([&] { d = run(other.model, prompt, 2); });
  t1.join();
  t2.join();
  t3.join();
  CHECK(a == alone);
  CHECK(b == alone);  // thread count does not change results
  CHECK(d == alone_other);
  CHECK(alone != alone_other);
}

TEST_CASE("log callbacks are per context") {
  Model m;
  struct Log {
    std::vector<std::string> lines;
  } la, lb;
  auto fn = [](void* u, slm_log_level, const char* msg) { static_cast<Log*>(u)->lines.push_back(msg); };
  slm_context_params pa = greedy_params(32);
  pa.log_fn = fn;
  pa.log_user_data = &la;
  pa.log_level = SLM_LOG_INFO;
  slm_context_params pb = pa;
  pb.log_user_data = &lb;
  pb.log_level = SLM_LOG_ERROR;
  Context a(m.model, pa), b(m.model, pb);
  CHECK(la.lines.size() == 1);
  CHECK(la.lines[0].find("isa") != std::string::npos);
  CHECK(lb.lines.empty());
  CHECK(slm_decode(b.ctx, -1) == SLM_ERR_INVALID_ARGUMENT);
  CHECK(lb.lines.size() == 1);
  CHECK(la.lines.size() == 1);
}

TEST_CASE("the C++ wrapper (slm.hpp)") {
  auto bytes = capi_test::model_bytes(small_spec());
  auto model = slm::abi::Model::from_buffer(bytes.data(), bytes.size());
  REQUIRE_MESSAGE(model.ok(), model.error());
  auto ctx = model->new_context(greedy_params(64));
  REQUIRE(ctx.ok());
  auto ids = model->tokenize("the cat");
  REQUIRE(ids.ok());
  std::string text;
  auto r = ctx->generate(*ids, 5, [&](int32_t, std::string_view piece, slm_channel) {
    text += piece;
    return true;
  });
  REQUIRE(r.ok());
  CHECK(r.value().n_generated >= 1);
  auto bad = slm::abi::Model::from_file("/nonexistent.gguf");
  CHECK(!bad.ok());
  CHECK(bad.status() == SLM_ERR_IO);
  CHECK(bad.error().find("nonexistent") != std::string::npos);
}

// ---- Text stream (UTF-8 assembly and reasoning split) ------------------------------------------

namespace {
struct Out {
  std::string answer, reasoning;
};
Out stream(const std::vector<std::string>& pieces, bool split, bool in_reasoning) {
  slm::capi::TextStream ts;
  ts.init(32);
  ts.start(split, in_reasoning);
  Out o;
  auto emit = [&](const char* t, size_t n, slm_channel ch) {
    (ch == SLM_CHANNEL_REASONING ? o.reasoning : o.answer).append(t, n);
  };
  for (const auto& p : pieces) ts.push(p, emit);
  ts.finish(emit);
  return o;
}
}  // namespace

TEST_CASE("text stream: whole UTF-8 characters, invalid bytes as U+FFFD") {
  CHECK(stream({"caf", "\xC3", "\xA9", "!"}, false, false).answer == "café!");
  CHECK(stream({"\xE2\x9C", "\x93"}, false, false).answer == "✓");
  CHECK(stream({"a\xFF" "b"}, false, false).answer == "a\xEF\xBF\xBD" "b");
  CHECK(stream({"a\xC3"}, false, false).answer == "a\xEF\xBF\xBD");            // cut at the end
  CHECK(stream({"\xED\xA0\x80"}, false, false).answer == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(stream({"\xC3", "x"}, false, false).answer == "\xEF\xBF\xBDx");
}

TEST_CASE("text stream: reasoning split with tags across pieces") {
  auto o = stream({"<thi", "nk>plan", " it</", "think>", "\n\n", "Answer."}, true, false);
  CHECK(o.reasoning == "plan it");
  CHECK(o.answer == "Answer.");
  o = stream({"step 1", "</think>", " done"}, true, true);
  CHECK(o.reasoning == "step 1");
  CHECK(o.answer == "done");
  o = stream({"no tags at all <b>"}, true, false);
  CHECK(o.answer == "no tags at all <b>");
  o = stream({"still thinking </th"}, true, true);  // stops inside the reasoning
  CHECK(o.reasoning == "still thinking </th");
  o = stream({"<think>x</think>y"}, false, false);  // no split: text as is
  CHECK(o.answer == "<think>x</think>y");
}

TEST_CASE("mlock: the weights are locked, or the refusal is a status naming mlock") {
  auto bytes = capi_test::model_bytes(small_spec());
  slm_model_params mp = slm_model_default_params();
  mp.use_mlock = 1;
  slm_model* m = nullptr;
  const slm_status st = slm_model_load_buffer(bytes.data(), bytes.size(), &mp, &m);
  if (st == SLM_OK) {
    slm_model_free(m);
  } else {
    CHECK(st == SLM_ERR_NO_MEMORY);  // RLIMIT_MEMLOCK too low for an unprivileged user
    CHECK(std::string(slm_last_error()).find("mlock") != std::string::npos);
    CHECK(m == nullptr);
  }
}
