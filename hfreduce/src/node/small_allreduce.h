// The latency path for small allreduces on one node (Options::small_path = automatic).
//
// Every rank copies its message into its own slot of a shared segment and publishes the call's
// sequence number; once every peer's number has arrived, each rank reduces all inputs, in local
// rank order, into its output. One hand-off per peer instead of MPI's log2(n) message rounds, and
// the same bits on every rank (same inputs, same order, the same kernel as the pipeline).
//
// fp8 from 512 B (kSplitMinBytes) splits the work: each rank reduces one slice of every input
// into its own slot and publishes again, then every rank copies the slices. Decoding fp8 costs
// more than the second hand-off.
//
// Messages of up to 56 bytes travel inside the flag's cache line (Flag::payload): a peer that sees
// the sequence number has the data in the same transfer. Larger ones go through a slot.
//
// Two flags and two slots per rank, used by alternate calls: a rank writes flag and slot k % 2
// again only at call k + 2, and it can only have finished call k + 1 once every peer has
// published k + 1, which each peer does after it has finished reading call k. A flag holds 2k
// once call k's input is in the slot and 2k + 1 once its result part is (at once without a split).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ffb/numeric.h"
#include "node/flag.h"

namespace hfreduce::node {

class SmallAllreduce {
 public:
  // Shared bytes for `ranks` local ranks and messages of up to max_bytes (a multiple of 64).
  static std::size_t bytes_needed(int ranks, std::size_t max_bytes);

  // Over `base`: bytes_needed(ranks, max_bytes) of zero-filled memory (64-byte aligned) that every
  // local rank has mapped, in a segment that outlives this object.
  SmallAllreduce(void* base, int rank, int ranks, std::size_t max_bytes);

  std::size_t max_bytes() const { return slot_bytes_; }

  // From this size, fp8 splits the reduction over the ranks (see above).
  static constexpr std::size_t kSplitMinBytes = 512;
  // Whether a call of this type and size splits (the same answer on every rank).
  bool splits(ffb::DataType type, std::size_t bytes) const;

  // recv = reduction of every rank's send (avg: divided by the number of ranks); send may equal
  // recv. count * size_of(type) <= max_bytes(). Every rank of the node must call it in the same
  // order. Throws hfreduce::Error(timeout) naming the rank waited for after `timeout`.
  void allreduce(const void* send, void* recv, std::size_t count, ffb::DataType type,
                 ffb::ReduceOp op, Seconds timeout, WaitStats& waits, const std::string& where);

 private:
  // Per-rank input pointers, on the stack for up to 8 ranks: the latency path allocates nothing.
  class InputList {
   public:
    explicit InputList(int ranks) : ranks_(ranks) {
      if (ranks > kOnStack) heap_.resize(static_cast<std::size_t>(ranks));
    }
    const void** data() { return ranks_ > kOnStack ? heap_.data() : stack_.data(); }
    const void*& operator[](int r) { return data()[r]; }

   private:
    static constexpr int kOnStack = 8;
    int ranks_;
    std::array<const void*, kOnStack> stack_{};
    std::vector<const void*> heap_;
  };
  static std::uint32_t input_mark(std::uint32_t seq) { return 2 * seq; }
  static std::uint32_t result_mark(std::uint32_t seq) { return 2 * seq + 1; }
  void reduce_slices(InputList& inputs, void* recv, std::size_t count, ffb::DataType type,
                     ffb::ReduceOp op, std::uint32_t seq, Seconds timeout, WaitStats& waits,
                     const std::string& where);
  void wait_for(int r, std::uint32_t mark, std::uint32_t seq, Seconds timeout, WaitStats& waits,
                const std::string& where, const char* what);
  char* slot(int rank, std::uint32_t seq) const {
    return slots_ + (static_cast<std::size_t>(rank) * 2 + (seq & 1u)) * slot_bytes_;
  }

  int rank_ = 0, size_ = 1;
  std::size_t slot_bytes_ = 0;
  Flag& flag(int rank, std::uint32_t seq) const {
    return published_[static_cast<std::size_t>(rank) * 2 + (seq & 1u)];
  }

  Flag* published_ = nullptr;  // [rank][2]: the last call whose input that rank has written
  char* slots_ = nullptr;      // [rank][2][slot_bytes_]
  std::uint32_t seq_ = 0;      // calls made so far (the same on every rank)
};

}  // namespace hfreduce::node
