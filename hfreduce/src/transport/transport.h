// The inter-node transport: point-to-point messages between node leaders. MPI first; an RDMA verbs
// transport can implement the same interface (post, test) later.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace hfreduce::transport {

// One posted send or receive; complete once test() returned true.
class Operation {
 public:
  virtual ~Operation() = default;
  virtual bool test() = 0;  // throws hfreduce::Error(transport_error) on failure
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int node() const = 0;  // this leader's node index
  virtual int nnodes() const = 0;
  // `tag` distinguishes concurrent messages between the same pair of nodes; < 2^15.
  virtual std::unique_ptr<Operation> post_send(const void* buf, std::size_t bytes, int peer,
                                               int tag) = 0;
  virtual std::unique_ptr<Operation> post_recv(void* buf, std::size_t bytes, int peer, int tag) = 0;
  virtual std::string name() const = 0;
};

}  // namespace hfreduce::transport
