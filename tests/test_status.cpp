// Error values and read-only maps.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "slm/mapped_file.hpp"
#include "slm/status.hpp"

namespace {
slm::Expected<int> half_of(int x) {
  if (x % 2 != 0) return slm::errorf("%d is odd", x);
  return x / 2;
}
slm::Status check_even(int x) {
  SLM_TRY(half_of(x));
  return slm::Status::success();
}
}  // namespace

TEST_CASE("Expected carries a value or a formatted error") {
  auto a = half_of(10);
  REQUIRE(a.ok());
  CHECK(*a == 5);
  auto b = half_of(7);
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().message == "7 is odd");
  CHECK(check_even(4).ok());
  CHECK(check_even(3).message() == "3 is odd");
}

TEST_CASE("MappedFile maps read-only and reports missing files") {
  auto missing = slm::MappedFile::open("/nonexistent/slm-test-file");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("/nonexistent/slm-test-file") != std::string::npos);

  const std::string path = "slm_test_mapped_file.bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  std::fputs("hello", f);
  std::fclose(f);
  auto mapped = slm::MappedFile::open(path);
  REQUIRE(mapped.ok());
  CHECK(mapped->size() == 5);
  CHECK(std::string(reinterpret_cast<const char*>(mapped->data()), 5) == "hello");
  auto dir = slm::MappedFile::open(".");
  CHECK_FALSE(dir.ok());
  std::remove(path.c_str());
}
