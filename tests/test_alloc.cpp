// Memory discipline of the C API: no heap allocation while generating (prefill included) once a
// context exists, and the memory estimates match what loading and creating really allocate.
// Allocations are counted by interposing malloc & co. in this executable (glibc's __libc_*
// underneath); under a sanitizer, which owns malloc, by the sanitizer's allocation hooks.
#include <doctest/doctest.h>
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "test_capi_util.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLM_ALLOC_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLM_ALLOC_HOOKS 1
#endif
#endif

namespace {

std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
std::atomic<long> g_live_bytes{0};  // usable bytes allocated minus freed while counting

void note_alloc(size_t usable) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  g_live_bytes.fetch_add(static_cast<long>(usable), std::memory_order_relaxed);
}
void note_free(size_t usable) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_live_bytes.fetch_sub(static_cast<long>(usable), std::memory_order_relaxed);
}

}  // namespace

#ifdef SLM_ALLOC_HOOKS
// From the sanitizer runtime (sanitizer/allocator_interface.h, which GCC does not install).
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                                         void (*free_hook)(const volatile void*));
extern "C" size_t __sanitizer_get_allocated_size(const volatile void* p);
namespace {
void on_malloc(const volatile void*, size_t size) { note_alloc(size); }
void on_free(const volatile void* p) {
  if (p) note_free(__sanitizer_get_allocated_size(p));
}
[[maybe_unused]] const int g_hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#else
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  if (p) note_alloc(malloc_usable_size(p));
  return p;
}
void* calloc(size_t a, size_t b) {
  void* p = __libc_calloc(a, b);
  if (p) note_alloc(malloc_usable_size(p));
  return p;
}
void* realloc(void* old, size_t n) {
  if (old) note_free(malloc_usable_size(old));
  void* p = __libc_realloc(old, n);
  if (p) note_alloc(malloc_usable_size(p));
  return p;
}
void free(void* p) {
  if (p) note_free(malloc_usable_size(p));
  __libc_free(p);
}
void* memalign(size_t align, size_t n) {
  void* p = __libc_memalign(align, n);
  if (p) note_alloc(malloc_usable_size(p));
  return p;
}
void* aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void** out, size_t align, size_t n) {
  void* p = memalign(align, n);
  if (!p) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}
#endif

namespace {

struct Counting {
  long allocs0, live0;
  Counting() : allocs0(g_allocs.load()), live0(g_live_bytes.load()) { g_counting.store(true); }
  ~Counting() { g_counting.store(false); }
  long allocs() const { return g_allocs.load() - allocs0; }
  long live_bytes() const { return g_live_bytes.load() - live0; }
};

int32_t count_tokens(void* user, int32_t, const char* text, size_t len, slm_channel) {
  auto* n = static_cast<long*>(user);
  *n += 1;
  // Touch the text so a bad pointer would show under ASan.
  volatile char sink = 0;
  for (size_t i = 0; i < len; ++i) sink = static_cast<char>(sink ^ text[i]);
  return 0;
}

}  // namespace

TEST_CASE("the allocation counter sees allocations") {
  Counting c;
  std::vector<int>* v = new std::vector<int>(1000);
  void* p = std::malloc(100);
  std::free(p);
  delete v;
  g_counting.store(false);
  CHECK(c.allocs() >= 3);
}

TEST_CASE("generating 256 tokens through slm_generate allocates nothing") {
  for (int threads : {1, 2}) {
    for (bool split : {true, false}) {
      CAPTURE(threads);
      CAPTURE(split);
      capi_test::Model m(capi_test::small_spec(5, 1024));
      slm_context_params p = capi_test::greedy_params(640, threads);
      p.sampler.temperature = 0.9f;  // the full sampling chain: penalties, top-k, top-p, min-p
      p.sampler.repeat_penalty = 1.1f;
      p.sampler.presence_penalty = 0.2f;
      p.n_batch = 16;               // the prompt takes several steps
      capi_test::Context ctx(m.model, p);
      std::vector<int32_t> prompt(40);
      for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 37) % 250);
      slm_generate_params gp = slm_generate_default_params();
      long seen = 0;
      gp.on_token = count_tokens;
      gp.user_data = &seen;
      gp.split_reasoning = split;
      // The context's worker threads start asynchronously; the sanitizer runtime allocates its
      // bookkeeping in each when it first runs. One evaluation waits for all of them.
      const int32_t warm = 1;
      REQUIRE(slm_decode(ctx.ctx, warm) == SLM_OK);
      REQUIRE(slm_context_reset(ctx.ctx) == SLM_OK);
      slm_generate_result r{};
      long generated = 0, calls = 0;
      long allocs = 0;
      {
        Counting counting;
        // An end token ends a call early: continue from its logits until 256 tokens are out.
        while (generated < 256 && calls < 300) {
          gp.max_tokens = static_cast<int32_t>(256 - generated);
          const bool first = calls == 0;
          if (slm_generate(ctx.ctx, first ? prompt.data() : nullptr, first ? prompt.size() : 0, &gp, &r) != SLM_OK) break;
          generated += r.n_generated;
          ++calls;
        }
        allocs = counting.allocs();
      }
      REQUIRE_MESSAGE(generated == 256, slm_context_error(ctx.ctx));
      CHECK(seen >= 256 - calls);
      CHECK(allocs == 0);
    }
  }
}

TEST_CASE("memory estimates match what load and context creation allocate") {
  const auto bytes = capi_test::model_bytes(capi_test::small_spec(5, 2048));
  for (int n_ctx : {128, 2048}) {
    for (int threads : {1, 4}) {
      CAPTURE(n_ctx);
      CAPTURE(threads);
      slm_context_params p = capi_test::greedy_params(n_ctx, threads);
      slm_memory_estimate est{};
      REQUIRE(slm_memory_required_buffer(bytes.data(), bytes.size(), nullptr, &p, &est) == SLM_OK);
      long model_heap = 0, ctx_heap = 0;
      slm_model* model = nullptr;
      slm_context* ctx = nullptr;
      {
        Counting c;
        REQUIRE(slm_model_load_buffer(bytes.data(), bytes.size(), nullptr, &model) == SLM_OK);
        model_heap = c.live_bytes();
      }
      {
        Counting c;
        REQUIRE(slm_context_create(model, &p, &ctx) == SLM_OK);
        ctx_heap = c.live_bytes();
      }
      MESSAGE("n_ctx " << n_ctx << " threads " << threads << ": model heap " << model_heap << " (estimate "
                       << est.model_bytes << "), context heap " << ctx_heap << " (estimate " << est.context_bytes
                       << ")");
      // The model estimate is an upper bound that is not wildly loose.
      CHECK(model_heap <= static_cast<long>(est.model_bytes));
      CHECK(static_cast<long>(est.model_bytes) <= 8 * model_heap + (1 << 20));
      // The context estimate is what the context allocates, to within 2% + 16 KiB (allocator
      // rounding, the thread pool's bookkeeping; worker stacks are mapped, not heap).
      CHECK(static_cast<double>(ctx_heap) <= 1.02 * static_cast<double>(est.context_bytes) + 16384.0);
      CHECK(static_cast<double>(ctx_heap) >= 0.95 * static_cast<double>(est.context_bytes));
      slm_context_free(ctx);
      slm_model_free(model);
    }
  }
}

TEST_CASE("model memory estimate on the real stories260K model (../shared)") {
  const char* src = std::getenv("SLM_SOURCE_DIR");
  const std::string path = std::string(src ? src : ".") + "/../shared/data/models/stories260K.gguf";
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    MESSAGE("../shared/data/models/stories260K.gguf not found: real-model estimate not checked");
    return;
  }
  slm_context_params p = capi_test::greedy_params(512, 2);
  slm_memory_estimate est{};
  REQUIRE(slm_memory_required(path.c_str(), nullptr, &p, &est) == SLM_OK);
  slm_model* model = nullptr;
  slm_context* ctx = nullptr;
  long model_heap = 0, ctx_heap = 0;
  {
    Counting c;
    REQUIRE(slm_model_load_file(path.c_str(), nullptr, &model) == SLM_OK);
    model_heap = c.live_bytes();
  }
  {
    Counting c;
    REQUIRE(slm_context_create(model, &p, &ctx) == SLM_OK);
    ctx_heap = c.live_bytes();
  }
  MESSAGE("stories260K: model heap " << model_heap << " (estimate " << est.model_bytes << "), context heap "
                                     << ctx_heap << " (estimate " << est.context_bytes << ")");
  CHECK(model_heap <= static_cast<long>(est.model_bytes));
  CHECK(static_cast<double>(ctx_heap) <= 1.02 * static_cast<double>(est.context_bytes) + 16384.0);
  CHECK(static_cast<double>(ctx_heap) >= 0.95 * static_cast<double>(est.context_bytes));
  slm_context_free(ctx);
  slm_model_free(model);
}

// deepseek2 keeps a routing record per evaluated token that grows to the longest eval so far
// (src/model/deepseek2.cpp, Deepseek2Context::eval, routing_): one allocation the first time a
// prompt is longer than any before. The warm-up prefills a prompt of the same length; what is
// checked is that decoding allocates nothing per token.
TEST_CASE("deepseek2 (MLA + MoE): no allocation per generated token") {
  for (const char* preset : {"tiny", "tiny-lite"}) {
    CAPTURE(preset);
    auto spec = slm::mkmodel::preset(preset, "deepseek2");
    REQUIRE(spec.ok());
    spec->type = "F32";
    capi_test::Model m(*spec);
    slm_context_params p = capi_test::greedy_params(256, 2);
    p.sampler.temperature = 0.9f;
    capi_test::Context ctx(m.model, p);
    const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8};
    REQUIRE(slm_prefill(ctx.ctx, prompt.data(), prompt.size()) == SLM_OK);  // workers started, routing sized
    REQUIRE(slm_context_reset(ctx.ctx) == SLM_OK);
    slm_generate_params gp = slm_generate_default_params();
    long generated = 0, calls = 0, allocs = 0;
    {
      Counting counting;
      while (generated < 64 && calls < 100) {
        gp.max_tokens = static_cast<int32_t>(64 - generated);
        slm_generate_result r{};
        if (slm_generate(ctx.ctx, calls == 0 ? prompt.data() : nullptr, calls == 0 ? prompt.size() : 0, &gp, &r) != SLM_OK)
          break;
        generated += r.n_generated;
        ++calls;
      }
      allocs = counting.allocs();
    }
    REQUIRE_MESSAGE(generated == 64, slm_context_error(ctx.ctx));
    MESSAGE("deepseek2 " << std::string(preset) << ": " << allocs << " heap allocations over 64 tokens");
    CHECK(allocs == 0);
  }
}
