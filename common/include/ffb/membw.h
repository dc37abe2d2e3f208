// STREAM-like host memory bandwidth probe: the ceiling HFReduce's host stages are judged against,
// and the figure storage_bench flags impossible reads with. One kernel and one size rule for all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ffb/hostinfo.h"

namespace ffb {

enum class StreamKernel { copy, add };  // copy: c = a (2 x S moved), add: c = a + b (3 x S moved)
const char* name_of(StreamKernel k);
int arrays_of(StreamKernel k);  // arrays the kernel touches: copy 2, add 3

// The size rule: the working set of every thread running at once on the node (arrays x threads x
// bytes per array) is at least kMembwLlcFactor x the last-level cache, and every array is at least
// kMembwMinArrayBytes; rounded up to 1 MiB. A plan needing more than half of MemAvailable does
// not fit.
inline constexpr std::uint64_t kMembwLlcFactor = 4;
inline constexpr std::uint64_t kMembwMinArrayBytes = 64ull << 20;

struct MembwPlan {
  int arrays = 0;
  int threads = 0;  // threads running at once on the node (all ranks of it)
  std::uint64_t bytes_per_array = 0;
  std::uint64_t working_set = 0;  // arrays x threads x bytes_per_array (saturating)
  std::uint64_t llc_bytes = 0;
  std::string llc_source;
  std::uint64_t mem_available = 0;  // /proc/meminfo MemAvailable; 0: unknown, not checked
  bool automatic = true;            // false: an explicit size, the rule only reported
  std::string unit = "thread";      // what runs at once: "thread", "rank"
  std::string rule;  // "3 arrays x 128 MiB x 2 threads = 768 MiB = 24 x LLC (32 MiB, sysfs); ..."

  bool fits() const { return mem_available == 0 || working_set <= mem_available / 2; }
  // "3 arrays x 16 GiB x 2 threads = 96 GiB is more than half of MemAvailable (23.2 GiB)"
  std::string shortfall() const;
};

// Pure: requested_bytes 0 applies the rule, anything else is used as given (and reported against
// the rule). `unit` names what runs at once ("thread", "rank").
MembwPlan plan_membw_for(int arrays, int concurrent_threads_on_node, std::uint64_t requested_bytes,
                         const LastLevelCache& llc, std::uint64_t mem_available,
                         std::string_view unit = "thread");

// The same with this host's last-level cache (sysfs) and MemAvailable.
MembwPlan plan_membw(int arrays, int concurrent_threads_on_node, std::uint64_t requested_bytes,
                     std::string_view unit = "thread");

struct MembwResult {
  StreamKernel kernel = StreamKernel::copy;
  int threads = 1;
  std::size_t bytes_per_array = 0;
  double gbps = 0;               // best of the repetitions, GB = 1e9 B, STREAM byte counting
  double gbps_mean = 0;          // mean of the repetitions
  std::vector<double> rep_gbps;  // every repetition
  // Every repetition's start (all threads released) and end (the slowest thread done), seconds on
  // std::chrono::steady_clock: one clock for all processes of a node, so that ranks measuring at
  // once can time their node from the first start to the last end.
  std::vector<double> rep_start_s, rep_end_s;
};

// Runs the kernel on `threads` threads, each on its own arrays of `bytes_per_array` (float),
// allocated here and first touched by the thread that uses them. One untimed warm-up, then
// `repetitions` timed ones, each started together by all threads (and ended by the slowest).
// `before_each` runs on the calling thread before every timed repetition (e.g. an MPI_Barrier, so
// that ranks measuring at once start together). Throws std::bad_alloc when memory runs out.
MembwResult measure_membw(StreamKernel kernel, int threads, std::size_t bytes_per_array,
                          int repetitions, const std::function<void()>& before_each = {});

}  // namespace ffb
