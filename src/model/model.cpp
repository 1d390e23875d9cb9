// Architecture dispatch for Model::load, and the small shared pieces of the model API.
#include <algorithm>
#include <cmath>

#include "model/deepseek2.hpp"
#include "model/llama.hpp"
#include "slm/gguf.hpp"
#include "slm/model.hpp"

namespace slm {

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F16: return "F16";
    case KvType::Q8_0: return "Q8_0";
    case KvType::F32: return "F32";
  }
  return "?";
}

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelParams& params) {
  auto file = gguf::File::open(path);
  if (!file) return errorf("%s: %s", path.c_str(), file.error().message.c_str());
  auto model = from_file(std::move(*file), params);
  if (!model) return errorf("%s: %s", path.c_str(), model.error().message.c_str());
  return model;
}

Expected<std::unique_ptr<Model>> Model::from_file(gguf::File file, const ModelParams& params) {
  auto arch = file.get_string("general.architecture");
  if (!arch) return arch.error();
  if (*arch == "llama" || *arch == "qwen2") return llama::load(std::move(file), params);
  if (*arch == "deepseek2") return deepseek2::load(std::move(file), params);
  return errorf("key 'general.architecture': '%.*s' is not supported (expected llama, qwen2 or deepseek2)",
                static_cast<int>(arch->size()), arch->data());
}

Expected<std::unique_ptr<Context>> Context::create(const Model& model, const ContextParams& params) {
  return model.create_context(params);
}

int32_t argmax(std::span<const float> values) {
  int32_t best = -1;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) continue;
    if (best < 0 || values[i] > values[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

}  // namespace slm
