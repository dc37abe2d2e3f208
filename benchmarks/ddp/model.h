// Model descriptions for ddp_bench (configs/models/*.yaml, format in docs/ddp_bench.md) and the
// gradient bucket plan PyTorch DDP would build for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace ffb::ddp {

// One matrix product of a layer's forward pass, per sample: (m x k) . (k x n), `count` times
// (attention heads). The GPU compute engine sizes its cuBLAS calls from it; FLOPs = 2 m n k count.
struct GemmShape {
  std::uint64_t m = 0, n = 0, k = 0, count = 1;
  double flops() const { return 2.0 * double(m) * double(n) * double(k) * double(count); }
};

struct Layer {
  std::string name;
  std::uint64_t params = 0;      // trainable parameters (their gradients are allreduced)
  double fwd_flops = 0;          // per sample
  double bwd_flops = 0;          // per sample (default 2 x fwd: input and weight gradients)
  std::vector<GemmShape> gemms;  // optional; empty: the layer has no matrix product
};

using Scalar = std::variant<std::int64_t, double, std::string>;

struct Model {
  std::string name;  // e.g. "vgg16" (what results and the reference file match on)
  std::string description;
  std::string source;                        // file it came from
  int batch_per_gpu = 1;                     // samples per rank per step (the paper's condition)
  std::map<std::string, Scalar> conditions;  // recorded as run attrs (image_size, context, ...)
  std::vector<Layer> layers;                 // forward order

  std::uint64_t total_params() const;
  double fwd_flops_per_sample() const;
  double bwd_flops_per_sample() const;
};

// Bounds of a model file (docs/ddp_bench.md, "Model files"): every number is finite and within
// them, else the file is refused with its key named. They keep a typo from running for ever,
// overflowing the emulated clock or allocating without end; real models sit far inside them
// (LLaMA-13B: 283 layers, 1.3e10 parameters, 6.7e11 FLOPs in its largest layer).
inline constexpr std::uint64_t kMaxBatchPerGpu = 1000000;            // batch_per_gpu: 1 to 1e6
inline constexpr std::uint64_t kMaxLayers = 100000;                  // layers after repeat blocks
inline constexpr std::uint64_t kMaxLayerParams = 1000000000000ull;   // params: 0 to 1e12
inline constexpr std::uint64_t kMaxModelParams = 10000000000000ull;  // whole model: 1e13
inline constexpr double kMaxLayerFlops = 1e16;  // fwd_flops per sample per layer (bwd: 2e16)
inline constexpr double kMaxModelFlops = 1e18;  // forward + backward per sample, whole model
inline constexpr std::uint64_t kMaxGemmDim = 1ull << 24;      // gemm m, n, k: 1 to 16777216
inline constexpr std::uint64_t kMaxGemmCount = 65536;         // gemm count: 1 to 65536
inline constexpr std::uint64_t kMaxGemmWeights = 1ull << 31;  // gemm k x n

// Reads and validates a model file. Errors: UsageError naming the file, the key and what was
// expected. `name_or_path`: a path, or a bare name looked up as configs/models/<name>.yaml under
// $FFB_ROOT, the current directory, then the source tree the binary was built from.
Model load_model(const std::string& name_or_path);
Model parse_model(const std::string& yaml_text, const std::string& where);
std::string resolve_model_path(const std::string& name_or_path);

// Keeps every layer but multiplies its parameter count by `param_scale` (rounded up, at least 1
// for layers that had parameters) and its FLOPs by `compute_scale`.
Model scaled(const Model& m, double param_scale, double compute_scale);

// A gradient bucket: layers [first_layer, last_layer] (forward indices, first <= last); its
// gradients are ready once the backward pass of first_layer has run (backward goes last -> first).
struct Bucket {
  int index = 0;  // in the order the buckets fill (0 holds the model's last layers)
  int first_layer = 0;
  int last_layer = 0;
  std::uint64_t params = 0;
  std::uint64_t offset = 0;  // element offset in the flat gradient buffer (bucket 0 first)
};

// PyTorch DDP's assignment (torch.distributed._compute_bucket_assignment_by_size): layers in
// reverse order are appended to the open bucket, which closes once it holds >= its limit (so a
// layer larger than the limit gets a bucket of its own); the first bucket's limit is
// `first_bucket_bytes` (PyTorch: 1 MiB) when non-zero, the others `bucket_bytes` (25 MiB).
// Layers without parameters join whatever bucket is open. A layer is never split.
std::vector<Bucket> plan_buckets(const Model& m, std::size_t elem_bytes, std::uint64_t bucket_bytes,
                                 std::uint64_t first_bucket_bytes);

// For each layer, the bucket whose allreduce can start right after the layer's backward pass
// (-1 when none: the bucket is not yet complete).
std::vector<int> bucket_ready_after(const Model& m, const std::vector<Bucket>& buckets);

}  // namespace ffb::ddp
