#include "node/small_allreduce.h"

#include <array>
#include <cstring>
#include <vector>

#include "reduce_kernels.h"

namespace hfreduce::node {
namespace {

std::size_t slot_size(std::size_t max_bytes) { return (max_bytes + 63) / 64 * 64; }

}  // namespace

std::size_t SmallAllreduce::bytes_needed(int ranks, std::size_t max_bytes) {
  return static_cast<std::size_t>(ranks) * 2 * (sizeof(Flag) + slot_size(max_bytes));
}

SmallAllreduce::SmallAllreduce(void* base, int rank, int ranks, std::size_t max_bytes)
    : rank_(rank), size_(ranks), slot_bytes_(slot_size(max_bytes)) {
  published_ = static_cast<Flag*>(base);  // zero-filled: nothing published yet
  slots_ = reinterpret_cast<char*>(published_ + 2 * static_cast<std::size_t>(size_));
}

void SmallAllreduce::allreduce(const void* send, void* recv, std::size_t count, ffb::DataType type,
                               ffb::ReduceOp op, Seconds timeout, WaitStats& waits,
                               const std::string& where) {
  const std::uint32_t seq = ++seq_;
  const std::size_t bytes = count * ffb::size_of(type);
  const bool inline_data = bytes <= Flag::kPayloadBytes;
  if (size_ > 1) {
    Flag& mine = flag(rank_, seq);
    void* to = inline_data ? static_cast<void*>(mine.payload) : slot(rank_, seq);
    if (bytes > 0) std::memcpy(to, send, bytes);
    publish(mine, seq);
  }
  // Up to 8 ranks on the stack: the latency path allocates nothing.
  std::array<const void*, 8> few{};
  std::vector<const void*> many;
  const void** inputs = few.data();
  if (size_ > static_cast<int>(few.size())) {
    many.resize(static_cast<std::size_t>(size_));
    inputs = many.data();
  }
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) {
      inputs[r] = send;  // the same bytes as our slot, read from where they are cached
      continue;
    }
    Flag& theirs = flag(r, seq);
    wait_reached(theirs, seq, timeout, waits, [&] {
      return "hfreduce: " + where + ": small allreduce " + std::to_string(seq) +
             " timed out waiting for local rank " + std::to_string(r) + " to publish its input";
    });
    inputs[r] = inline_data ? static_cast<const void*>(theirs.payload) : slot(r, seq);
  }
  if (count == 0) return;
  kernels::reduce(type, op, inputs, size_, recv, count, static_cast<double>(size_));
}

}  // namespace hfreduce::node
