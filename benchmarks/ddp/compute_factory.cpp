// Builds without CUDA: the GPU engine and the NCCL backend are absent, and asking for them skips
// (exit 77) with one line, as on a machine without a GPU.
#include "allreduce.h"
#include "compute.h"
#include "ffb/error.h"

namespace ffb::ddp {

bool built_with_cuda() { return false; }
bool built_with_nccl() { return false; }
int gpu_count_or_zero() { return 0; }

std::unique_ptr<ComputeEngine> make_gpu_compute(int, int) {
  throw SkipError(
      "--compute cublas: this ddp_bench was built without CUDA (no GPU compute engine)");
}

std::unique_ptr<GradientAllreduce> make_nccl() {
  throw SkipError("--backend nccl: this ddp_bench was built without CUDA/NCCL");
}

}  // namespace ffb::ddp
