// slm-tokenize: encode text to token ids (or decode ids to text) with a model's tokenizer.
//
//   slm-tokenize (-m MODEL.gguf | --tokenizer tokenizer.json [--config tokenizer_config.json])
//                [-p TEXT] [--pieces] [--no-bos] [--parse-special] [--decode]
//
// Without -p, each line of stdin is one input; each input gives one output line: its ids
// separated by spaces (with --pieces: id:"piece" pairs, the piece JSON-quoted). --decode reads
// space-separated ids instead and prints the text. Exit codes: 0 success, 1 a file or input
// cannot be processed (one line on stderr), 2 bad usage.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/gguf.hpp"
#include "slm/json.hpp"
#include "slm/tokenizer.hpp"

namespace {

const char kUsage[] =
    "usage: slm-tokenize (-m MODEL.gguf | --tokenizer tokenizer.json [--config tokenizer_config.json])\n"
    "                    [-p TEXT] [--pieces] [--no-bos] [--parse-special] [--decode]\n";

struct Options {
  std::string model, tokenizer_json, config_json, prompt;
  bool has_prompt = false, pieces = false, no_bos = false, parse_special = false, decode = false;
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "slm-tokenize: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "slm-tokenize: %s\n", msg.c_str());
  return 1;
}

// Parses one line of ids; an Error names the bad field.
slm::Expected<std::vector<int32_t>> parse_ids(const std::string& line, int32_t n_vocab, size_t line_no) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == ',' || line[i] == '\r')) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != ',' && line[j] != '\r') ++j;
    const std::string field = line.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(field.c_str(), &end, 10);
    if (errno || end != field.c_str() + field.size() || v < 0 || v >= n_vocab)
      return slm::errorf("line %zu: \"%s\" is not a token id (vocabulary of %d)", line_no, field.c_str(), n_vocab);
    ids.push_back(int32_t(v));
    i = j;
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string& out) -> bool {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (a == "-m" || a == "--model") {
      if (!value(o.model)) return usage_error("-m needs a file");
    } else if (a == "--tokenizer") {
      if (!value(o.tokenizer_json)) return usage_error("--tokenizer needs a file");
    } else if (a == "--config") {
      if (!value(o.config_json)) return usage_error("--config needs a file");
    } else if (a == "-p" || a == "--prompt") {
      if (!value(o.prompt)) return usage_error("-p needs text");
      o.has_prompt = true;
    } else if (a == "--pieces") {
      o.pieces = true;
    } else if (a == "--no-bos") {
      o.no_bos = true;
    } else if (a == "--parse-special") {
      o.parse_special = true;
    } else if (a == "--decode") {
      o.decode = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      return usage_error("unknown argument '" + std::string(a) + "'");
    }
  }
  if (o.model.empty() == o.tokenizer_json.empty()) return usage_error("give exactly one of -m and --tokenizer");

  std::optional<slm::gguf::File> file;
  std::optional<slm::Tokenizer> tok;
  if (!o.model.empty()) {
    auto f = slm::gguf::File::open(o.model);
    if (!f) return fail(o.model + ": " + f.error().message);
    file.emplace(std::move(*f));
    auto t = slm::Tokenizer::from_gguf(*file);
    if (!t) return fail(o.model + ": " + t.error().message);
    tok.emplace(std::move(*t));
  } else {
    if (o.config_json.empty()) {  // tokenizer_config.json beside tokenizer.json, when there
      const auto guess = std::filesystem::path(o.tokenizer_json).parent_path() / "tokenizer_config.json";
      if (std::filesystem::exists(guess)) o.config_json = guess.string();
    }
    auto t = slm::Tokenizer::from_hf_files(o.tokenizer_json, o.config_json);
    if (!t) return fail(t.error().message);
    tok.emplace(std::move(*t));
  }

  std::vector<std::string> inputs;
  if (o.has_prompt) {
    inputs.push_back(o.prompt);
  } else {
    std::string line;
    while (std::getline(std::cin, line)) inputs.push_back(line);
    if (std::cin.bad()) return fail("error reading standard input");
  }

  std::string out;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (o.decode) {
      auto ids = parse_ids(inputs[k], tok->n_vocab(), k + 1);
      if (!ids) return fail(ids.error().message);
      out += tok->decode(*ids, {.skip_special = false});
      out += '\n';
      continue;
    }
    auto ids = tok->encode(inputs[k], {.add_bos = !o.no_bos, .parse_special = o.parse_special});
    if (!ids) return fail("line " + std::to_string(k + 1) + ": " + ids.error().message);
    for (size_t i = 0; i < ids->size(); ++i) {
      if (i) out += ' ';
      out += std::to_string((*ids)[i]);
      if (o.pieces) {
        out += ':';
        out += slm::json::quote(tok->token_piece((*ids)[i]));
      }
    }
    out += '\n';
    if (out.size() > (1u << 16)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (std::fflush(stdout) != 0) return fail("error writing standard output");
  return 0;
}
