// CUDA runtime helpers of libhfreduce's GPU pieces (the copy stage, stream completion, NVLink
// pairs): errors as hfreduce::Error naming the call and the GPU, and RAII owners of the device
// scope, events, streams and device memory. Internal; built only with the CUDA toolkit.
#pragma once

#include <cstddef>
#include <string>

#include <cuda_runtime.h>

#include "hfreduce/error.h"

namespace hfreduce::cuda {

inline std::string error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

[[noreturn]] inline void fail(cudaError_t err, const std::string& what, int device) {
  (void)cudaGetLastError();  // clear non-sticky errors
  throw Error(Status::system_error,
              "hfreduce: " + what + " on GPU " + std::to_string(device) + ": " + error_text(err));
}

inline void check(cudaError_t err, const char* what, int device) {
  if (err != cudaSuccess) fail(err, what, device);
}

// Makes `device` current on this thread and restores the previous device on destruction, so the
// library never changes the caller's current device behind its back.
class DeviceScope {
 public:
  explicit DeviceScope(int device) : device_(device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice", device);
  }
  ~DeviceScope() {
    if (previous_ >= 0 && previous_ != device_) (void)cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int device_ = -1;
  int previous_ = -1;
};

class EventHandle {
 public:
  explicit EventHandle(int device) {
    check(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming), "cudaEventCreateWithFlags",
          device);
  }
  ~EventHandle() {
    if (e_ != nullptr) (void)cudaEventDestroy(e_);
  }
  EventHandle(const EventHandle&) = delete;
  EventHandle& operator=(const EventHandle&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

class StreamHandle {
 public:
  explicit StreamHandle(int device) {
    check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags",
          device);
  }
  ~StreamHandle() {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
  }
  StreamHandle(const StreamHandle&) = delete;
  StreamHandle& operator=(const StreamHandle&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// cudaMalloc'd memory of the current device.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, int device) : bytes_(bytes) {
    const cudaError_t err = cudaMalloc(&p_, bytes);
    if (err != cudaSuccess) fail(err, "cudaMalloc(" + std::to_string(bytes) + " B)", device);
  }
  ~DeviceBuffer() {
    if (p_ != nullptr) (void)cudaFree(p_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) {
    o.p_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (p_ != nullptr) (void)cudaFree(p_);
      p_ = o.p_;
      bytes_ = o.bytes_;
      o.p_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  void* get() const { return p_; }
  std::size_t size() const { return bytes_; }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace hfreduce::cuda
