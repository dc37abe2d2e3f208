// MPI_Allreduce through the shared harness: the MPI baseline every other backend is judged against
// (the backend: backends/mpi_allreduce_backend.h).
#include <memory>

#include "backends/mpi_allreduce_backend.h"
#include "ffb/collective.h"

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "mpi_allreduce_bench",
                              std::make_unique<ffb::bench::MpiAllreduceBackend>());
}
