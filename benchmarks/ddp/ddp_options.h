// ddp_bench's options: the flags (CLI11), their checks, and what they decide before any MPI
// communication, topology or device is involved (ffb::Program::validate(), so --check-args runs
// every one of them). Bounds: docs/ddp_bench.md, "Bounds".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "allreduce.h"
#include "compute.h"
#include "ffb/numeric.h"
#include "model.h"

namespace ffb::ddp {

// The flags as given.
struct Cli {
  std::string model = "vgg16";
  std::string backends = "hfreduce,mpi,none";
  std::string compute = "auto";
  double tflops = 107.0;
  double efficiency = 1.0;
  int batch = 0;
  double scale = 1.0;
  std::string max_params;
  double compute_scale = 1.0;
  std::string bucket_size = "25M";
  std::string first_bucket_size = "1M";
  bool no_scale_buckets = false;
  std::string dtype = "float";
  int steps = 10;
  int warmup = 2;
  int comm_steps = 3;
  std::string optimizer = "none";
  std::string gemm = "tf32";
  double device_membw = 1555.0;
  bool no_check = false;
  bool check_every_step = false;
  double progress_us = 100.0;
  int ranks_per_node = 0;
  std::string chunk_size = "1M";
  int depth = 4;
  int threads = 1;
  std::string fallback_bytes = "16K";
  double hf_timeout = 300.0;
  std::string stream_completion = "host_func";  // HFReduce on device buffers
  std::string nvlink_pairs = "off";
  std::string baseline;
  bool print_buckets = false;
  bool trace = false;
  int device = -1;
  std::string output, label;
  int inject_corrupt_rank = -1;
};

void add_options(CLI::App& app, Cli& o);

// What the options decide before MPI communication, topology or devices are involved.
struct Settings {
  ffb::DataType dtype = ffb::DataType::f32;
  Optimizer opt_kind = Optimizer::none;
  std::uint64_t bucket_cap = 0, first_bucket_cap = 0;
  std::map<std::string, double> baseline;
  std::vector<std::string> backend_names;
  HfreduceSettings hs;
  Model full;
  double scale = 1.0;
  int batch = 1;
};

// Every check that needs no MPI communication, topology or device: throws UsageError naming the
// flag (or the model file's key), the value and the fix.
Settings check_options(const Cli& o);

// What the settings plan: the (scaled) model, its gradient buckets and their sizes.
struct Plan {
  Model model;
  std::vector<Bucket> buckets;
  std::size_t esize = 4;           // bytes per gradient element
  double cap_scale = 1.0;          // the bucket caps' factor (the parameter scale, or 1)
  std::uint64_t bucket_bytes = 0;  // the caps after cap_scale
  std::uint64_t first_bucket_bytes = 0;
  std::uint64_t params = 0;
  double grad_bytes = 0;
};

Plan plan_run(const Cli& o, const Settings& st);

}  // namespace ffb::ddp
