// slm-quantize's engine: the per-tensor type recipe and the streaming GGUF rewrite.
#include "convert/quantize.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <vector>

namespace slm::convert {

// ============================================================================================
// Targets
// ============================================================================================

namespace {

// llama.cpp's LLAMA_FTYPE values (llama.h), written as general.file_type.
constexpr uint32_t kFtypeF32 = 0, kFtypeF16 = 1, kFtypeQ4_0 = 2, kFtypeQ4_1 = 3, kFtypeQ8_0 = 7,
                   kFtypeQ5_0 = 8, kFtypeQ5_1 = 9, kFtypeQ4_K_S = 14, kFtypeQ4_K_M = 15, kFtypeQ5_K_M = 17,
                   kFtypeQ6_K = 18, kFtypeBF16 = 32;

struct TargetDef {
  const char* name;
  DType base;
  Mix mix;
  uint32_t ftype;
};
constexpr TargetDef kTargets[] = {
    {"F32", DType::F32, Mix::None, kFtypeF32},
    {"F16", DType::F16, Mix::None, kFtypeF16},
    {"BF16", DType::BF16, Mix::None, kFtypeBF16},
    {"Q8_0", DType::Q8_0, Mix::None, kFtypeQ8_0},
    {"Q4_0", DType::Q4_0, Mix::None, kFtypeQ4_0},
    {"Q4_1", DType::Q4_1, Mix::None, kFtypeQ4_1},
    {"Q5_0", DType::Q5_0, Mix::None, kFtypeQ5_0},
    {"Q5_1", DType::Q5_1, Mix::None, kFtypeQ5_1},
    {"Q6_K", DType::Q6_K, Mix::None, kFtypeQ6_K},
    {"Q4_K_S", DType::Q4_K, Mix::Q4_K_S, kFtypeQ4_K_S},
    {"Q4_K_M", DType::Q4_K, Mix::Q4_K_M, kFtypeQ4_K_M},
    {"Q5_K_M", DType::Q5_K, Mix::Q5_K_M, kFtypeQ5_K_M},
    // llama-quantize's aliases.
    {"Q4_K", DType::Q4_K, Mix::Q4_K_M, kFtypeQ4_K_M},
    {"Q5_K", DType::Q5_K, Mix::Q5_K_M, kFtypeQ5_K_M},
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// Layer index of "blk.N.*", or -1.
int layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int v = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) {
    v = v * 10 + (name[i] - '0');
    if (v > 1000000) return -1;
  }
  return i < name.size() && name[i] == '.' ? v : -1;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int i_layer, int n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

bool row_fits(DType t, int64_t n) { return n % traits(t).block_elems == 0; }

}  // namespace

Expected<Target> parse_target(std::string_view name) {
  for (const TargetDef& d : kTargets) {
    if (iequals(name, d.name)) return Target{d.name, d.base, d.mix, d.ftype};
  }
  std::string all;
  for (const std::string& n : target_names()) all += (all.empty() ? "" : " ") + n;
  return errorf("unknown quantization type '%.*s' (known: %s)", static_cast<int>(name.size()), name.data(),
                all.c_str());
}

std::vector<std::string> target_names() {
  std::vector<std::string> out;
  for (const TargetDef& d : kTargets) out.emplace_back(d.name);
  return out;
}

Expected<ModelFacts> model_facts(const gguf::File& file) {
  ModelFacts f;
  auto arch = file.get_string("general.architecture");
  if (!arch) return arch.error();
  const std::string a(*arch);
  auto n_layer = file.get_uint_or(a + ".block_count", 0);
  if (!n_layer) return n_layer.error();
  auto n_expert = file.get_uint_or(a + ".expert_count", 0);
  if (!n_expert) return n_expert.error();
  if (*n_layer > 100000 || *n_expert > 100000) return errorf("%s.block_count / expert_count out of range", a.c_str());
  f.n_layer = static_cast<int64_t>(*n_layer);
  f.n_expert = static_cast<int64_t>(*n_expert);
  f.has_output = file.find_tensor("output.weight") != nullptr;
  f.is_70b = a == "llama" && f.n_layer == 80;
  return f;
}

// ============================================================================================
// The recipe
// ============================================================================================

bool is_quantizable(const TensorDesc& t) {
  const std::string_view n = t.name;
  if (n.size() < 6 || n.substr(n.size() - 6) != "weight") return false;
  if (t.n_dims < 2) return false;
  if (contains(n, "_norm.weight")) return false;
  if (contains(n, "ffn_gate_inp.weight")) return false;  // MoE router: kept exact
  if (n == "position_embd.weight" || n == "token_types.weight") return false;
  if (contains(n, "attn_rel_b.weight") || contains(n, "ssm_conv1d.weight")) return false;
  return true;
}

DType tensor_type(const Target& target, const ModelFacts& facts, const TensorDesc& t, bool pure,
                  RecipeState& state, bool* fallback) {
  *fallback = false;
  DType type = target.base;
  const bool quantized_base = traits(target.base).block_elems > 1;
  const std::string_view name = t.name;
  const int64_t nx = t.ne[0];
  const Mix mix = target.mix;
  if (!pure && quantized_base) {
    const int layer = layer_of(name);
    if (name == "output.weight" || (!facts.has_output && name == "token_embd.weight")) {
      // The LM head: Q6_K for every quantized type but Q8_0 (Q8_0 when the rows do not fit).
      if (!row_fits(type, nx)) {
        type = DType::Q8_0;
      } else if (type != DType::Q8_0) {
        type = DType::Q6_K;
      }
    } else if (name == "token_embd.weight") {
      // base type
    } else if (contains(name, "attn_v.weight")) {
      const int i = layer >= 0 ? layer : state.i_attention_wv;
      if ((mix == Mix::Q4_K_M || mix == Mix::Q5_K_M) && use_more_bits(i, state.n_attention_wv)) {
        type = DType::Q6_K;
      } else if (mix == Mix::Q4_K_S && i < 4) {
        type = DType::Q5_K;
      }
      if (facts.is_70b && type == DType::Q4_K) type = DType::Q5_K;
      if (facts.n_expert == 8) type = DType::Q8_0;
      ++state.i_attention_wv;
    } else if (contains(name, "attn_k.weight")) {
      if (facts.n_expert == 8) type = DType::Q8_0;
    } else if (contains(name, "ffn_down")) {
      const int i = layer >= 0 ? layer : state.i_ffn_down;
      const int n = static_cast<int>(facts.n_layer);
      if ((mix == Mix::Q4_K_M || mix == Mix::Q5_K_M) && use_more_bits(i, n)) {
        type = DType::Q6_K;
      } else if (mix == Mix::Q4_K_S && i < n / 8) {
        type = DType::Q5_K;
      }
      ++state.i_ffn_down;
    } else if (contains(name, "attn_output.weight")) {
      if (facts.n_expert == 8 && (mix == Mix::Q4_K_S || mix == Mix::Q4_K_M)) type = DType::Q5_K;
    } else if (contains(name, "attn_qkv.weight")) {
      if (mix == Mix::Q4_K_M) type = DType::Q5_K;
      if (mix == Mix::Q5_K_M) type = DType::Q6_K;
    }
  }
  if (!row_fits(type, nx)) {
    // llama.cpp's fallbacks for rows that are not a whole number of blocks.
    switch (type) {
      case DType::Q4_K: type = DType::Q5_0; break;
      case DType::Q5_K: type = DType::Q5_1; break;
      case DType::Q6_K: type = DType::Q8_0; break;
      default: type = DType::F16; break;
    }
    if (!row_fits(type, nx)) type = DType::F16;
    *fallback = true;
    ++state.n_fallback;
  }
  return type;
}

// ============================================================================================
// Row conversion
// ============================================================================================

Status convert_rows(DType from, const uint8_t* src, DType to, uint8_t* dst, int64_t rows, int64_t n_per_row,
                    ThreadPool* pool) {
  const TypeTraits& tf = traits(from);
  const TypeTraits& tt = traits(to);
  if (tf.to_float == nullptr) return errorf("no dequantizer for type %s", tf.name);
  if (tt.from_float == nullptr) return errorf("no quantizer for type %s", tt.name);
  auto in_row = row_bytes(from, n_per_row);
  if (!in_row) return in_row.error();
  auto out_row = row_bytes(to, n_per_row);
  if (!out_row) return out_row.error();
  const size_t ib = *in_row, ob = *out_row;
  auto work = [&](int part, int n_parts) {
    long begin = 0, end = 0;
    split_range(static_cast<long>(rows), part, n_parts, &begin, &end);
    std::vector<float> buf(static_cast<size_t>(n_per_row));
    for (long r = begin; r < end; ++r) {
      tf.to_float(src + static_cast<size_t>(r) * ib, buf.data(), n_per_row);
      tt.from_float(buf.data(), dst + static_cast<size_t>(r) * ob, n_per_row);
    }
  };
  if (pool == nullptr || pool->size() <= 1 || rows < 2) {
    work(0, 1);
  } else {
    pool->run(work);
  }
  return Status::success();
}

// ============================================================================================
// The file rewrite
// ============================================================================================

Status quantize_file(const gguf::File& in, const std::string& out_path, const QuantizeOptions& options,
                     QuantizeReport* report) {
  const Target& target = options.target;
  auto facts_or = model_facts(in);
  if (!facts_or) return facts_or.error();
  const ModelFacts facts = *facts_or;
  if (target.mix != Mix::None && facts.n_layer <= 0 && !options.pure) {
    return errorf("%s needs the model's block_count to choose per-layer types", target.name.c_str());
  }
  std::unique_ptr<ThreadPool> pool;
  if (options.n_threads > 1) {
    auto p = ThreadPool::create(options.n_threads);
    if (!p) return p.error();
    pool = std::move(*p);
  }

  gguf::Writer w;
  w.set_alignment(in.alignment());
  bool wrote_ftype = false, wrote_qv = false;
  for (const gguf::KeyValue& kv : in.metadata()) {
    if (kv.key == "general.alignment" || kv.key.substr(0, 6) == "split.") continue;
    if (kv.key == "general.file_type") {
      w.add_uint32("general.file_type", target.ftype);
      wrote_ftype = true;
    } else if (kv.key == "general.quantization_version") {
      w.add_uint32("general.quantization_version", 2);
      wrote_qv = true;
    } else {
      w.add_value(kv.key, kv.value);
    }
  }
  if (!wrote_qv) w.add_uint32("general.quantization_version", 2);  // GGML_QNT_VERSION
  if (!wrote_ftype) w.add_uint32("general.file_type", target.ftype);

  RecipeState state;
  for (const gguf::TensorInfo& t : in.tensors()) {
    if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight") ||
        contains(t.name, "attn_kv_b.weight")) {
      ++state.n_attention_wv;
    }
  }
  QuantizeReport rep;
  rep.file_bytes_in = in.size();
  const size_t n_tensors = in.tensors().size();
  // Shared by the producers, which run one after another inside write_file.
  struct Progress {
    size_t done = 0;
    uint64_t bytes_in = 0, bytes_out = 0;
  };
  auto progress = std::make_shared<Progress>();
  for (const gguf::TensorInfo& t : in.tensors()) {
    TensorDesc d{t.name, t.n_dims, t.ne, t.type};
    DType to = t.type;
    bool fallback = false;
    if (is_quantizable(d)) {
      to = tensor_type(target, facts, d, options.pure, state, &fallback);
    }
    if (fallback && options.warn) {
      options.warn("tensor " + std::string(t.name) + ": row length " + std::to_string(t.ne[0]) +
                   " is not a multiple of " + std::to_string(traits(target.base).block_elems) +
                   ", using fallback type " + dtype_name(to));
    }
    TensorReport tr;
    tr.name = std::string(t.name);
    tr.from = t.type;
    tr.to = to;
    tr.fallback = fallback;
    tr.n_elements = t.n_elements;
    tr.bytes_in = t.n_bytes;
    auto rb = row_bytes(to, t.ne[0]);
    if (!rb) return errorf("tensor '%s': %s", tr.name.c_str(), rb.error().message.c_str());
    tr.bytes_out = *rb * static_cast<uint64_t>(t.rows());
    if (to != t.type) {
      if (traits(t.type).to_float == nullptr) {
        return errorf("tensor '%s': cannot convert from %s (no dequantizer)", tr.name.c_str(), dtype_name(t.type));
      }
      if (traits(t.type).block_elems > 1 && options.warn) {
        options.warn("tensor " + tr.name + " is already " + dtype_name(t.type) + ": requantizing to " +
                     dtype_name(to) + " loses more accuracy than quantizing the original weights");
      }
    }
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    const gguf::TensorInfo* src = &t;
    ThreadPool* pp = pool.get();
    const std::function<void(size_t, size_t, uint64_t, uint64_t)>* cb = &options.progress;
    const uint64_t bin = tr.bytes_in, bout = tr.bytes_out;
    SLM_TRY(w.add_tensor(t.name, to, shape, [src, to, pp, cb, progress, n_tensors, bin, bout](std::span<uint8_t> out) -> Status {
      if (to == src->type) {
        std::memcpy(out.data(), src->data, out.size());
      } else {
        Status st = convert_rows(src->type, src->data, to, out.data(), src->rows(), src->ne[0], pp);
        if (!st) return errorf("tensor '%.*s': %s", static_cast<int>(src->name.size()), src->name.data(),
                               st.message().c_str());
      }
      progress->done++;
      progress->bytes_in += bin;
      progress->bytes_out += bout;
      if (*cb) (*cb)(progress->done, n_tensors, progress->bytes_in, progress->bytes_out);
      return Status::success();
    }));
    rep.bytes_in += tr.bytes_in;
    rep.bytes_out += tr.bytes_out;
    rep.n_elements += tr.n_elements;
    rep.tensors.push_back(std::move(tr));
  }
  rep.n_fallback = state.n_fallback;
  SLM_TRY(w.write_file(out_path));
  struct stat st {};
  if (::stat(out_path.c_str(), &st) == 0) rep.file_bytes_out = static_cast<uint64_t>(st.st_size);
  if (report) *report = std::move(rep);
  return Status::success();
}

}  // namespace slm::convert
