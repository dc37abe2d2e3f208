// NCCL allreduce through the shared harness: the GPU baseline HFReduce is compared with (R2).
// Same table, validation and HDF5 layout as mpi_allreduce_bench; device buffers; the ncclUniqueId
// travels by MPI_Bcast; NCCL's version and NCCL_ALGO / NCCL_PROTO are stored with the results.
#include <cstdlib>
#include <map>

#include <nccl.h>

#include "device_backend.h"
#include "ffb/mpi_env.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

void check_nccl(ncclResult_t r, const char* what, ncclComm_t comm = nullptr) {
  if (r == ncclSuccess) return;
  std::string detail = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') detail += std::string(" (") + last + ")";
  throw std::runtime_error(fmt::format("{}: {}", what, detail));
}

std::optional<ncclDataType_t> nccl_type(DataType t) {
  switch (t) {
    case DataType::f32:
      return ncclFloat32;
    case DataType::f64:
      return ncclFloat64;
    case DataType::f16:
      return ncclFloat16;
    case DataType::bf16:
      return ncclBfloat16;
    case DataType::i32:
      return ncclInt32;
    case DataType::i64:
      return ncclInt64;
    case DataType::u8:
      return ncclUint8;
    case DataType::i8:
      return ncclInt8;
    case DataType::u32:
      return ncclUint32;
    case DataType::u64:
      return ncclUint64;
    case DataType::f8e4m3:
      return ncclFloat8e4m3;
    case DataType::f8e5m2:
      return ncclFloat8e5m2;
  }
  return std::nullopt;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::prod:
      return ncclProd;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
    case ReduceOp::avg:
      return ncclAvg;
    default:
      return ncclSum;
  }
}

std::string env_or_default(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string("(default)");
}

class NcclBackend final : public ffb::gpu::DeviceBackend {
 public:
  std::string name() const override { return "nccl"; }

  void setup(const ffb::BackendContext& ctx) override {
    select(ctx);
    MPI_Comm_rank(ctx.comm, &rank_);
    MPI_Comm_size(ctx.comm, &nranks_);
    // NCCL refuses two ranks on one GPU: say so before it does, naming the ranks.
    const auto buses =
        ffb::allgather_strings(ctx.comm, ctx.topology->host + " " + ffb::gpu::pci_bus_id(device_));
    std::map<std::string, int> first_rank;
    for (int r = 0; r < nranks_; ++r) {
      const auto [it, fresh] = first_rank.emplace(buses[r], r);
      if (!fresh)
        throw ffb::UsageError(fmt::format(
            "NCCL needs one GPU per rank, but ranks {} and {} share GPU {} on {}: run fewer ranks "
            "per node or give --device",
            it->second, r, buses[r].substr(buses[r].find(' ') + 1),
            buses[r].substr(0, buses[r].find(' '))));
    }
    cudaDeviceProp prop{};
    ffb::gpu::check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    compute_capability_ = prop.major * 10 + prop.minor;
    check_nccl(ncclGetVersion(&version_), "ncclGetVersion");

    ncclUniqueId id{};
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, ctx.comm);
    check_nccl(ncclCommInitRank(&comm_, nranks_, id, rank_), "ncclCommInitRank");
    ffb::gpu::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                    "cudaStreamCreateWithFlags");
    if (rank_ == 0) {
      fmt::print("# NCCL {}.{}.{} (built against {}.{}.{}), NCCL_ALGO={} NCCL_PROTO={}\n",
                 version_ / 10000, (version_ / 100) % 100, version_ % 100, NCCL_MAJOR, NCCL_MINOR,
                 NCCL_PATCH, env_or_default("NCCL_ALGO"), env_or_default("NCCL_PROTO"));
      std::fflush(stdout);
    }
  }

  void teardown() override {
    if (comm_ != nullptr) {
      (void)ncclCommFinalize(comm_);
      (void)ncclCommDestroy(comm_);
      comm_ = nullptr;
    }
    if (stream_ != nullptr) {
      (void)cudaStreamDestroy(stream_);
      stream_ = nullptr;
    }
  }

  // Before setup() the NCCL version and compute capability are still 0: what some NCCL reduces.
  bool may_support(DataType t, ReduceOp) const override { return nccl_type(t).has_value(); }

  bool supports(DataType t, ReduceOp op) const override {
    if (!nccl_type(t)) return false;
    // FP8 reductions: NCCL >= 2.24 on compute capability >= 9.0.
    if ((t == DataType::f8e4m3 || t == DataType::f8e5m2) &&
        (version_ < 22400 || compute_capability_ < 90))
      return false;
    // ncclAvg on floating types multiplies every input by 1/n before summing; the suite's avg is
    // the sum divided once, so they agree exactly only when 1/n is exact (n a power of two).
    if (op == ReduceOp::avg && ffb::is_floating(t) && (nranks_ & (nranks_ - 1)) != 0) return false;
    return true;
  }

  void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) override {
    check_nccl(ncclAllReduce(send, recv, count, *nccl_type(t), nccl_op(op), comm_, stream_),
               "ncclAllReduce", comm_);
    ffb::gpu::check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  void describe(ffb::RunRecord& run) const override {
    run.attrs["nccl_version"] =
        fmt::format("{}.{}.{}", version_ / 10000, (version_ / 100) % 100, version_ % 100);
    run.attrs["nccl_version_compiled"] =
        fmt::format("{}.{}.{}", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
    run.attrs["nccl_algo"] = env_or_default("NCCL_ALGO");
    run.attrs["nccl_proto"] = env_or_default("NCCL_PROTO");
    run.attrs["gpu_compute_capability"] = static_cast<std::int64_t>(compute_capability_);
    run.attrs["memory_space"] = std::string("device");
  }

 private:
  int rank_ = 0, nranks_ = 1;
  int version_ = 0;
  int compute_capability_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "nccl_allreduce_bench", std::make_unique<NcclBackend>());
}
