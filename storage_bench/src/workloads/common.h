// Pieces every workload shares: buffer pools, the phase runner, cache honesty, stonewall and
// wear-out bookkeeping, transfer checks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../block.h"
#include "../context.h"
#include "../engine.h"
#include "../fsutil.h"
#include "../phase.h"
#include "../report.h"
#include "../sync.h"

namespace sb {

// Fixed-size aligned buffers handed to operations in flight (at most the engine's depth), each
// pre-filled with its own payload pattern whose checksum is known (so --verify stamps a header per
// write without re-hashing the payload).
class BufferPool {
 public:
  BufferPool(std::size_t count, std::size_t size, std::size_t alignment, std::uint64_t seed);
  std::byte* get();
  void put(std::byte* p);
  // A read landed in p: its cached payload checksum no longer describes it.
  void invalidate(const std::byte* p) { sum_len_[index_of(p)] = 0; }
  std::size_t size() const { return size_; }
  std::size_t index_of(const std::byte* p) const {
    return static_cast<std::size_t>(p - mem_.data()) / stride_;
  }
  // Checksum of the payload part (after the header) for a block of `len` bytes in this buffer.
  std::uint64_t payload_sum(const std::byte* p, std::size_t len);
  // Stamps the header for a block about to be written from p.
  void stamp(std::byte* p, std::size_t len, const BlockId& id);

 private:
  std::size_t size_, stride_;
  AlignedBuffer mem_;
  std::vector<std::byte*> free_;
  std::vector<std::size_t> sum_len_;
  std::vector<std::uint64_t> sum_;
};

// Runs one phase on every rank: barrier, start the clock, body (inside agree: an error anywhere
// ends the phase everywhere), aggregate, report. `finish` may add metrics on rank 0 before the row
// is printed. Returns the result (complete on rank 0).
PhaseResult run_phase(const PhaseEnv& env, RankPhase& rp,
                      const std::function<void(RankPhase&)>& body,
                      const std::function<void(PhaseResult&)>& finish = nullptr);

// A stretch of a file that a rank wrote or is about to read.
struct FileRange {
  DirHandle* dir = nullptr;
  std::string name;
  std::uint64_t offset = 0, len = 0;
};

// Cache honesty before a read phase (collective). With --drop-cache: writers fdatasync what they
// wrote, then every rank evicts what it wrote and what it will read (untimed; the time is
// returned). Then each rank samples page-cache residency of what it will read into rp (about
// --residency-pages pages, spread by length). --delay comes first.
double prepare_reads(MPI_Comm comm, const CommonOptions& c, const std::vector<FileRange>& wrote,
                     const std::vector<FileRange>& will_read, RankPhase& rp);

// Stonewall: a deadline per phase (--stonewall seconds after start; 0 = none).
struct Stonewall {
  double deadline = 0.0;
  Stonewall(double stonewall_s, double start) {
    if (stonewall_s > 0) deadline = start + stonewall_s;
  }
  bool passed(double now) const { return deadline > 0 && now >= deadline; }
};

// Wear-out target: the most operations any rank completed (collective).
std::uint64_t max_over_ranks(MPI_Comm comm, std::uint64_t mine);
std::vector<std::uint64_t> allgather_u64(MPI_Comm comm, std::uint64_t mine);

// Checks one completed transfer; throws IoError naming the operation, file and offset on failure
// (ENOSPC becomes the out-of-space error). Short reads throw too (file shorter than planned).
void check_transfer(const IoOp& op, const IoDone& d, const std::string& path);

// Verifies a block read back and counts it as checked; records a mismatch in rp (never throws).
void verify_block(RankPhase& rp, const std::byte* buf, std::size_t len, const BlockId& id,
                  const std::string& where);

// --self-test-corrupt: flips one byte inside the block of `len` bytes at `offset` in a file this
// rank wrote (a payload byte after the header, or the middle of a block shorter than it), makes it
// durable and evicts the file, so the read-back sees the damage. Returns the note to print.
std::string corrupt_one_byte(DirHandle& dir, const std::string& name, std::uint64_t offset,
                             std::uint64_t len);

// fsync and close, marking the close time; errors with context.
void fsync_checked(int fd, const std::string& path);

std::uint64_t round_up(std::uint64_t v, std::uint64_t a);
std::uint64_t round_down(std::uint64_t v, std::uint64_t a);

// The workloads.
void run_seq(Ctx& ctx);
void run_loader(Ctx& ctx);
void run_checkpoint(Ctx& ctx);
void run_kvcache(Ctx& ctx);
void run_meta(Ctx& ctx);

// The most bytes a workload will have on disk at once (all ranks), for the free-space check;
// saturates at UINT64_MAX instead of wrapping.
std::uint64_t planned_bytes(const Options& o, int nranks);
// The flags whose product planned_bytes is, for messages ("--block x --segments").
std::string_view planned_flags(Workload w);

// About how much memory one rank allocates (buffers in flight, plans, permutations), and the flags
// that size the largest part; saturates instead of wrapping.
struct MemoryNeed {
  std::uint64_t bytes = 0;
  std::string flags;
};
MemoryNeed memory_need(const Options& o, int nranks);

}  // namespace sb
