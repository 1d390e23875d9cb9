// Helpers shared by the tokenizer tests that read the corpus and the reference files.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "slm/json.hpp"

namespace tokenizer_test {

namespace fs = std::filesystem;

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<std::string> read_lines(const fs::path& p) {
  std::vector<std::string> lines;
  std::ifstream f(p, std::ios::binary);
  std::string line;
  while (std::getline(f, line)) lines.push_back(line);
  return lines;
}

inline std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream ss(line);
  long v;
  while (ss >> v) ids.push_back(int32_t(v));
  return ids;
}

inline std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

inline fs::path source_dir() {
  const std::string s = env("SLM_SOURCE_DIR");
  return s.empty() ? fs::path(SLM_TEST_SOURCE_DIR) : fs::path(s);
}
inline fs::path build_dir() {
  const std::string s = env("SLM_BUILD_DIR");
  return s.empty() ? fs::current_path() : fs::path(s);
}

inline std::vector<std::string> load_corpus() {
  std::vector<std::string> corpus;
  for (const auto& line : read_lines(source_dir() / "tests/data/tokenizer_corpus.txt")) {
    if (line.empty()) continue;
    auto v = slm::json::parse(line);
    REQUIRE_MESSAGE(v.ok(), "corpus line is not JSON: " << line);
    REQUIRE(v->is_string());
    corpus.emplace_back(v->as_string());
  }
  return corpus;
}


}  // namespace tokenizer_test
