// Matmul throughput at the DeepSeek-R1-Distill-Qwen-1.5B shapes: slm kernels (per ISA level and
// thread count) against Eigen (f32) and oneDNN (f32, u8 x s8 int8), plus a streaming-read
// baseline. Counters: GB/s = weight bytes read per second, GOP/s = 2 * rows * cols * tokens / s.
//
//   build-kern/benchmarks/bench_matmul --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
// Env SLM_BENCH_LEVELS=avx2,avx512vnni limits the slm levels (default: the best one only).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <Eigen/Core>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "slm/cpu.hpp"
#include "slm/thread_pool.hpp"

namespace {

struct Shape {
  int64_t rows, cols;
};
// R1-Distill-Qwen-1.5B: q/o proj 1536x1536, k/v proj 256x1536, gate/up 8960x1536, down 1536x8960,
// output 151936x1536.
constexpr Shape kGemvShapes[] = {{1536, 1536}, {256, 1536}, {8960, 1536}, {1536, 8960}, {151936, 1536}};
constexpr Shape kGemmShapes[] = {{1536, 1536}, {256, 1536}, {8960, 1536}, {1536, 8960}};
constexpr int64_t kPrefillTokens = 512;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& x : v) x = u(rng);
  return v;
}

// One weight matrix cached at a time (the output matrix is 250 MB in Q8_0).
struct Weights {
  slm::DType type = slm::DType::F32;
  int64_t rows = 0, cols = 0;
  size_t stride = 0;
  std::vector<uint8_t> data;
  std::vector<uint8_t> x16;  // the interleaved copy (kernels::interleave_x16), made on first use
};

Weights& weights(slm::DType type, int64_t rows, int64_t cols) {
  static Weights w;
  if (w.type == type && w.rows == rows && w.cols == cols && !w.data.empty()) return w;
  w = Weights{};
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  w.stride = *slm::row_bytes(type, cols);
  w.data.resize(w.stride * static_cast<size_t>(rows));
  std::vector<float> row = random_floats(static_cast<size_t>(cols), 1);
  for (int64_t r = 0; r < rows; ++r) {
    row[static_cast<size_t>(r % cols)] = static_cast<float>(r % 13) * 0.1f;  // rows differ
    slm::traits(type).from_float(row.data(), w.data.data() + static_cast<size_t>(r) * w.stride, cols);
  }
  return w;
}

void set_counters(benchmark::State& state, double weight_bytes, int64_t rows, int64_t cols, int64_t tokens) {
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(weight_bytes * iters / 1e9, benchmark::Counter::kIsRate);
  state.counters["GOP/s"] = benchmark::Counter(2.0 * static_cast<double>(rows) * static_cast<double>(cols) *
                                                   static_cast<double>(tokens) * iters / 1e9,
                                               benchmark::Counter::kIsRate);
}

// ---- slm ------------------------------------------------------------------------------------
void bm_slm(benchmark::State& state, slm::DType type, slm::IsaLevel level, Shape s, int64_t tokens, int threads,
            bool interleaved) {
  Weights& w = weights(type, s.rows, s.cols);
  const std::vector<float> x = random_floats(static_cast<size_t>(tokens * s.cols), 2);
  std::vector<float> y(static_cast<size_t>(tokens * s.rows));
  std::vector<uint8_t> scratch(slm::kernels::matmul_scratch_bytes(type, s.cols, tokens));
  auto pool = slm::ThreadPool::create(threads);
  slm::kernels::Matrix m{type, w.data.data(), s.rows, s.cols, w.stride};
  if (interleaved) {
    if (w.x16.empty()) w.x16.resize(slm::kernels::interleaved_bytes(m));
    auto x = slm::kernels::interleave_x16(m, w.x16.data(), w.x16.size());
    if (!x) {
      state.SkipWithError(x.error().message.c_str());
      return;
    }
    m = *x;
  }
  for (auto _ : state) {
    slm::Status st = slm::kernels::matmul(level, m, x.data(), s.cols, tokens, y.data(), s.rows, scratch.data(),
                                          scratch.size(), pool->get());
    if (!st.ok()) {
      state.SkipWithError(st.message().c_str());
      break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, static_cast<double>(w.data.size()), s.rows, s.cols, tokens);
  state.SetLabel(slm::kernels::matmul_kernel_name(m, level));
}

// ---- Eigen (f32) ------------------------------------------------------------------------------
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void bm_eigen(benchmark::State& state, Shape s, int64_t tokens, int threads) {
  Eigen::setNbThreads(threads);
  RowMatrix w = RowMatrix::Random(s.rows, s.cols);
  RowMatrix x = RowMatrix::Random(tokens, s.cols);
  RowMatrix y(tokens, s.rows);
  for (auto _ : state) {
    if (tokens == 1) y.row(0).noalias() = (w * x.row(0).transpose()).transpose();
    else y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, 4.0 * static_cast<double>(s.rows * s.cols), s.rows, s.cols, tokens);
}

// ---- oneDNN (f32 and u8 x s8 -> s32) ---------------------------------------------------------------
void bm_dnnl(benchmark::State& state, bool int8, Shape s, int64_t tokens, int threads) {
  using dnnl::memory;
  omp_set_num_threads(threads);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  const memory::data_type src_t = int8 ? memory::data_type::u8 : memory::data_type::f32;
  const memory::data_type wei_t = int8 ? memory::data_type::s8 : memory::data_type::f32;
  const memory::data_type dst_t = int8 ? memory::data_type::s32 : memory::data_type::f32;
  const memory::dims src_dims = {tokens, s.cols}, wei_dims = {s.cols, s.rows}, dst_dims = {tokens, s.rows};
  memory::desc src_md(src_dims, src_t, memory::format_tag::ab);
  memory::desc wei_any(wei_dims, wei_t, memory::format_tag::any);
  memory::desc dst_md(dst_dims, dst_t, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_any, dst_md), eng);
  // Weights as stored by a model (rows x cols row-major = "ba" of cols x rows), reordered once
  // to oneDNN's preferred layout outside the timed loop.
  memory wei_user({wei_dims, wei_t, memory::format_tag::ba}, eng);
  const size_t wbytes = static_cast<size_t>(s.rows * s.cols) * (int8 ? 1 : 4);
  std::memset(wei_user.get_data_handle(), 1, wbytes);
  memory wei(pd.weights_desc(), eng);
  dnnl::reorder(wei_user, wei).execute(stream, wei_user, wei);
  memory src(src_md, eng), dst(dst_md, eng);
  std::memset(src.get_data_handle(), 1, static_cast<size_t>(tokens * s.cols) * (int8 ? 1 : 4));
  dnnl::matmul prim(pd);
  for (auto _ : state) {
    prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    stream.wait();
  }
  set_counters(state, static_cast<double>(wbytes), s.rows, s.cols, tokens);
}

// ---- streaming read -------------------------------------------------------------------------------
void bm_stream_read(benchmark::State& state, int threads) {
  const size_t n = size_t{1} << 27;  // 1 GiB of uint64
  std::vector<uint64_t> buf(n, 1);
  auto pool = slm::ThreadPool::create(threads);
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8);
  for (auto _ : state) {
    (*pool)->run([&](int i, int nt) {
      long b, e;
      slm::split_range(static_cast<long>(n), i, nt, &b, &e);
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (long k = b; k + 4 <= e; k += 4) {
        a0 += buf[static_cast<size_t>(k)];
        a1 += buf[static_cast<size_t>(k + 1)];
        a2 += buf[static_cast<size_t>(k + 2)];
        a3 += buf[static_cast<size_t>(k + 3)];
      }
      sums[static_cast<size_t>(i) * 8] = a0 + a1 + a2 + a3;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(8.0 * static_cast<double>(n) * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

std::vector<slm::IsaLevel> bench_levels() {
  std::vector<slm::IsaLevel> out;
  if (const char* env = std::getenv("SLM_BENCH_LEVELS")) {
    std::string list = env;
    size_t pos = 0;
    while (pos <= list.size()) {
      const size_t end = list.find(',', pos) == std::string::npos ? list.size() : list.find(',', pos);
      auto level = slm::parse_isa_level(std::string_view(list).substr(pos, end - pos));
      if (level.ok() && slm::isa_level_supported(*level)) out.push_back(*level);
      pos = end + 1;
    }
  }
  if (out.empty()) out.push_back(slm::default_isa_level());
  return out;
}

std::string shape_name(Shape s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

void register_all() {
  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(("stream_read/threads:" + std::to_string(threads)).c_str(), bm_stream_read, threads)
        ->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
  const slm::DType types[] = {slm::DType::Q8_0, slm::DType::Q4_0, slm::DType::Q4_K, slm::DType::Q6_K, slm::DType::F16,
                              slm::DType::Q4_1, slm::DType::Q5_0, slm::DType::Q5_1, slm::DType::F32, slm::DType::BF16};
  for (const bool gemm : {false, true}) {
    const int64_t tokens = gemm ? kPrefillTokens : 1;
    const char* kind = gemm ? "gemm512" : "gemv";
    const std::vector<Shape> shapes = gemm ? std::vector<Shape>(std::begin(kGemmShapes), std::end(kGemmShapes))
                                           : std::vector<Shape>(std::begin(kGemvShapes), std::end(kGemvShapes));
    for (Shape s : shapes) {
      for (slm::DType type : types)
        for (slm::IsaLevel level : bench_levels())
          for (const bool x16 : {false, true}) {
            // The interleaved layout (what a model loads Q4_0 / Q8_0 into) where the level has it.
            if (x16 && !slm::kernels::interleave_pays(level, type)) continue;
            for (int threads : {1, 2})
              benchmark::RegisterBenchmark((std::string("slm_") + kind + "/" + slm::dtype_name(type) + (x16 ? "_x16" : "") +
                                            "/" + slm::isa_level_name(level) + "/" + shape_name(s) +
                                            "/threads:" + std::to_string(threads)).c_str(),
                                           bm_slm, type, level, s, tokens, threads, x16)
                  ->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
          }
      for (int threads : {1, 2}) {
        const std::string suffix = shape_name(s) + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark((std::string("eigen_f32_") + kind + "/" + suffix).c_str(), bm_eigen, s, tokens,
                                     threads)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark((std::string("onednn_f32_") + kind + "/" + suffix).c_str(), bm_dnnl, false, s,
                                     tokens, threads)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark((std::string("onednn_int8_") + kind + "/" + suffix).c_str(), bm_dnnl, true, s,
                                     tokens, threads)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("slm_isa_default", slm::isa_level_name(slm::default_isa_level()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
