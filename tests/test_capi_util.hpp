// Helpers shared by the C API tests: small random models as GGUF bytes or files.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/random_model.hpp"
#include "slm/slm.h"

namespace capi_test {

// A small qwen2 model (fast under ASan) with the minimal byte-level vocabulary padded to n_vocab.
inline slm::mkmodel::Spec small_spec(uint64_t seed = 3, int64_t n_vocab = 512) {
  slm::mkmodel::Spec s;
  s.arch = "qwen2";
  s.n_embd = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 128;
  s.n_vocab = n_vocab;
  s.type = "F32";
  s.seed = seed;
  return s;
}

inline std::vector<uint8_t> model_bytes(const slm::mkmodel::Spec& s) {
  auto buf = slm::mkmodel::write_buffer(s);
  REQUIRE_MESSAGE(buf.ok(), (buf.ok() ? "" : buf.error().message));
  return std::move(*buf);
}

// A model loaded from its own copy of the bytes (kept alive with the model).
struct Model {
  std::vector<uint8_t> bytes;
  slm_model* model = nullptr;
  explicit Model(const slm::mkmodel::Spec& s = small_spec()) : bytes(model_bytes(s)) {
    slm_status st = slm_model_load_buffer(bytes.data(), bytes.size(), nullptr, &model);
    REQUIRE_MESSAGE(st == SLM_OK, slm_last_error());
  }
  ~Model() { slm_model_free(model); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
};

struct Context {
  slm_context* ctx = nullptr;
  Context(const slm_model* m, slm_context_params p) {
    slm_status st = slm_context_create(m, &p, &ctx);
    REQUIRE_MESSAGE(st == SLM_OK, slm_last_error());
  }
  ~Context() { slm_context_free(ctx); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

// A file in the temporary directory, removed at the end of the scope.
struct TempFile {
  std::string path;
  explicit TempFile(const std::vector<uint8_t>& data, const char* stem = "slm_capi") {
    char tmpl[256];
    const char* dir = std::getenv("TMPDIR");
    std::snprintf(tmpl, sizeof tmpl, "%s/%s_XXXXXX", dir && *dir ? dir : "/tmp", stem);
    const int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    path = tmpl;
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t w = write(fd, data.data() + off, data.size() - off);
      REQUIRE(w > 0);
      off += static_cast<size_t>(w);
    }
    close(fd);
  }
  ~TempFile() { unlink(path.c_str()); }
};

inline slm_context_params greedy_params(int n_ctx = 256, int n_threads = 1) {
  slm_context_params p = slm_context_default_params();
  p.n_ctx = n_ctx;
  p.n_threads = n_threads;
  p.sampler.temperature = 0.0f;
  return p;
}

}  // namespace capi_test
