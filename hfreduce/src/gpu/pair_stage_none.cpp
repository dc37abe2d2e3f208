// Host-only builds: no NVLink pairs (device buffers, which pairs need, are refused by the copy
// stage with Error(unsupported) before the pair stage is asked for).
#include "gpu/pair_stage.h"

namespace hfreduce::gpu {

std::unique_ptr<PairStage> make_pair_stage(MPI_Comm, MPI_Comm, const Layout&, const Options&) {
  return nullptr;
}

}  // namespace hfreduce::gpu
