#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include <fmt/format.h>

#include "compute.h"

namespace ffb::ddp {

const char* name_of(Optimizer o) {
  switch (o) {
    case Optimizer::none:
      return "none";
    case Optimizer::sgd:
      return "sgd";
    case Optimizer::adam:
      return "adam";
  }
  return "?";
}

double optimizer_bytes_per_param(Optimizer o) {
  switch (o) {
    case Optimizer::none:
      return 0.0;
    case Optimizer::sgd:
      return 12.0;
    case Optimizer::adam:
      return 28.0;
  }
  return 0.0;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string EmulatedCompute::describe() const {
  return fmt::format(
      "EMULATED (no GPU): each layer sleeps FLOPs x batch / ({:g} TFLOPS x {:g}); sleep-based, "
      "not spinning, so the CPU cores stay free for the host reduce",
      cfg_.tflops, cfg_.efficiency);
}

void EmulatedCompute::prepare(const Model& model, const ComputeConfig& cfg) {
  model_ = &model;
  cfg_ = cfg;
  params_ = model.total_params();
}

void* EmulatedCompute::allocate(std::size_t bytes) {
  const std::size_t align = 4096;
  const std::size_t n = (std::max<std::size_t>(bytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, n);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, n);  // touch every page now, not inside a timed step
  return p;
}

void EmulatedCompute::deallocate(void* p) { std::free(p); }

void EmulatedCompute::upload(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}
void EmulatedCompute::download(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void EmulatedCompute::begin_step() { deadline_ = now_s(); }

void EmulatedCompute::advance(double seconds, const Idle& idle) {
  deadline_ += seconds;
  if (!idle) {
    const double left = deadline_ - now_s();
    if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
    return;
  }
  const double slice = std::max(cfg_.progress_us, 1.0) * 1e-6;
  for (;;) {
    idle();
    const double left = deadline_ - now_s();
    if (left <= 0) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left, slice)));
  }
}

void EmulatedCompute::forward(std::size_t layer, const Idle& idle) {
  const double rate = cfg_.tflops * 1e12 * cfg_.efficiency;
  advance(model_->layers[layer].fwd_flops * cfg_.batch / rate, idle);
}

void EmulatedCompute::backward(std::size_t layer, const Idle& idle) {
  const double rate = cfg_.tflops * 1e12 * cfg_.efficiency;
  advance(model_->layers[layer].bwd_flops * cfg_.batch / rate, idle);
}

double EmulatedCompute::end_backward(const Idle& /*idle*/) { return now_s(); }

void EmulatedCompute::optimizer(const Idle& idle) {
  if (cfg_.optimizer == Optimizer::none) return;
  deadline_ = std::max(deadline_, now_s());  // the update waits for the last allreduce
  advance(static_cast<double>(params_) * optimizer_bytes_per_param(cfg_.optimizer) /
              (cfg_.device_membw_gbs * 1e9),
          idle);
}

double EmulatedCompute::nominal_step_compute_s() const {
  const double rate = cfg_.tflops * 1e12 * cfg_.efficiency;
  return (model_->fwd_flops_per_sample() + model_->bwd_flops_per_sample()) * cfg_.batch / rate;
}

}  // namespace ffb::ddp
