// slm-logits: evaluates a prompt or a list of token ids and prints, per position, the top-K
// next-token probabilities (and optionally all logits) as JSON lines. A debugging tool, and the
// engine's side of the comparison with llama.cpp (tests/node/llama_oracle.mjs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "common/tool_common.hpp"
#include "slm/model.hpp"

namespace {

const char* kUsage =
    "usage: slm-logits -m MODEL.gguf (-p TEXT | --ids LIST | --ids-file FILE) [options]\n"
    "\n"
    "Prints one JSON line per position i of the input:\n"
    "  {\"pos\":i,\"token\":id,\"top\":[[id,prob],...]}\n"
    "where token is the input token at i and top the K most probable next tokens (softmax of\n"
    "the logits in double precision, ties by lower id).\n"
    "\n"
    "  -m, --model FILE     GGUF model\n"
    "  -p, --prompt TEXT    text, tokenized with the model's tokenizer (BOS added if the model\n"
    "                       asks for it)\n"
    "      --no-bos         do not add BOS to -p text\n"
    "      --ids LIST|FILE  token ids, e.g. 1,403,407 (no tokenizer involved), or a file of ids\n"
    "      --ids-file FILE  token ids separated by commas or whitespace ('-' = stdin)\n"
    "  -k, --top-k K        probabilities printed per position (default 10)\n"
    "      --full-logits    also print \"logits\":[...] (all n_vocab raw logits, float)\n"
    "      --last           print only the last position\n"
    "  -n, --n-gen N        afterwards generate N tokens greedily, one line each (default 0)\n"
    "  -c, --ctx N          context length (default: input + N, at least 16)\n"
    "  -b, --batch N        tokens per forward step (default 512)\n"
    "  -t, --threads N      threads (default 1)\n"
    "      --kv f16|f32     KV cache type (default f16)\n"
    "      --isa NAME       force the kernel level (scalar, avx2, avxvnni, avx512, avx512vnni, amx, ...)\n";

struct Options {
  std::string model;
  std::string prompt;
  bool have_prompt = false;
  bool bos = true;
  std::vector<int32_t> ids;
  int top_k = 10;
  bool full_logits = false;
  bool last_only = false;
  int n_gen = 0;
  int n_ctx = 0;
  int n_batch = 512;
  int n_threads = 1;
  slm::KvType kv = slm::KvType::F16;
  std::string isa;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "slm-logits: %s\n", message.c_str());
  return 1;
}

// Appends one JSON line for a position: the input token, the top-K of softmax(logits).
void print_position(std::string& line, int pos, int32_t token, std::span<const float> logits,
                    int top_k, bool full_logits, std::vector<int32_t>& order) {
  const size_t n = logits.size();
  double max_logit = -INFINITY;
  for (float v : logits) max_logit = std::max(max_logit, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max_logit);

  const size_t k = std::min(n, static_cast<size_t>(top_k));
  order.resize(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                    [&](int32_t a, int32_t b) {
                      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                    });
  char buf[64];
  line.clear();
  std::snprintf(buf, sizeof buf, "{\"pos\":%d,\"token\":%d,\"top\":[", pos, token);
  line += buf;
  for (size_t i = 0; i < k; ++i) {
    const int32_t id = order[i];
    const double p = std::exp(static_cast<double>(logits[id]) - max_logit) / sum;
    std::snprintf(buf, sizeof buf, "%s[%d,%.9g]", i ? "," : "", id, p);
    line += buf;
  }
  line += "]";
  if (full_logits) {
    line += ",\"logits\":[";
    for (size_t i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof buf, "%s%.9g", i ? "," : "", static_cast<double>(logits[i]));
      line += buf;
    }
    line += "]";
  }
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

int run(const Options& o) {
  auto model = slm::Model::load(o.model);
  if (!model) return fail(model.error().message);
  const slm::Model& m = **model;

  std::vector<int32_t> ids = o.ids;
  if (o.have_prompt) {
    auto tokens = slm::tool::tokenize(m, o.prompt, o.bos);
    if (!tokens) return fail(tokens.error().message);
    ids = std::move(*tokens);
  }
  if (ids.empty()) return fail("the input has no tokens");

  slm::ContextParams cp;
  cp.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::max<int>(16, static_cast<int>(ids.size()) + o.n_gen);
  cp.n_batch = o.n_batch;
  cp.n_threads = o.n_threads;
  cp.kv_type = o.kv;
  auto ctx = m.create_context(cp);
  if (!ctx) return fail(ctx.error().message);
  slm::Context& c = **ctx;

  std::string line;
  std::vector<int32_t> order;
  // The whole input in chunks of n_batch, all logits kept, each position printed as it comes.
  const size_t n = ids.size();
  for (size_t start = 0; start < n; start += static_cast<size_t>(o.n_batch)) {
    const size_t len = std::min(n - start, static_cast<size_t>(o.n_batch));
    const bool need_all = !o.last_only;
    slm::Status st = c.eval(std::span<const int32_t>(ids.data() + start, len), need_all);
    if (!st) return fail(st.message());
    for (size_t i = 0; i < len; ++i) {
      const size_t pos = start + i;
      if (o.last_only && pos != n - 1) continue;
      auto logits = c.logits(o.last_only ? -1 : static_cast<int>(i));
      if (logits.empty()) return fail("the model returned no logits for position " + std::to_string(pos));
      print_position(line, static_cast<int>(pos), ids[pos], logits, o.top_k, o.full_logits, order);
    }
  }
  // Greedy continuation: the argmax of the last logits becomes the next input.
  for (int g = 0; g < o.n_gen; ++g) {
    const int32_t next = slm::argmax(c.logits());
    slm::Status st = c.eval(std::span<const int32_t>(&next, 1));
    if (!st) return fail(st.message());
    print_position(line, static_cast<int>(n) + g, next, c.logits(), o.top_k, o.full_logits, order);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  slm::tool::Args a(argc, argv);
  std::string ids_file;
  while (a.next()) {
    if (a.is("-h", "--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a.is("-m", "--model")) {
      o.model = a.value();
    } else if (a.is("-p", "--prompt")) {
      o.prompt = a.value();
      o.have_prompt = true;
    } else if (a.is("--no-bos")) {
      o.bos = false;
    } else if (a.is("--ids")) {
      const std::string v = a.value();
      // A list of numbers, or else the name of a file holding one.
      if (!v.empty() && v.find_first_not_of("0123456789, \t\n") != std::string::npos) {
        ids_file = v;
      } else {
        auto list = slm::tool::parse_int_list(v, 0, INT32_MAX);
        if (!list) a.fail("--ids: " + list.error().message);
        else o.ids.assign(list->begin(), list->end());
      }
    } else if (a.is("--ids-file")) {
      ids_file = a.value();
    } else if (a.is("-k", "--top-k")) {
      o.top_k = static_cast<int>(a.int_value(0, INT32_MAX));
    } else if (a.is("--full-logits")) {
      o.full_logits = true;
    } else if (a.is("--last")) {
      o.last_only = true;
    } else if (a.is("-n", "--n-gen")) {
      o.n_gen = static_cast<int>(a.int_value(0, 1 << 20));
    } else if (a.is("-c", "--ctx")) {
      o.n_ctx = static_cast<int>(a.int_value(1, 1 << 24));
    } else if (a.is("-b", "--batch")) {
      o.n_batch = static_cast<int>(a.int_value(1, 1 << 16));
    } else if (a.is("-t", "--threads")) {
      o.n_threads = static_cast<int>(a.int_value(1, 1024));
    } else if (a.is("--kv")) {
      o.kv = a.kv_value();
    } else if (a.is("--isa")) {
      o.isa = a.value();
    } else {
      a.unknown();
    }
  }
  if (!a.error().empty()) return fail(a.error());
  if (o.model.empty()) return fail("no model given (-m FILE); see --help");
  if (!ids_file.empty()) {
    auto text = slm::tool::read_file(ids_file);
    if (!text) return fail(text.error().message);
    auto list = slm::tool::parse_int_list(*text, 0, INT32_MAX);
    if (!list) return fail(ids_file + ": " + list.error().message);
    o.ids.assign(list->begin(), list->end());
  }
  if (o.have_prompt == !o.ids.empty())
    return fail("give exactly one of -p TEXT, --ids LIST or --ids-file FILE");
  if (!o.isa.empty()) {
    slm::Status st = slm::tool::force_isa(o.isa);
    if (!st) return fail(st.message());
  }
  return run(o);
}
