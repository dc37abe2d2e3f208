// MPI start-up and the facts every program needs about where its ranks run.
#pragma once

#include <string>
#include <vector>

#include <mpi.h>

namespace ffb {

// RAII MPI session: MPI_Init_thread in the constructor, MPI_Finalize in the destructor.
// Asks for MPI_THREAD_MULTIPLE (HFReduce's progress thread and the watchdog need it) and throws
// with a clear message when the library cannot give `required`.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv, int required = MPI_THREAD_MULTIPLE);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int thread_level() const { return provided_; }

 private:
  int provided_ = 0;
};

// A program's own duplicate of a communicator (a benchmark's, a backend's), freed on every path.
class DupComm {
 public:
  explicit DupComm(MPI_Comm parent) { MPI_Comm_dup(parent, &comm_); }
  ~DupComm() { MPI_Comm_free(&comm_); }
  DupComm(const DupComm&) = delete;
  DupComm& operator=(const DupComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// Where the ranks of a communicator run. Nodes are hosts, in first-seen order.
struct Topology {
  int rank = 0;
  int size = 1;
  std::string host;
  std::vector<std::string> hosts;   // per rank
  std::vector<int> node_of_rank;    // per rank
  std::vector<int> ranks_per_node;  // per node
  int nnodes() const { return static_cast<int>(ranks_per_node.size()); }
  std::string ranks_per_node_text() const;  // "2" when even, else "3,2,1"
};

Topology discover_topology(MPI_Comm comm);

// Under srun without a working PMIx every task is a singleton: compare the world size with
// SLURM_STEP_NUM_TASKS and throw UsageError with the fix when they disagree.
void check_launcher(MPI_Comm world);

// Library version string's first line.
std::string mpi_library_version();

// Gather one string per rank to every rank.
std::vector<std::string> allgather_strings(MPI_Comm comm, const std::string& mine);

}  // namespace ffb
