// The pipelined ring between node leaders (NetworkEngine, Options::inter_node = ring): per chunk a
// reduce-scatter then an allgather over the n leaders, 2 (n-1) steps, each moving one n-th of the
// chunk to the right-hand neighbour; several chunks are in flight at once, so one chunk's step
// latency hides behind another's transfer. Each leader sends and receives 2 (n-1)/n of the
// message: the link's full rate in nccl-tests' busbw, against (n-1)/n for the double binary tree.
#pragma once

#include <cstddef>

#include "pipeline.h"
#include "transport/transport.h"

namespace hfreduce::inter_node {

// Bytes of scratch one slot needs (one incoming piece of a chunk of slot_bytes over nnodes).
std::size_t ring_scratch_bytes(std::size_t slot_bytes, int nnodes);

// Runs one job: chunks become ready in the node's shared segment (every local rank's slice done),
// go round the ring and are published in seg.global() in order. `scratch` holds seg.depth slots of
// `scratch_stride` bytes. Throws Error(timeout) after timeout_s without progress.
void run_ring_job(transport::Transport& transport, const SegmentLayout& seg, char* scratch,
                  std::size_t scratch_stride, const NetworkEngine::Job& job, int world_size,
                  double timeout_s);

}  // namespace hfreduce::inter_node
