// I/O engines: the one interface every workload drives (IOR's AIORI idea, as a small C++
// interface).
//
// A workload hands the engine a pull-style source of operations and a completion callback; the
// engine keeps up to depth() operations in flight and reports each completion with its submit and
// completion times. Opening, closing, fsync and metadata calls are plain POSIX for every engine
// (the same for all engines, so they never bias an engine comparison); the engine moves the data.
//
//   posix     pread/pwrite. depth 1: the calling thread (fio's psync). depth N > 1: N threads
//             share the operation source (fio psync with N jobs on one file set).
//   io_uring  liburing, one ring of depth entries per rank, no SQ polling, no registered buffers,
//             each operation submitted as soon as it is queued (fio's ioengine=io_uring defaults;
//             --submit-batch N to batch). Short transfers are resubmitted for the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "timing.h"

namespace sb {

enum class OpKind : std::uint8_t { read, write };

struct IoOp {
  OpKind kind = OpKind::read;
  int fd = -1;
  void* buf = nullptr;
  std::size_t len = 0;
  std::uint64_t offset = 0;
  std::uint64_t tag = 0;    // the workload's own id for the operation
  double not_before = 0.0;  // clock time (now_s()) before which it must not start (0: at once)
};

struct IoDone {
  std::size_t bytes = 0;  // transferred; < len only at end of file
  int err = 0;            // errno of a failed transfer, 0 on success
  double submit = 0.0;    // now_s() at submission
  double complete = 0.0;  // now_s() at completion
};

// Fills the next operation; returns false when there is nothing more to issue in this run().
using OpSource = std::function<bool(IoOp&)>;
// Returns false to stop issuing (an error): the engine drains what is in flight and returns.
using OpSink = std::function<bool(const IoOp&, const IoDone&)>;

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  virtual unsigned depth() const = 0;
  // Issues operations from next() until it returns false, with up to depth() in flight, and calls
  // done() for every completion (calls to next() and done() never overlap, even with threads).
  // Returns when the source is exhausted and nothing is in flight, or after done() returned false
  // (then in-flight operations are drained and reported too) or the stop flag was raised.
  virtual void run(const OpSource& next, const OpSink& done) = 0;
};

enum class EngineKind { posix, io_uring };
// submit_batch (io_uring): hand queued operations to the kernel once this many are queued
// (fio's iodepth_batch_submit; 1 = each at once).
// Refuses io_uring in a build without liburing (ffb::UsageError naming --engine).
std::unique_ptr<Engine> make_engine(EngineKind kind, unsigned depth, unsigned submit_batch = 1);
std::string_view name_of(EngineKind kind);
// ffb::UsageError naming --engine when this build lacks the engine (io_uring without liburing).
void check_engine_available(EngineKind kind);

// The engines behind make_engine (engine_posix.cpp, engine_uring.cpp: built with liburing only).
std::unique_ptr<Engine> make_posix_engine(unsigned depth);
std::unique_ptr<Engine> make_uring_engine(unsigned depth, unsigned submit_batch);

}  // namespace sb
