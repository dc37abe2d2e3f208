"""HFReduce's `--inter-node auto` rule: tree or ring between the node leaders (a cost model).

The same rule as the library's (hfreduce `Communicator::choose_inter_node`, docs/hfreduce.md
"Choosing the inter-node algorithm"); the golden cases in tests/data/hfreduce_inter_node_cases.json
hold both to it. n node leaders, S message bytes, alpha the one-way latency of a small message
between leaders (s), B the one-way link rate (B/s), C the chunk bytes of the call, d = ceil(log2 n):

    T_tree(S) = 2 S / B + 2 d alpha + d C / B        each leader sends and receives 2 S;
                                                      fill: 2d hops of C/2
    T_ring(S) = 2 (n-1)/n S / B + 2 (n-1) alpha      reduce-scatter + allgather, 2(n-1) steps

auto picks the ring iff T_ring < T_tree (a tie keeps the tree, the paper's algorithm); one node is
"intra-node" (no network) and a message below fallback_bytes takes the small path: "shm" (the
shared-memory exchange) on one node, "mpi" (MPI_Allreduce) across nodes or with small_path "mpi".
"""
from typing import NamedTuple, Optional

KIB = 1 << 10
MIB = 1 << 20

INTER_NODE_OPTIONS = ("auto", "tree", "ring")
# what carried an operation (hfreduce::Algorithm names, the `algorithm` column of hfreduce_bench)
ALGORITHM_NAMES = ("mpi", "intra-node", "tree", "ring", "shm")

SINGLE_NODE_CHUNK = 1 * MIB
# Provisional (rule.md): 128 KiB tree messages stay under Open MPI's TCP put threshold
# (docs/models.md, check 2); up to 16 slots keep the same 4 MiB of shared memory per rank.
MULTI_NODE_CHUNK = 256 * KIB
SLOT_BYTES = 4 * MIB
MIN_DEPTH, SINGLE_NODE_MAX_DEPTH, MULTI_NODE_MAX_DEPTH = 2, 4, 16
MAX_SMALL_SHM_BYTES = 256 * KIB  # hfreduce::kMaxSmallShmBytes
CALL_CHUNK_ALIGN = 512      # the library rounds the chunk the rule sees up to this many bytes


class InterNodeChoice(NamedTuple):
    """The rule's answer: what runs, and both modelled times (None where no network is crossed)."""
    choice: str                       # "mpi", "shm", "intra-node", "tree" or "ring"
    t_tree_s: Optional[float]
    t_ring_s: Optional[float]


def tree_depth_bound(nodes):
    """d = ceil(log2 n): the depth the rule charges the double binary tree with."""
    return (int(nodes) - 1).bit_length() if nodes > 1 else 0     # exact for every integer


def inter_node_times(nodes, size, latency_s, link_Bps, chunk_bytes):
    """(T_tree, T_ring) in seconds for n >= 2 leaders (the formulas of the module doc)."""
    if nodes < 2:
        raise ValueError(f"inter_node_times: nodes = {nodes}; the rule needs 2 or more node leaders")
    if link_Bps <= 0:
        raise ValueError(f"inter_node_times: link rate {link_Bps} B/s must be > 0")
    d = tree_depth_bound(nodes)
    t_tree = 2.0 * size / link_Bps + 2.0 * d * latency_s + d * chunk_bytes / link_Bps
    t_ring = 2.0 * (nodes - 1) / nodes * size / link_Bps + 2.0 * (nodes - 1) * latency_s
    return t_tree, t_ring


def hfreduce_inter_node_choice(nodes, size, latency_s, link_Bps, chunk_bytes, fallback_bytes=0,
                               option="auto", small_path="auto"):
    """What HFReduce runs for one call: InterNodeChoice(choice, t_tree_s, t_ring_s).

    option "auto" applies the rule; "tree" / "ring" force the algorithm (the times are still
    given, so a forced run can be set beside the rule's choice)."""
    if option not in INTER_NODE_OPTIONS:
        raise ValueError(f"inter-node option {option!r}: give one of {', '.join(INTER_NODE_OPTIONS)}")
    times = inter_node_times(nodes, size, latency_s, link_Bps, chunk_bytes) if nodes > 1 \
        else (None, None)
    if size < fallback_bytes:
        shm = nodes == 1 and small_path == "auto" and size <= MAX_SMALL_SHM_BYTES
        return InterNodeChoice("shm" if shm else "mpi", *times)
    if nodes == 1:
        return InterNodeChoice("intra-node", None, None)
    if option != "auto":
        return InterNodeChoice(option, *times)
    return InterNodeChoice("ring" if times[1] < times[0] else "tree", *times)


def choose_chunk(nodes, chunk_bytes=0, depth=0):
    """(chunk_bytes, pipeline_depth) as the library resolves them (hfreduce inter_node::plan_chunks;
    docs/hfreduce.md "Chunk size and depth" is authoritative): a value given is kept; chunk 0 =
    1 MiB on one node, 256 KiB on several; depth 0 = 4 MiB of slots / chunk, clamped to 2..4 on one
    node and 2..16 on several."""
    multi = nodes > 1
    chunk = chunk_bytes or (MULTI_NODE_CHUNK if multi else SINGLE_NODE_CHUNK)
    if not depth:
        top = MULTI_NODE_MAX_DEPTH if multi else SINGLE_NODE_MAX_DEPTH
        depth = min(max(SLOT_BYTES // chunk, MIN_DEPTH), top)
    return int(chunk), int(depth)


def call_chunk(size, chunk_bytes):
    """C of the rule for one call: the chunk rounded up to 512 B, no more than the message."""
    aligned = -(-int(chunk_bytes) // CALL_CHUNK_ALIGN) * CALL_CHUNK_ALIGN
    return min(int(size), aligned)


def split_algorithm(name, bases):
    """'hfreduce_ring' -> ('hfreduce', 'ring'); 'hfreduce' -> ('hfreduce', 'auto'); None when the
    name is no base of `bases` with an optional _tree / _ring suffix."""
    for option in ("tree", "ring"):
        base = name[: -len(option) - 1] if name.endswith("_" + option) else None
        if base in bases:
            return base, option
    return (name, "auto") if name in bases else None
