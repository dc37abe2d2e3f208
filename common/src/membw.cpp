#include "ffb/membw.h"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <memory>
#include <thread>

namespace ffb {

const char* name_of(StreamKernel k) { return k == StreamKernel::copy ? "copy" : "add"; }

namespace {

struct Arrays {
  std::unique_ptr<float[]> a, b, c;
  std::size_t n = 0;
};

void run_kernel(StreamKernel k, Arrays& x) {
  float* __restrict c = x.c.get();
  const float* __restrict a = x.a.get();
  const float* __restrict b = x.b.get();
  if (k == StreamKernel::copy) {
    for (std::size_t i = 0; i < x.n; ++i) c[i] = a[i];
  } else {
    for (std::size_t i = 0; i < x.n; ++i) c[i] = a[i] + b[i];
  }
}

}  // namespace

MembwResult measure_membw(StreamKernel kernel, int threads, std::size_t bytes_per_array,
                          int repetitions) {
  threads = std::max(1, threads);
  repetitions = std::max(1, repetitions);
  std::vector<Arrays> arrays(static_cast<std::size_t>(threads));
  std::vector<double> seconds(static_cast<std::size_t>(repetitions), 0.0);
  std::barrier sync(threads);
  auto body = [&](int t) {
    auto& x = arrays[static_cast<std::size_t>(t)];
    x.n = bytes_per_array / sizeof(float);
    x.a = std::make_unique<float[]>(x.n);  // first touch by the thread that uses the arrays
    x.b = std::make_unique<float[]>(x.n);
    x.c = std::make_unique<float[]>(x.n);
    for (std::size_t i = 0; i < x.n; ++i) {
      x.a[i] = 1.0f;
      x.b[i] = 2.0f;
      x.c[i] = 0.0f;
    }
    run_kernel(kernel, x);  // warm-up
    for (int r = 0; r < repetitions; ++r) {
      sync.arrive_and_wait();
      const auto t0 = std::chrono::steady_clock::now();
      run_kernel(kernel, x);
      sync.arrive_and_wait();  // the repetition ends when the slowest thread does
      if (t == 0)
        seconds[static_cast<std::size_t>(r)] =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
  const double moved =
      static_cast<double>(bytes_per_array) * threads * (kernel == StreamKernel::copy ? 2.0 : 3.0);
  MembwResult r{kernel, threads, 0, 0};
  double sum = 0;
  for (double s : seconds) {
    r.gbps = std::max(r.gbps, moved / s / 1e9);
    sum += moved / s / 1e9;
  }
  r.gbps_mean = sum / static_cast<double>(seconds.size());
  return r;
}

}  // namespace ffb
