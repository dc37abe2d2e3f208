// The per-node shared-memory segment: created by the node leader with a name unique to the job and
// communicator, mode 0600, mapped by every local rank, and unlinked as soon as all have mapped it,
// so nothing is left in /dev/shm even when the job is killed later.
#pragma once

#include <cstddef>
#include <string>

#include <mpi.h>

namespace hfreduce::node {

class SharedSegment {
 public:
  // Collective over node_comm (the ranks of one node). Throws hfreduce::Error(system_error).
  SharedSegment(MPI_Comm node_comm, std::size_t bytes);
  ~SharedSegment();
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  void* data() const { return base_; }
  std::size_t size() const { return bytes_; }
  const std::string& name() const { return name_; }

 private:
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
  std::string name_;
};

}  // namespace hfreduce::node
