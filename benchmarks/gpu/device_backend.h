// A CollectiveBackend base for device buffers: cudaMalloc'd send/recv buffers, cudaMemcpy up and
// down, one GPU per rank (local rank -> device unless --device), "no GPU" -> SkipError (exit 77).
#pragma once

#include <string>

#include <fmt/format.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "gpu_util.h"

namespace ffb::gpu {

class DeviceBackend : public CollectiveBackend {
 public:
  MemorySpace memory_space() const override { return MemorySpace::device; }

  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    check(cudaSetDevice(device_), "cudaSetDevice");
    check(cudaMalloc(&p, std::max<std::size_t>(bytes, 256)),
          fmt::format("cudaMalloc({} B) on GPU {}", bytes, device_));
    return p;
  }
  void deallocate(void* p, std::size_t /*bytes*/) override {
    if (p != nullptr) (void)cudaFree(p);
  }
  // cudaMemcpy from pageable memory may return before the DMA has landed, and backends run on
  // non-blocking streams that do not wait for the legacy stream: synchronise the device on both
  // sides of every transfer (outside the timed region).
  void upload(void* dst, const void* host_src, std::size_t bytes) override {
    if (bytes == 0) return;
    check(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize after an upload");
  }
  void download(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes == 0) return;
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize before a download");
    check(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }

  std::string device_description() const override { return describe_device(device_); }

  void add_options(CLI::App& app) override {
    app.add_option("--device", requested_device_,
                   "GPU of this rank (-1: local rank modulo the GPUs of the node)")
        ->capture_default_str();
  }

 protected:
  // Call first in setup(): throws SkipError without a GPU, picks and sets this rank's device.
  void select(const BackendContext& ctx) {
    const int count = require_gpus();
    device_ = select_device(requested_device_, local_rank_of(ctx.comm), count);
    check(cudaSetDevice(device_), "cudaSetDevice");
  }

  int requested_device_ = -1;
  int device_ = 0;
};

}  // namespace ffb::gpu
