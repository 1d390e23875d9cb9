// Throughput of the elementwise ops (kernels::silu_mul, softmax, rmsnorm, exp_f32, add) and the
// Q8_K activation quantizer at every ISA level this CPU runs, at the R1-Distill-Qwen-1.5B row
// sizes: n = 8960 (FFN hidden, silu_mul) and 1536 (embedding, rmsnorm). Counter: elements/s.
//
//   build/benchmarks/bench_ops --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// silu_mul and softmax work in place: each iteration first restores the input row with a
// memcpy (the `copy` rows measure that part alone).
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.hpp"
#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"

namespace {

std::vector<float> random_floats(int64_t n, float scale, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (auto& x : v) x = u(rng);
  return v;
}

enum class Op { copy, silu_mul, softmax, rmsnorm, exp, add, quantize_q8_k };

void bm_op(benchmark::State& state, Op op, slm::IsaLevel level, int64_t n) {
  // Gates and scores with the spread of real activations (|g| up to ~10, scores over ~30).
  const std::vector<float> src = random_floats(n, op == Op::softmax ? 15.0f : 6.0f, 1);
  const std::vector<float> other = random_floats(n, 1.5f, 2);
  std::vector<float> buf = src, out(static_cast<size_t>(n));
  const size_t bytes = sizeof(float) * static_cast<size_t>(n);
  const auto* table = slm::kernels::detail::kernel_table(level);
  const auto quantize = table->by_type[static_cast<int>(slm::DType::Q4_K)].quantize_act;
  std::vector<uint8_t> q8k(static_cast<size_t>(n / 256) * 292 + 64);
  for (auto _ : state) {
    switch (op) {
      case Op::copy: std::memcpy(buf.data(), src.data(), bytes); break;
      case Op::silu_mul:
        std::memcpy(buf.data(), src.data(), bytes);
        slm::kernels::silu_mul(level, buf.data(), other.data(), n);
        break;
      case Op::softmax:
        std::memcpy(buf.data(), src.data(), bytes);
        slm::kernels::softmax(level, buf.data(), n);
        break;
      case Op::rmsnorm: slm::kernels::rmsnorm(level, out.data(), src.data(), other.data(), n, 1e-6f); break;
      case Op::exp: slm::kernels::exp_f32(level, src.data(), out.data(), n); break;
      case Op::add: slm::kernels::add(level, buf.data(), other.data(), n); break;
      case Op::quantize_q8_k: quantize(src.data(), q8k.data(), n); break;
    }
    benchmark::DoNotOptimize(buf.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(q8k.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void register_all() {
  struct Named {
    Op op;
    const char* name;
  };
  constexpr Named ops[] = {{Op::silu_mul, "silu_mul"}, {Op::softmax, "softmax"},   {Op::rmsnorm, "rmsnorm"},
                           {Op::exp, "exp"},           {Op::add, "add"},           {Op::quantize_q8_k, "quantize_q8_k"},
                           {Op::copy, "copy"}};
  for (const Named& o : ops)
    for (int64_t n : {8960, 1536})
      for (int i = 0; i < slm::kIsaLevelCount; ++i) {
        const auto level = static_cast<slm::IsaLevel>(i);
        if (!slm::isa_level_supported(level)) continue;
        if (o.op == Op::copy && level != slm::IsaLevel::scalar) continue;
        benchmark::RegisterBenchmark((std::string(o.name) + "/" + slm::isa_level_name(level) + "/" + std::to_string(n)).c_str(),
                                     bm_op, o.op, level, n)
            ->Unit(benchmark::kMicrosecond);
      }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
