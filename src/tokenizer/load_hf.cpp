// Loading a tokenizer from Hugging Face tokenizer.json (+ tokenizer_config.json).
//
// Supported: model "BPE" with (a) a ByteLevel pre-tokenizer, optionally after Split patterns
// (GPT-2, Llama 3, Qwen2, DeepSeek-V3 style), with no normalizer or NFC; (b) SentencePiece-style
// BPE (normalizer Prepend "▁" + Replace " " -> "▁", byte_fallback), as LLaMA 2 ships it.
// Anything else is reported as unsupported, naming the component.
#include <fstream>
#include <sstream>

#include "slm/json.hpp"
#include "tokenizer/tokenizer_impl.hpp"

namespace slm {

using tokenizer_internal::Vocabulary;

namespace {

// A token given as "text" or {"content": "text", ...} in tokenizer_config.json.
std::string token_text(const json::Value* v) {
  if (!v) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_object()) {
    const json::Value* c = v->find("content");
    if (c && c->is_string()) return std::string(c->as_string());
  }
  return {};
}

Status read_pre_tokenizer(const json::Value& pt, Vocabulary& v, bool& byte_level, bool& prefix_space) {
  const json::Value* type = pt.find("type");
  const std::string_view t = type ? type->as_string() : "";
  if (t == "Sequence") {
    const json::Value* list = pt.find("pretokenizers");
    if (!list || !list->is_array()) return errorf("tokenizer.json: pre_tokenizer Sequence without a pretokenizers array");
    for (const auto& item : list->items()) SLM_TRY(read_pre_tokenizer(item, v, byte_level, prefix_space));
    return Status();
  }
  if (t == "Split") {
    const json::Value* pattern = pt.find("pattern");
    const json::Value* behavior = pt.find("behavior");
    const json::Value* invert = pt.find("invert");
    if (behavior && behavior->as_string() != "Isolated")
      return errorf("tokenizer.json: Split behavior \"%.*s\" is not supported (only Isolated)",
                    int(behavior->as_string().size()), behavior->as_string().data());
    if (invert && invert->as_bool()) return errorf("tokenizer.json: Split with invert=true is not supported");
    const json::Value* regex = pattern ? pattern->find("Regex") : nullptr;
    if (!regex || !regex->is_string()) return errorf("tokenizer.json: Split pattern must be a Regex");
    v.split_patterns.emplace_back(regex->as_string());
    return Status();
  }
  if (t == "ByteLevel") {
    byte_level = true;
    const json::Value* use_regex = pt.find("use_regex");
    if (!use_regex || use_regex->as_bool())
      v.split_patterns.emplace_back(
          R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
    const json::Value* aps = pt.find("add_prefix_space");
    if (aps && aps->as_bool()) prefix_space = true;
    return Status();
  }
  return errorf("tokenizer.json: pre_tokenizer \"%.*s\" is not supported", int(t.size()), t.data());
}

}  // namespace

Expected<Tokenizer> Tokenizer::from_hf_json(std::string_view tokenizer_json, std::string_view config_json) {
  auto doc = json::parse(tokenizer_json);
  if (!doc) return errorf("tokenizer.json: %s", doc.error().message.c_str());
  json::Value config = json::Value::object();
  if (!config_json.empty()) {
    auto c = json::parse(config_json);
    if (!c) return errorf("tokenizer_config.json: %s", c.error().message.c_str());
    if (!c->is_object()) return errorf("tokenizer_config.json: not a JSON object");
    config = std::move(*c);
  }
  const json::Value& root = *doc;
  if (!root.is_object()) return errorf("tokenizer.json: not a JSON object");

  Vocabulary v;
  v.source = "tokenizer.json";
  auto model = json::get(root, "model", json::Kind::Object);
  if (!model) return errorf("tokenizer.json: %s", model.error().message.c_str());
  const json::Value& m = **model;
  const json::Value* mtype = m.find("type");
  if (!mtype || mtype->as_string() != "BPE")
    return errorf("tokenizer.json: model type \"%.*s\" is not supported (only BPE)",
                  int(mtype ? mtype->as_string().size() : 0), mtype ? mtype->as_string().data() : "");

  // Vocabulary (token -> id), then added tokens (which may extend it).
  auto vocab = json::get(m, "vocab", json::Kind::Object);
  if (!vocab) return errorf("tokenizer.json: model: %s", vocab.error().message.c_str());
  const json::Value* added = root.find("added_tokens");
  size_t max_id = 0;
  bool any = false;
  auto note_id = [&](const json::Value& id, std::string_view what) -> Status {
    if (!id.is_integer() || id.as_int() < 0 || id.as_int() >= (int64_t(1) << 24))
      return errorf("tokenizer.json: %.*s has a bad id", int(what.size()), what.data());
    max_id = std::max(max_id, size_t(id.as_int()));
    any = true;
    return Status();
  };
  for (const auto& mem : (*vocab)->members()) SLM_TRY(note_id(mem.value, mem.key));
  if (added && added->is_array())
    for (const auto& a : added->items()) {
      const json::Value* id = a.find("id");
      if (!id) return errorf("tokenizer.json: added token without an id");
      SLM_TRY(note_id(*id, "an added token"));
    }
  if (!any) return errorf("tokenizer.json: the vocabulary is empty");
  v.pieces.assign(max_id + 1, std::string());
  v.types.assign(max_id + 1, TokenType::kUnused);
  for (const auto& mem : (*vocab)->members()) {
    const size_t id = size_t(mem.value.as_int());
    if (!v.pieces[id].empty())
      return errorf("tokenizer.json: id %zu is used by both \"%s\" and \"%s\"", id, v.pieces[id].c_str(), mem.key.c_str());
    v.pieces[id] = mem.key;
    v.types[id] = TokenType::kNormal;
  }
  if (added && added->is_array()) {
    for (const auto& a : added->items()) {
      const size_t id = size_t(a.find("id")->as_int());
      const json::Value* content = a.find("content");
      if (!content || !content->is_string() || content->as_string().empty())
        return errorf("tokenizer.json: added token %zu has no content", id);
      if (v.types[id] == TokenType::kNormal && v.pieces[id] != content->as_string())
        return errorf("tokenizer.json: added token %zu \"%.*s\" clashes with vocabulary token \"%s\"", id,
                      int(content->as_string().size()), content->as_string().data(), v.pieces[id].c_str());
      const json::Value* special = a.find("special");
      const bool is_special = (special && special->as_bool()) || tokenizer_internal::looks_special(content->as_string());
      v.pieces[id] = std::string(content->as_string());
      v.types[id] = is_special ? TokenType::kControl : TokenType::kUserDefined;
    }
  }
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.pieces[i].empty()) v.types[i] = TokenType::kUnused;

  // Merges: "a b" strings (older files) or ["a", "b"] pairs.
  if (const json::Value* merges = m.find("merges"); merges && merges->is_array()) {
    v.merges.reserve(merges->size());
    for (const auto& item : merges->items()) {
      if (item.is_string()) {
        std::string_view s = item.as_string();
        const size_t sp = s.find(' ');
        if (sp == std::string_view::npos || sp == 0 || sp + 1 == s.size())
          return errorf("tokenizer.json: merge \"%.*s\" is not two tokens", int(s.size()), s.data());
        v.merges.emplace_back(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
      } else if (item.is_array() && item.size() == 2 && item.at(0)->is_string() && item.at(1)->is_string()) {
        v.merges.emplace_back(std::string(item.at(0)->as_string()), std::string(item.at(1)->as_string()));
      } else {
        return errorf("tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", v.merges.size());
      }
    }
  }
  const json::Value* ignore_merges = m.find("ignore_merges");
  v.ignore_merges = ignore_merges && ignore_merges->as_bool();
  const json::Value* byte_fallback = m.find("byte_fallback");
  v.byte_fallback = byte_fallback && byte_fallback->as_bool();

  // Normalizer: none, NFC, or the SentencePiece pair Prepend("▁") + Replace(" ", "▁").
  bool prepend = false, replace_space = false;
  std::vector<const json::Value*> norms;
  if (const json::Value* n = root.find("normalizer"); n && !n->is_null()) {
    const json::Value* t = n->find("type");
    if (t && t->as_string() == "Sequence") {
      if (const json::Value* list = n->find("normalizers"); list && list->is_array())
        for (const auto& item : list->items()) norms.push_back(&item);
    } else {
      norms.push_back(n);
    }
  }
  for (const json::Value* n : norms) {
    const std::string_view t = n->find("type") ? n->find("type")->as_string() : "";
    if (t == "NFC") {
      v.nfc = true;
    } else if (t == "Prepend" && n->find("prepend") && n->find("prepend")->as_string() == "\xE2\x96\x81") {
      prepend = true;
    } else if (t == "Replace" && n->find("content") && n->find("content")->as_string() == "\xE2\x96\x81" &&
               n->find("pattern") && n->find("pattern")->find("String") &&
               n->find("pattern")->find("String")->as_string() == " ") {
      replace_space = true;
    } else {
      return errorf("tokenizer.json: normalizer \"%.*s\" is not supported", int(t.size()), t.data());
    }
  }

  bool byte_level = false, prefix_space = false;
  if (const json::Value* pt = root.find("pre_tokenizer"); pt && !pt->is_null())
    SLM_TRY(read_pre_tokenizer(*pt, v, byte_level, prefix_space));
  if (prefix_space) return errorf("tokenizer.json: ByteLevel add_prefix_space=true is not supported");
  if (byte_level) {
    if (prepend || replace_space) return errorf("tokenizer.json: byte-level BPE with a \"▁\" normalizer is not supported");
    v.kind = TokenizerKind::kByteLevelBpe;
    v.pre_type = tokenizer_internal::preset_name_for(v.split_patterns);
    if (v.pre_type.empty()) v.pre_type = "custom";
  } else if (replace_space) {
    if (!v.split_patterns.empty()) return errorf("tokenizer.json: SentencePiece BPE with Split patterns is not supported");
    if (v.nfc) return errorf("tokenizer.json: SentencePiece BPE with NFC is not supported");
    v.kind = TokenizerKind::kSentencePiece;
    v.add_space_prefix = prepend;
    v.pre_type = "sentencepiece";
  } else {
    return errorf("tokenizer.json: neither a ByteLevel pre-tokenizer nor a SentencePiece normalizer: unsupported BPE setup");
  }

  // Special ids and flags from tokenizer_config.json; model.unk_token as the fallback unk.
  auto id_of = [&](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (size_t i = 0; i < v.pieces.size(); ++i)
      if (v.pieces[i] == text) return int32_t(i);
    return -1;
  };
  auto config_token = [&](const char* key) -> Expected<int32_t> {
    const std::string text = token_text(config.find(key));
    if (text.empty()) return -1;
    const int32_t id = id_of(text);
    if (id < 0) return errorf("tokenizer_config.json: %s \"%s\" is not a token", key, text.c_str());
    return id;
  };
  auto bos = config_token("bos_token");
  if (!bos) return bos.error();
  auto eos = config_token("eos_token");
  if (!eos) return eos.error();
  auto pad = config_token("pad_token");
  if (!pad) return pad.error();
  auto unk = config_token("unk_token");
  if (!unk) return unk.error();
  v.bos = *bos;
  v.eos = *eos;
  v.pad = *pad;
  v.unk = *unk >= 0 ? *unk : id_of(token_text(m.find("unk_token")));
  if (v.unk >= 0) v.types[size_t(v.unk)] = TokenType::kUnknown;

  // add_bos_token: the config's flag, else whether the post-processor template starts with a
  // special token (Llama 3 writes it only there).
  if (const json::Value* f = config.find("add_bos_token"); f && f->is_bool()) {
    v.add_bos = f->as_bool();
  } else if (const json::Value* pp = root.find("post_processor"); pp && pp->is_object()) {
    std::vector<const json::Value*> procs{pp};
    if (const json::Value* list = pp->find("processors"); list && list->is_array())
      for (const auto& p : list->items()) procs.push_back(&p);
    for (const json::Value* p : procs) {
      const json::Value* single = p->find("single");
      if (single && single->is_array() && single->size() > 0 && single->at(0)->find("SpecialToken")) {
        const json::Value* id = single->at(0)->find("SpecialToken")->find("id");
        const int32_t tid = id ? id_of(std::string(id->as_string())) : -1;
        if (tid >= 0) {
          v.add_bos = true;
          if (v.bos < 0) v.bos = tid;
        }
      }
    }
  }
  if (const json::Value* f = config.find("add_eos_token"); f && f->is_bool()) v.add_eos = f->as_bool();
  // An end-of-turn token distinct from EOS.
  for (const char* eot : {"<|eot_id|>", "<|im_end|>"}) {
    const int32_t id = id_of(eot);
    if (id >= 0 && id != v.eos) { v.eot = id; break; }
  }

  if (const json::Value* ct = config.find("chat_template")) {
    if (ct->is_string()) {
      v.chat_template = std::string(ct->as_string());
    } else if (ct->is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const auto& item : ct->items()) {
        const json::Value* name = item.find("name");
        const json::Value* tmpl = item.find("template");
        if (tmpl && tmpl->is_string() && (v.chat_template.empty() || (name && name->as_string() == "default")))
          v.chat_template = std::string(tmpl->as_string());
      }
    }
  }
  return build_tokenizer(std::move(v));
}

Expected<Tokenizer> Tokenizer::from_hf_files(const std::string& tokenizer_json_path, const std::string& config_path) {
  auto read = [](const std::string& path, std::string& out) -> Status {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("%s: cannot open", path.c_str());
    std::ostringstream ss;
    ss << f.rdbuf();
    if (!f.good() && !f.eof()) return errorf("%s: read error", path.c_str());
    out = ss.str();
    return Status();
  };
  std::string tj, cj;
  SLM_TRY(read(tokenizer_json_path, tj));
  if (!config_path.empty()) SLM_TRY(read(config_path, cj));
  return from_hf_json(tj, cj);
}

}  // namespace slm
