#include "node/shared_segment.h"

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hfreduce/hfreduce.h"

namespace hfreduce::node {

namespace {

std::string errno_text() { return std::strerror(errno); }

// Unique per job, node and communicator: pid and start time of the leader plus random bits.
std::string make_name() {
  std::random_device rd;
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::array<char, 96> buf{};
  std::snprintf(buf.data(), buf.size(), "/hfreduce-%d-%llx-%08x%08x", static_cast<int>(getpid()),
                static_cast<unsigned long long>(now), rd(), rd());
  return buf.data();
}

}  // namespace

SharedSegment::SharedSegment(MPI_Comm node_comm, std::size_t bytes) : bytes_(bytes) {
  int local_rank = 0;
  MPI_Comm_rank(node_comm, &local_rank);
  std::array<char, 96> name{};
  int fd = -1;
  int ok = 1;
  std::string error;
  if (local_rank == 0) {
    name_ = make_name();
    fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      ok = 0;
      error = "shm_open/ftruncate " + name_ + " (" + std::to_string(bytes) + " B): " + errno_text();
    }
    std::strncpy(name.data(), name_.c_str(), name.size() - 1);
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, node_comm);
  if (!ok) {
    if (fd >= 0) {
      close(fd);
      shm_unlink(name_.c_str());
    }
    throw Error(Status::system_error, "hfreduce: " + (error.empty() ? "leader failed to create "
                                                                      "the node's shared memory"
                                                                    : error));
  }
  MPI_Bcast(name.data(), static_cast<int>(name.size()), MPI_CHAR, 0, node_comm);
  name_ = name.data();
  if (local_rank != 0) fd = shm_open(name_.c_str(), O_RDWR, 0600);
  void* base = MAP_FAILED;
  if (fd >= 0) base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mapped = base != MAP_FAILED ? 1 : 0;
  if (!mapped) error = "mapping " + name_ + ": " + errno_text();
  if (fd >= 0) close(fd);
  int all_mapped = 0;
  MPI_Allreduce(&mapped, &all_mapped, 1, MPI_INT, MPI_MIN, node_comm);
  // Every rank has mapped it (or failed): the name is no longer needed.
  if (local_rank == 0) shm_unlink(name_.c_str());
  if (!all_mapped) {
    if (mapped) munmap(base, bytes);
    throw Error(Status::system_error,
                "hfreduce: " + (error.empty() ? std::string("a local rank could not map the "
                                                            "node's shared memory")
                                              : error));
  }
  base_ = base;
}

SharedSegment::~SharedSegment() {
  if (base_ != nullptr) munmap(base_, bytes_);
}

}  // namespace hfreduce::node
