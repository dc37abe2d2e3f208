#include "transport/mpi_transport.h"

#include <climits>
#include <vector>

#include "hfreduce/hfreduce.h"

namespace hfreduce::transport {

namespace {

// Messages above INT_MAX bytes go as several MPI messages with the same tag (ordered per pair).
constexpr std::size_t kMaxPiece = static_cast<std::size_t>(INT_MAX) / 64 * 64;

class MpiOperation final : public Operation {
 public:
  ~MpiOperation() override {
    for (auto& r : requests_)
      if (r != MPI_REQUEST_NULL) {
        MPI_Cancel(&r);
        MPI_Request_free(&r);
      }
  }
  bool test() override {
    int done = 0;
    const int rc = MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done,
                               MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) throw Error(Status::transport_error, "hfreduce: MPI_Testall failed");
    return done != 0;
  }
  std::vector<MPI_Request> requests_;
};

}  // namespace

MpiTransport::MpiTransport(MPI_Comm leaders) : comm_(leaders) {
  MPI_Comm_rank(comm_, &node_);
  MPI_Comm_size(comm_, &nnodes_);
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiTransport::~MpiTransport() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<Operation> MpiTransport::post_send(const void* buf, std::size_t bytes, int peer,
                                                   int tag) {
  auto op = std::make_unique<MpiOperation>();
  const auto* p = static_cast<const char*>(buf);
  for (std::size_t off = 0; off < bytes || (bytes == 0 && off == 0); off += kMaxPiece) {
    const auto n = static_cast<int>(std::min(kMaxPiece, bytes - off));
    MPI_Request r = MPI_REQUEST_NULL;
    if (MPI_Isend(p + off, n, MPI_BYTE, peer, tag, comm_, &r) != MPI_SUCCESS)
      throw Error(Status::transport_error,
                  "hfreduce: MPI_Isend to node " + std::to_string(peer) + " failed");
    op->requests_.push_back(r);
    if (bytes == 0) break;
  }
  return op;
}

std::unique_ptr<Operation> MpiTransport::post_recv(void* buf, std::size_t bytes, int peer,
                                                   int tag) {
  auto op = std::make_unique<MpiOperation>();
  auto* p = static_cast<char*>(buf);
  for (std::size_t off = 0; off < bytes || (bytes == 0 && off == 0); off += kMaxPiece) {
    const auto n = static_cast<int>(std::min(kMaxPiece, bytes - off));
    MPI_Request r = MPI_REQUEST_NULL;
    if (MPI_Irecv(p + off, n, MPI_BYTE, peer, tag, comm_, &r) != MPI_SUCCESS)
      throw Error(Status::transport_error,
                  "hfreduce: MPI_Irecv from node " + std::to_string(peer) + " failed");
    op->requests_.push_back(r);
    if (bytes == 0) break;
  }
  return op;
}

}  // namespace hfreduce::transport
