// Measures the link between node leaders 0 and 1 over the inter-node transport, once per
// communicator: the one-way latency of a small message (half the median round trip of a few
// ping-pongs) and the one-way rate of a stream of chunk-sized messages long enough to outlast a
// switch's or tc's burst allowance. The cost model (cost_model.h) needs both.
#pragma once

#include "hfreduce/hfreduce.h"
#include "transport/transport.h"

namespace hfreduce::inter_node {

// Collective over the leaders (every leader calls it; only nodes 0 and 1 exchange messages).
// Fields of `given` that are > 0 are kept and not measured. Returns the figures on nodes 0 and 1;
// other leaders get `given` back (the Communicator broadcasts node 0's figures to every rank).
// Throws Error(timeout) when the peer does not answer within timeout_s.
LinkModel probe_link(transport::Transport& transport, const LinkModel& given, double timeout_s);

}  // namespace hfreduce::inter_node
