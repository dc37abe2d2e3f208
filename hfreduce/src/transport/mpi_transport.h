// Transport over MPI point-to-point on a private communicator of the node leaders.
#pragma once

#include <mpi.h>

#include "transport/transport.h"

namespace hfreduce::transport {

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(MPI_Comm leaders);  // takes ownership of `leaders` (frees it)
  ~MpiTransport() override;
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  int node() const override { return node_; }
  int nnodes() const override { return nnodes_; }
  std::unique_ptr<Operation> post_send(const void* buf, std::size_t bytes, int peer,
                                       int tag) override;
  std::unique_ptr<Operation> post_recv(void* buf, std::size_t bytes, int peer, int tag) override;
  std::string name() const override { return "mpi"; }

 private:
  MPI_Comm comm_;
  int node_ = 0, nnodes_ = 1;
};

}  // namespace hfreduce::transport
