// Kernels of ddp_bench's GPU engine (ddp_kernels.cu); host-compiler friendly declarations.
#pragma once

#include <cstddef>

namespace ffb::ddp::kernels {

// Small pseudo-random values (|x| <= 0.125) into n elements of fp32 or bf16, on `stream`.
void fill(void* p, std::size_t n, bool bf16, void* stream);
// kind 1: sgd (w -= lr g), 2: adam; grad_type 0: fp32, 1: bf16, 2: fp16. Enqueued on `stream`.
void optimizer_step(int kind, int grad_type, float* w, float* m, float* v, const void* g,
                    std::size_t n, float lr, void* stream);

}  // namespace ffb::ddp::kernels
