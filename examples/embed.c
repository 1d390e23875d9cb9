/* embed.c: a plain C program using only slm.h -- check the memory a model needs, load it,
 * create a context, render a chat prompt (or tokenize raw text) and stream a reply.
 *
 *   embed MODEL.gguf [PROMPT] [MAX_TOKENS]
 *
 * Built out of tree against an installed libslm (see examples/CMakeLists.txt, or
 * `cc embed.c $(pkg-config --cflags --libs slm)`); scripts/check-packaging.sh runs it. */
#include <slm/slm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t on_token(void* user_data, int32_t token, const char* text, size_t len, slm_channel channel) {
  (void)token;
  int* n_tokens = (int*)user_data;
  ++*n_tokens;
  if (channel == SLM_CHANNEL_ANSWER) fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0; /* nonzero would stop generation */
}

static void on_log(void* user_data, slm_log_level level, const char* message) {
  (void)user_data;
  fprintf(stderr, "[slm %d] %s\n", (int)level, message);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: embed MODEL.gguf [PROMPT] [MAX_TOKENS]\n");
    return 2;
  }
  const char* path = argv[1];
  const char* prompt = argc > 2 ? argv[2] : "Why is the sky blue?";
  const int max_tokens = argc > 3 ? atoi(argv[3]) : 32;
  if (slm_abi_version() != SLM_ABI_VERSION) {
    fprintf(stderr, "libslm ABI %u, this program was built for %u\n", slm_abi_version(), SLM_ABI_VERSION);
    return 1;
  }

  slm_context_params cp = slm_context_default_params();
  cp.n_ctx = 512;
  cp.n_threads = 2;
  cp.sampler.temperature = 0.0f;
  cp.log_fn = on_log;
  cp.log_level = SLM_LOG_INFO;

  slm_memory_estimate need;
  if (slm_memory_required(path, NULL, &cp, &need) != SLM_OK) {
    fprintf(stderr, "embed: %s\n", slm_last_error());
    return 1;
  }
  printf("libslm %s (ABI %u), isa %s\n", slm_version_string(), slm_abi_version(), slm_isa_level());
  printf("memory: weights %zu (mapped), model %zu, context %zu (KV %zu), total %zu bytes\n", need.weights_bytes,
         need.model_bytes, need.context_bytes, need.kv_bytes, need.total_bytes);

  slm_model* model = NULL;
  if (slm_model_load_file(path, NULL, &model) != SLM_OK) {
    fprintf(stderr, "embed: %s\n", slm_last_error());
    return 1;
  }
  slm_model_info info;
  slm_model_get_info(model, &info);
  printf("model: %s, %lld params, vocab %lld\n", info.arch, (long long)info.n_params, (long long)info.n_vocab);

  slm_context* ctx = NULL;
  if (slm_context_create(model, &cp, &ctx) != SLM_OK) {
    fprintf(stderr, "embed: %s\n", slm_last_error());
    slm_model_free(model);
    return 1;
  }

  /* The R1 chat template when the model has no template of its own. */
  slm_chat_message messages[2] = {{"system", "You are a helpful assistant."}, {"user", prompt}};
  const char* tmpl = info.chat_template[0] ? NULL : "deepseek-r1";
  size_t n = 0;
  slm_status st = slm_chat_tokenize(model, tmpl, messages, 2, 1, NULL, 0, &n);
  int32_t* ids = (int32_t*)malloc((n ? n : 1) * sizeof *ids);
  if (ids == NULL || (st != SLM_OK && st != SLM_ERR_BUFFER_TOO_SMALL) ||
      slm_chat_tokenize(model, tmpl, messages, 2, 1, ids, n, &n) != SLM_OK) {
    fprintf(stderr, "embed: %s\n", slm_last_error());
    free(ids);
    slm_context_free(ctx);
    slm_model_free(model);
    return 1;
  }

  int n_tokens = 0;
  slm_generate_params gp = slm_generate_default_params();
  gp.max_tokens = max_tokens;
  gp.on_token = on_token;
  gp.user_data = &n_tokens;
  gp.starts_in_reasoning = slm_chat_opens_reasoning(model, tmpl);
  slm_generate_result r;
  st = slm_generate(ctx, ids, n, &gp, &r);
  printf("\n");
  if (st != SLM_OK) fprintf(stderr, "embed: %s\n", slm_context_error(ctx));
  printf("prompt %d tokens, generated %d tokens (stop %d), %d callbacks\n", r.n_prompt, r.n_generated,
         r.stop_reason, n_tokens);
  free(ids);
  slm_context_free(ctx);
  slm_model_free(model);
  return st == SLM_OK && r.n_generated > 0 ? 0 : 1;
}
