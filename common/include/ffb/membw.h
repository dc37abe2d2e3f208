// STREAM-like host memory bandwidth probe: the ceiling HFReduce's host stages are judged against.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ffb {

enum class StreamKernel { copy, add };  // copy: c = a (2 x S moved), add: c = a + b (3 x S moved)
const char* name_of(StreamKernel k);

struct MembwResult {
  StreamKernel kernel;
  int threads = 1;
  double gbps = 0;       // best of the repetitions, GB = 1e9 B, STREAM byte counting
  double gbps_mean = 0;  // mean of the repetitions
};

// Runs the kernel on `threads` threads, each on its own arrays of `bytes_per_array` (float).
MembwResult measure_membw(StreamKernel kernel, int threads, std::size_t bytes_per_array,
                          int repetitions);

}  // namespace ffb
