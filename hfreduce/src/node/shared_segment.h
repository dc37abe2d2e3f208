// The per-node shared-memory segment, built so that a SIGKILL at any moment leaves nothing behind.
//
// The leader creates an anonymous memfd (memfd_create, MFD_CLOEXEC, sealed against resizing) and
// maps it; the other local ranks open it through /proc/<leader pid>/fd/<fd>, check that it is the
// leader's file (inode and size), map it and close their descriptor. Nothing ever has a name, so
// the kernel frees the memory with the last mapping, whoever dies when.
//
// Fallback, taken when a local rank cannot use that path (a hardened ptrace policy: EACCES; a
// different pid namespace; no /proc) or when HFREDUCE_SHM=named: a named POSIX segment with a
// random name (mode 0600, O_EXCL) that every rank unlinks as soon as all have mapped it, as
// confirmed by an MPI_Allreduce. The leader says so in one line on stderr. Only in that fallback
// can a SIGKILL between creation and confirmation leave a /dev/shm/hfreduce-* file.
//
// A leader that died before the others opened its memfd makes them throw hfreduce::Error.
//
// Fault points (ffb/fault.h, FFB_FAULT=<point>@<world rank>): hfreduce.segment_created (leader),
// hfreduce.segment_offered (leader, after announcing pid and fd), hfreduce.segment_mapped
// (non-leader, before the confirmation), hfreduce.before_unlink (leader, fallback only).
#pragma once

#include <cstddef>
#include <string>

#include <mpi.h>

namespace hfreduce::node {

// One shared mapping of a file, unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  // Maps `bytes` of fd read-write and shared; empty (errno set) when mmap fails.
  Mapping(int fd, std::size_t bytes);
  ~Mapping();
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  explicit operator bool() const { return base_ != nullptr; }
  void* data() const { return base_; }
  std::size_t size() const { return bytes_; }

 private:
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
};

class SharedSegment {
 public:
  enum class Kind { memfd, named };

  // Collective over node_comm (the ranks of one node). `where` names the calling rank in error
  // messages. Throws hfreduce::Error(system_error).
  SharedSegment(MPI_Comm node_comm, std::size_t bytes, const std::string& where);
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  void* data() const { return map_.data(); }
  std::size_t size() const { return map_.size(); }
  Kind kind() const { return kind_; }

  struct Context;  // the caller's node communicator, ranks and size (shared_segment.cpp)

 private:
  int map_memfd(const Context& c);
  void map_named(const Context& c);

  Mapping map_;
  Kind kind_ = Kind::memfd;
};

}  // namespace hfreduce::node
