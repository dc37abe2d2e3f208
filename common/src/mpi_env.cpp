#include "ffb/mpi_env.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <stdexcept>
#include <unistd.h>

#include <fmt/format.h>

#include "ffb/error.h"

namespace ffb {

namespace {
const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
    default:
      return "unknown";
  }
}
}  // namespace

MpiSession::MpiSession(int& argc, char**& argv, int required) {
  if (MPI_Init_thread(&argc, &argv, required, &provided_) != MPI_SUCCESS)
    throw std::runtime_error("MPI_Init_thread failed");
  if (provided_ < required) {
    const std::string msg = fmt::format(
        "the MPI library gives {} but ffbench needs {} (HFReduce's progress thread and "
        "the watchdog call MPI from a second thread); use an MPI built with thread "
        "support (Open MPI 4+ has it by default)",
        thread_level_name(provided_), thread_level_name(required));
    MPI_Finalize();
    throw std::runtime_error(msg);
  }
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::vector<std::string> allgather_strings(MPI_Comm comm, const std::string& mine) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(size), displs(size);
  MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm);
  int total = 0;
  for (int r = 0; r < size; ++r) {
    displs[r] = total;
    total += lens[r];
  }
  std::string all(static_cast<std::size_t>(total), '\0');
  MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR,
                 comm);
  std::vector<std::string> out(size);
  for (int r = 0; r < size; ++r) out[r] = all.substr(displs[r], lens[r]);
  return out;
}

Topology discover_topology(MPI_Comm comm) {
  Topology t;
  MPI_Comm_rank(comm, &t.rank);
  MPI_Comm_size(comm, &t.size);
  std::array<char, 256> name{};
  gethostname(name.data(), name.size() - 1);
  t.host = name.data();
  t.hosts = allgather_strings(comm, t.host);
  std::vector<std::string> seen;
  t.node_of_rank.resize(t.size);
  for (int r = 0; r < t.size; ++r) {
    auto it = std::find(seen.begin(), seen.end(), t.hosts[r]);
    if (it == seen.end()) {
      seen.push_back(t.hosts[r]);
      t.ranks_per_node.push_back(0);
      it = seen.end() - 1;
    }
    const auto node = static_cast<int>(it - seen.begin());
    t.node_of_rank[r] = node;
    ++t.ranks_per_node[node];
  }
  return t;
}

std::string Topology::ranks_per_node_text() const {
  if (ranks_per_node.empty()) return "0";
  if (std::all_of(ranks_per_node.begin(), ranks_per_node.end(),
                  [&](int n) { return n == ranks_per_node.front(); }))
    return std::to_string(ranks_per_node.front());
  return fmt::format("{}", fmt::join(ranks_per_node, ","));
}

void check_launcher(MPI_Comm world) {
  const char* step_tasks = std::getenv("SLURM_STEP_NUM_TASKS");
  // mpirun inside an allocation sets OMPI_COMM_WORLD_SIZE; srun's direct launch does not, and
  // without PMIx srun starts N singletons of world size 1.
  if (step_tasks == nullptr || std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) return;
  int size = 0;
  MPI_Comm_size(world, &size);
  const long expected = std::strtol(step_tasks, nullptr, 10);
  if (expected > 0 && expected != size)
    throw UsageError(fmt::format(
        "MPI world size is {} but srun started {} tasks (SLURM_STEP_NUM_TASKS): the tasks did "
        "not join one MPI job; launch with `srun --mpi=pmix` (check `srun --mpi=list`) or use "
        "mpirun inside the allocation",
        size, expected));
}

std::string mpi_library_version() {
  std::array<char, MPI_MAX_LIBRARY_VERSION_STRING> buf{};
  int len = 0;
  MPI_Get_library_version(buf.data(), &len);
  std::string v(buf.data());  // len may count the terminating NUL
  const auto nl = v.find('\n');
  if (nl != std::string::npos) v.resize(nl);
  while (!v.empty() && (v.back() == ',' || v.back() == ' ')) v.pop_back();
  return v;
}

}  // namespace ffb
