#include "gpu_util.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "ffb/error.h"

namespace ffb::gpu {

void check(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  throw std::runtime_error(
      fmt::format("{}: {}: {}", what, cudaGetErrorName(err), cudaGetErrorString(err)));
}

int require_gpus() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw SkipError(fmt::format("no GPU: cudaGetDeviceCount failed with error {} ({})",
                                static_cast<int>(err), cudaGetErrorString(err)));
  }
  if (n <= 0) throw SkipError("no GPU: cudaGetDeviceCount reports 0 devices");
  return n;
}

int gpu_count_or_zero() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return std::max(n, 0);
}

int select_device(int requested, int local_rank, int count, const std::string& flag) {
  if (count <= 0) throw SkipError("no GPU");
  if (requested >= 0) {
    if (requested >= count)
      throw UsageError(fmt::format("{} {}: this machine has {} GPU{} (0..{})", flag, requested,
                                   count, count == 1 ? "" : "s", count - 1));
    return requested;
  }
  return local_rank % count;
}

std::string pci_bus_id(int device) {
  char buf[64] = {};
  check(cudaDeviceGetPCIBusId(buf, sizeof(buf), device), "cudaDeviceGetPCIBusId");
  std::string s(buf);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string describe_device(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return fmt::format("GPU{} {} [{}]", device, prop.name, pci_bus_id(device));
}

int local_rank_of(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  return local;
}

DeviceMemory::DeviceMemory(std::size_t bytes) : bytes_(bytes) {
  check(cudaMalloc(&ptr_, std::max<std::size_t>(bytes, 256)),
        fmt::format("cudaMalloc({} B)", bytes));
}
DeviceMemory::~DeviceMemory() {
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
}
DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

HostMemory::HostMemory(std::size_t bytes, bool pinned) : pinned_(pinned) {
  bytes = std::max<std::size_t>(bytes, 4096);
  if (pinned) {
    check(cudaHostAlloc(&ptr_, bytes, cudaHostAllocPortable),
          fmt::format("cudaHostAlloc({} B)", bytes));
  } else {
    ptr_ = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (ptr_ == nullptr) throw std::runtime_error(fmt::format("cannot allocate {} B", bytes));
  }
  std::memset(ptr_, 0x3c, bytes);  // fault every page in before anything is timed
}
HostMemory::~HostMemory() {
  if (ptr_ == nullptr) return;
  if (pinned_)
    (void)cudaFreeHost(ptr_);
  else
    std::free(ptr_);
}

Stream::Stream(bool non_blocking) {
  check(cudaStreamCreateWithFlags(&s_, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault),
        "cudaStreamCreateWithFlags");
}
Stream::~Stream() {
  if (s_ != nullptr) (void)cudaStreamDestroy(s_);
}
void Stream::synchronize() const { check(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

Event::Event(bool timing) {
  check(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming),
        "cudaEventCreateWithFlags");
}
Event::~Event() {
  if (e_ != nullptr) (void)cudaEventDestroy(e_);
}
void Event::record(cudaStream_t s) const { check(cudaEventRecord(e_, s), "cudaEventRecord"); }
void Event::synchronize() const { check(cudaEventSynchronize(e_), "cudaEventSynchronize"); }

float elapsed_ms(const Event& start, const Event& stop) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start.get(), stop.get()), "cudaEventElapsedTime");
  return ms;
}

}  // namespace ffb::gpu
