#include "node/small_allreduce.h"

#include <algorithm>
#include <cstring>

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

// fp8 decodes and re-encodes every element: from 512 B its reduce costs more than a second
// hand-off, so each rank reduces only its slice (at 512 B-1 KiB, HFReduce / MPI's fp8 op went from
// 0.62-0.77 to 0.51-0.61 with 2 and 4 ranks on the 2-core EPYC VM). Other types reduce at memory
// speed and keep the single exchange.
bool SmallAllreduce::splits(ffb::DataType type, std::size_t bytes) const {
  const bool decoded = type == ffb::DataType::f8e4m3 || type == ffb::DataType::f8e5m2;
  return size_ > 1 && decoded && bytes >= kSplitMinBytes;
}

void SmallAllreduce::allreduce(const void* send, void* recv, std::size_t count, ffb::DataType type,
                               ffb::ReduceOp op, Seconds timeout, WaitStats& waits,
                               const std::string& where) {
  const std::uint32_t seq = ++seq_;
  const std::size_t bytes = count * ffb::size_of(type);
  const bool split = splits(type, bytes);
  const bool inline_data = bytes <= Flag::kPayloadBytes;
  if (size_ > 1) {
    Flag& mine = flag(rank_, seq);
    void* to = inline_data ? static_cast<void*>(mine.payload) : slot(rank_, seq);
    if (bytes > 0) std::memcpy(to, send, bytes);
    // Without a split both phases are done once the input is there.
    publish(mine, split ? input_mark(seq) : result_mark(seq));
  }
  InputList inputs(size_);
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) {
      inputs[r] = send;  // the same bytes as our slot, read from where they are cached
      continue;
    }
    wait_for(r, input_mark(seq), seq, timeout, waits, where, "its input");
    inputs[r] = inline_data ? static_cast<const void*>(flag(r, seq).payload) : slot(r, seq);
  }
  if (count == 0) return;
  if (!split) {
    kernels::reduce(type, op, inputs.data(), size_, recv, count, static_cast<double>(size_));
    return;
  }
  reduce_slices(inputs, recv, count, type, op, seq, timeout, waits, where);
}

// Rank r reduces elements [r s, (r + 1) s) of every input into that part of its own slot (which
// only r reads: the peers read the other parts of it), publishes, and every rank copies each
// part from its owner's slot. Each element is reduced once, in rank order: the bits are those of
// the single exchange.
void SmallAllreduce::reduce_slices(InputList& inputs, void* recv, std::size_t count,
                                   ffb::DataType type, ffb::ReduceOp op, std::uint32_t seq,
                                   Seconds timeout, WaitStats& waits, const std::string& where) {
  const std::size_t es = ffb::size_of(type);
  const std::size_t per_line = 64 / es;  // slices start on cache lines: no line has two writers
  const std::size_t part = (count + size_ * per_line - 1) / (size_ * per_line) * per_line;
  const auto first = [&](int r) { return std::min(count, part * static_cast<std::size_t>(r)); };
  const std::size_t lo = first(rank_), n = first(rank_ + 1) - lo;
  if (n > 0) {
    for (int r = 0; r < size_; ++r) inputs[r] = static_cast<const char*>(inputs[r]) + lo * es;
    kernels::reduce(type, op, inputs.data(), size_, slot(rank_, seq) + lo * es, n,
                    static_cast<double>(size_));
  }
  publish(flag(rank_, seq), result_mark(seq));
  for (int k = 0; k < size_; ++k) {
    const int r = (rank_ + k) % size_;  // our own part first: it is ready
    if (r != rank_) wait_for(r, result_mark(seq), seq, timeout, waits, where, "its part");
    const std::size_t from = first(r), len = first(r + 1) - from;
    if (len > 0)
      std::memcpy(static_cast<char*>(recv) + from * es, slot(r, seq) + from * es, len * es);
  }
}

void SmallAllreduce::wait_for(int r, std::uint32_t mark, std::uint32_t seq, Seconds timeout,
                              WaitStats& waits, const std::string& where, const char* what) {
  wait_reached(flag(r, seq), mark, timeout, waits, [&] {
    return "hfreduce: " + where + ": small allreduce " + std::to_string(seq) +
           " timed out waiting for local rank " + std::to_string(r) + " to publish " + what;
  });
}

}  // namespace hfreduce::node
