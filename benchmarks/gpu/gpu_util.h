// CUDA runtime helpers shared by the GPU programs: the "no GPU" probe (SkipError, exit 77), device
// naming with the PCI bus id, error checks and small RAII owners of CUDA objects.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <mpi.h>

namespace ffb::gpu {

// Throws std::runtime_error("<what>: <cudaGetErrorName>: <cudaGetErrorString>") on failure.
void check(cudaError_t err, const std::string& what);

// Number of usable GPUs. Any failure of cudaGetDeviceCount (no driver, "insufficient driver",
// no device) or a count of 0 throws ffb::SkipError("no GPU: ...") with the reason in one line.
int require_gpus();

// Number of GPUs, 0 on any failure (never throws).
int gpu_count_or_zero();

// The device a rank uses: `requested` if >= 0 (must be < count: UsageError otherwise), else
// local_rank modulo count.
int select_device(int requested, int local_rank, int count, const std::string& flag = "--device");

// PCI bus id as the driver prints it ("0000:19:00.0"), lower-cased for sysfs.
std::string pci_bus_id(int device);

// "GPU0 NVIDIA H100 80GB HBM3 [0000:19:00.0]" (the header/`ranks` table form).
std::string describe_device(int device);

// Rank of this process among the ranks that share its host (MPI_COMM_TYPE_SHARED).
int local_rank_of(MPI_Comm comm);

// ---- RAII owners ----

class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(std::size_t bytes);
  ~DeviceMemory();
  DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// Host memory: pinned (cudaHostAlloc) or pageable (page-aligned malloc, touched once).
class HostMemory {
 public:
  HostMemory(std::size_t bytes, bool pinned);
  ~HostMemory();
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;
  void* get() const { return ptr_; }
  bool pinned() const { return pinned_; }

 private:
  void* ptr_ = nullptr;
  bool pinned_ = false;
};

class Stream {
 public:
  explicit Stream(bool non_blocking = true);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s) const;
  void synchronize() const;

 private:
  cudaEvent_t e_ = nullptr;
};

// Milliseconds between two recorded timing events.
float elapsed_ms(const Event& start, const Event& stop);

}  // namespace ffb::gpu
