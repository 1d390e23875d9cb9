// Tool-side glue between a loaded model and text: the model's tokenizer (its own or built from
// the GGUF metadata), prompt encoding, end-of-generation tokens and the chat template.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/chat.hpp"
#include "slm/gguf.hpp"
#include "slm/model.hpp"
#include "slm/status.hpp"
#include "slm/tokenizer.hpp"

namespace slm::tool {

class TextModel {
 public:
  // The model's tokenizer when it loaded one, otherwise one read from the file's tokenizer.* keys.
  // template_name, when not empty, chooses the chat template by name (an error when unknown);
  // otherwise the template in the model's metadata is used when recognised.
  static Expected<TextModel> create(const Model& model, std::string_view template_name = {}) {
    TextModel t;
    if (model.tokenizer() != nullptr) {
      t.tokenizer_ = model.tokenizer();
    } else {
      auto built = Tokenizer::from_gguf(model.file());
      if (!built) return errorf("tokenizer: %s", built.error().message.c_str());
      t.owned_ = std::make_shared<Tokenizer>(std::move(*built));
      t.tokenizer_ = t.owned_.get();
    }
    auto tmpl = ChatTemplate::for_tokenizer(*t.tokenizer_, template_name);
    if (tmpl) t.template_ = std::move(*tmpl);
    else if (!template_name.empty()) return tmpl.error();
    return t;
  }

  const Tokenizer& tokenizer() const { return *tokenizer_; }

  // Plain text (special-token text stays text), BOS as the model's metadata asks unless !bos.
  Expected<std::vector<int32_t>> encode(std::string_view text, bool bos) const {
    EncodeOptions opt;
    opt.add_bos = bos;
    return tokenizer_->encode(text, opt);
  }
  bool is_eog(int32_t id) const { return tokenizer_->is_end_of_generation(id); }

  // The chat template recognised in the model's metadata, if any.
  const ChatTemplate* chat_template() const { return template_ ? &*template_ : nullptr; }

 private:
  std::shared_ptr<const Tokenizer> owned_;
  const Tokenizer* tokenizer_ = nullptr;
  std::optional<ChatTemplate> template_;
};

// Convenience for tools that only encode a prompt.
inline Expected<std::vector<int32_t>> tokenize(const Model& model, std::string_view text, bool bos) {
  auto t = TextModel::create(model);
  if (!t) return t.error();
  return t->encode(text, bos);
}

}  // namespace slm::tool
