"""Double binary trees and a discrete-event simulation of the pipelined tree allreduce (model).

Trees (the construction the anchors describe for NCCL, written from that description):
    tree 0: in-order binary tree over ranks 0..n-1; a rank's level is its lowest set bit; odd ranks
            are leaves; rank 0 is the root with one child (the largest power of two below n).
    tree 1: the mirror image r -> n-1-r when n is even, the tree shifted by one when n is odd, so
            every leaf of tree 0 is interior in tree 1.

Simulation (simulate_tree_allreduce): each tree carries half of the per-GPU buffer, cut into
`chunks` pieces of `chunk_bytes`. Per node there are five resources:
    d2h   copies chunk k of the local GPUs in and reduces them (t_in per tree-chunk); chunks are
          taken in order, tree 0 then tree 1, as fast as the engine allows
    cpu   adds the partial sums received from children (t_red per child per tree-chunk), FIFO
    tx/rx the NIC ports: a transfer of chunk_bytes occupies the sender's tx for chunk_bytes/bw; its
          bytes reach the receiver `latency` later and drain through the receiver's rx at bw in
          arrival order (two senders into one receiver share its rx: the second finishes later)
    h2d   copies a finished chunk back to the GPUs (t_out per tree-chunk), FIFO
Reduce goes up (a node sends its partial sum once its own chunk and all children's are in),
broadcast comes down (a node forwards to its children, first child first, and copies out).
The result is the time at which the last node has copied the last chunk out.

The event loop is a heap of (time, seq, event) with resources assigned in ready-time order, so each
resource is non-preemptive FIFO. Cost: about 6 events per node per tree-chunk.

The ring (simulate_ring_allreduce, HFReduce's `--inter-node ring`): the node leaders form the ring
0 -> 1 -> ... -> n-1 -> 0; every chunk is cut into n segments of chunk_bytes / n. Reduce-scatter:
at step s (0..n-2) node v sends segment (v - s) mod n to v+1, which adds it to its own (t_red per
segment on its CPU) before sending the sum on at step s+1; allgather: n-1 more steps forward the
finished segments. A node copies the chunk out (t_out) once it holds all n finished segments.
Successive chunks overlap freely, as the tree's do; the same ports (and token buckets) as above.
"""
import heapq


def tree_parents(n, tree=0):
    """parent[r] for every rank (-1 for the root) of tree 0 or tree 1 over n ranks."""
    if n <= 0:
        raise ValueError("n must be >= 1")
    parent0 = [-1] * n
    for r in range(1, n):
        bit = r & -r
        up = (r ^ bit) | (bit << 1)
        if up >= n:
            up = r ^ bit
        parent0[r] = up
    if tree == 0 or n == 1:
        return parent0
    if n % 2 == 0:
        m = [n - 1 - x for x in range(n)]          # node x plays rank m[x] of tree 0
        m_inv = m
    else:
        m = [(x - 1) % n for x in range(n)]
        m_inv = [(y + 1) % n for y in range(n)]
    return [-1 if parent0[m[x]] < 0 else m_inv[parent0[m[x]]] for x in range(n)]


def tree_children(parent):
    children = [[] for _ in parent]
    for r, p in enumerate(parent):
        if p >= 0:
            children[p].append(r)
    for c in children:
        c.sort()
    return children


def tree_depth(parent):
    """Edges from the root to the deepest node."""
    depth = [0] * len(parent)
    best = 0
    for r in range(len(parent)):
        d, x = 0, r
        while parent[x] >= 0:
            x = parent[x]
            d += 1
        depth[r] = d
        best = max(best, d)
    return best


def double_tree(n):
    """Both trees: (parents, children, depth) per tree, and per-node roles in units of S.

    roles[v] = dict(send, recv, recv_reduce): bytes node v sends, receives, and receives in the
    reduce pass (to be added), per byte of the per-GPU buffer S, summed over both trees (each tree
    carries S/2).
    """
    trees = []
    for t in (0, 1):
        parent = tree_parents(n, t)
        trees.append({"parent": parent, "children": tree_children(parent), "depth": tree_depth(parent)})
    roles = []
    for v in range(n):
        send = recv = recv_reduce = 0.0
        for tr in trees:
            kids = len(tr["children"][v])
            up = 1 if tr["parent"][v] >= 0 else 0
            send += 0.5 * (up + kids)          # partial sum up, result down to each child
            recv += 0.5 * (kids + up)          # children's partial sums, result from the parent
            recv_reduce += 0.5 * kids
        roles.append({"send": send, "recv": recv, "recv_reduce": recv_reduce})
    return trees, roles


class _Port:
    """One direction of a link: rate `bw`, optionally behind a token bucket of `burst` bytes (tc
    tbf on the emulated cluster: after an idle spell, up to `burst` bytes leave at once)."""
    __slots__ = ("bw", "burst", "free", "tokens")

    def __init__(self, bw, burst):
        self.bw, self.burst, self.free, self.tokens = bw, burst, 0.0, burst

    def pass_time(self, start, nbytes):
        """Time `nbytes` spend in this port when they reach it at `start` (>= self.free)."""
        if not self.burst:
            return nbytes / self.bw
        tokens = min(self.burst, self.tokens + (start - self.free) * self.bw)
        if tokens >= nbytes:
            self.tokens = tokens - nbytes
            return 0.0
        self.tokens = 0.0
        return (nbytes - tokens) / self.bw


def simulate_tree_allreduce(n, chunks, chunk_bytes, bw, latency, t_in, t_red, t_out, trees=2,
                            burst_bytes=0):
    """Simulated time (s) of a pipelined (double) binary tree allreduce over n nodes.

    chunks: pieces per tree; chunk_bytes: bytes per piece; bw: NIC bytes/s per direction;
    latency: s per message; t_in/t_red/t_out: node service times per piece (see module doc).
    trees: 2 = double binary tree, 1 = tree 0 alone (carrying all the pieces).
    burst_bytes: token bucket of every port (0: none), full at the start.
    """
    if n == 1:
        # no network: pieces go in, get reduced locally, come out
        busy_in = busy_out = 0.0
        for _k in range(chunks * trees):
            busy_in += t_in
            busy_out = max(busy_out, busy_in) + t_out
        return busy_out
    tx_port = [_Port(bw, burst_bytes) for _ in range(n)]
    rx_port = [_Port(bw, burst_bytes) for _ in range(n)]

    def transfer(src, dst, now):
        """Send one piece src -> dst when it is ready at `now`; returns its arrival time."""
        tx, rx = tx_port[src], rx_port[dst]
        start = now if now > tx.free else tx.free
        tx_done = start + tx.pass_time(start, chunk_bytes)
        tx.free = tx_done
        rx_start = start + latency if start + latency > rx.free else rx.free
        arrive = max(tx_done + latency, rx_start + rx.pass_time(rx_start, chunk_bytes))
        rx.free = arrive
        return arrive

    structs = []
    for t in range(trees):
        parent = tree_parents(n, t)
        structs.append((parent, tree_children(parent)))
    cpu_free = [0.0] * n
    h2d_free = [0.0] * n
    # per (tree, node): next chunk index and count of inputs ready for that chunk (own + children)
    need = [[len(structs[t][1][v]) + 1 for v in range(n)] for t in range(trees)]
    have = [[dict() for _ in range(n)] for _ in range(trees)]
    heap = []
    seq = 0
    # event kinds: 0 = input ready (own chunk or a child's partial sum), 1 = reduced (send up or
    # turn around at the root), 2 = result arrived (forward down, copy out)
    for v in range(n):
        for k in range(chunks * trees):
            i, t = divmod(k, trees)
            heap.append(((k + 1) * t_in, seq, 0, t, v, i, 0))
            seq += 1
    heapq.heapify(heap)
    finish = 0.0
    push = heapq.heappush
    pop = heapq.heappop
    while heap:
        now, _s, kind, t, v, i, from_child = pop(heap)
        parent, children = structs[t]
        if kind == 0:
            got = have[t][v].get(i, 0) + 1
            if got < need[t][v]:
                have[t][v][i] = got
                continue
            have[t][v].pop(i, None)
            nkids = need[t][v] - 1
            if nkids:
                start = now if now > cpu_free[v] else cpu_free[v]
                done = start + t_red * nkids
                cpu_free[v] = done
            else:
                done = now
            push(heap, (done, seq, 1, t, v, i, 0))
            seq += 1
        elif kind == 1:
            p = parent[v]
            if p < 0:
                push(heap, (now, seq, 2, t, v, i, 0))
                seq += 1
                continue
            push(heap, (transfer(v, p, now), seq, 0, t, p, i, 1))
            seq += 1
        else:
            for c in children[v]:
                push(heap, (transfer(v, c, now), seq, 2, t, c, i, 0))
                seq += 1
            start = now if now > h2d_free[v] else h2d_free[v]
            h2d_free[v] = start + t_out
            if h2d_free[v] > finish:
                finish = h2d_free[v]
    return finish


def tree_loads_per_chunk(n, trees=2):
    """Busiest node's per-chunk-index work: (children to add, tree-chunks sent, received), depth."""
    if n == 1:
        return 0, 0, 0, 0
    structs = [tree_parents(n, t) for t in range(trees)]
    kids = [tree_children(p) for p in structs]
    add = max(sum(len(k[v]) for k in kids) for v in range(n))
    send = max(sum(len(k[v]) + (1 if p[v] >= 0 else 0) for p, k in zip(structs, kids))
               for v in range(n))
    recv = send  # every node receives what it sends in a tree allreduce (children up, parent down)
    depth = max(tree_depth(p) for p in structs)
    return add, send, recv, depth


def closed_form_tree_allreduce(n, chunks, chunk_bytes, bw, latency, t_in, t_red, t_out, trees=2):
    """Closed-form estimate of simulate_tree_allreduce (same inputs).

    P   = the period of the busiest resource per chunk index (both trees):
          max(trees t_in, trees t_out, adds x t_red, sends x tau, receives x tau), tau = chunk/bw
    T   = (chunks - 1) P + first chunk through the pipeline
        = (chunks - 1) P + trees t_in + t_out + D (hop + 2 t_red) + D hop
    hop = tau (2 + rho) + latency: two transfers serialise at an interior node (two children in,
          two children out) plus queueing that grows with the NIC's utilisation rho = sends tau / P.
    Exact for n = 1; within a few percent of the simulation for many chunks (tests).
    """
    if n == 1:
        return t_in + t_out + (trees * chunks - 1) * max(t_in, t_out)
    tau = chunk_bytes / bw
    add, send, recv, depth = tree_loads_per_chunk(n, trees)
    period = max(trees * t_in, trees * t_out, add * t_red, send * tau, recv * tau)
    rho = max(send, recv) * tau / period
    hop = tau * (2.0 + rho) + latency
    return ((chunks - 1) * period + trees * t_in + t_out + depth * (hop + 2.0 * t_red)
            + depth * hop)


def single_chunk_time_pow2(n, chunk_bytes, bw, latency, t_in, t_red, t_out):
    """Exact time of ONE chunk through tree 0 alone for n = 2^k nodes (k >= 1).

    The root has one child; every other interior node has two, whose transfers serialise on the
    receiver (up) and on the sender (down). Used to check the simulation where both are exact.
    """
    k = n.bit_length() - 1
    if n != 1 << k or k < 1:
        raise ValueError("n must be a power of two >= 2")
    tau = chunk_bytes / bw
    up = (k - 1) * (latency + 2 * tau + 2 * t_red) + (latency + tau + t_red)
    down = (latency + tau) + (k - 1) * (latency + 2 * tau)
    return t_in + up + down + t_out


def simulate_ring_allreduce(n, chunks, chunk_bytes, bw, latency, t_in, t_red, t_out, burst_bytes=0,
                            depth=None):
    """Simulated time (s) of a pipelined ring allreduce over n nodes (module doc).

    chunks: pieces of chunk_bytes each (the whole chunk, not a tree's half); t_in / t_out: a chunk
    through copy-in / copy-out; t_red: adding one received segment (chunk_bytes / n).
    depth: chunks a leader has in flight (the library's pipeline_depth): chunk i starts round the
    ring once chunk i - depth has finished there, and chunks finish in order; None: no limit."""
    if n == 1:
        return simulate_tree_allreduce(1, chunks, chunk_bytes, bw, latency, t_in, t_red, t_out,
                                       trees=1)
    segment = chunk_bytes / n
    tx_port = [_Port(bw, burst_bytes) for _ in range(n)]
    rx_port = [_Port(bw, burst_bytes) for _ in range(n)]
    cpu_free = [0.0] * n
    h2d_free = [0.0] * n
    last_step = 2 * n - 3                       # steps 0..n-2 reduce-scatter, n-1..2n-3 allgather
    held = [dict() for _ in range(n)]           # finished segments of chunk i at node v
    done = [dict() for _ in range(n)]           # finished chunks not yet retired (in order)
    retired = [0] * n
    last_retire = [0.0] * n
    window = chunks if depth is None else max(1, int(depth))
    heap = [((i + 1) * t_in, v * chunks + i, 0, v, i, 0) for v in range(n) for i in range(min(window, chunks))]
    heapq.heapify(heap)
    seq = len(heap)
    finish = 0.0
    while heap:
        now, _s, kind, v, i, step = heapq.heappop(heap)
        if kind == 0:                           # v sends step `step` of chunk i to its successor
            w = (v + 1) % n
            tx, rx = tx_port[v], rx_port[w]
            start = max(now, tx.free)
            tx.free = start + tx.pass_time(start, segment)
            rx_start = max(start + latency, rx.free)
            rx.free = max(tx.free + latency, rx_start + rx.pass_time(rx_start, segment))
            heapq.heappush(heap, (rx.free, seq, 1, w, i, step))
            seq += 1
            continue
        finished = False
        if step < n - 1:                        # reduce-scatter: add, then pass the sum on
            start = max(now, cpu_free[v])
            cpu_free[v] = start + t_red
            heapq.heappush(heap, (cpu_free[v], seq, 0, v, i, step + 1))
            seq += 1
            finished = step == n - 2            # v's own segment is complete
            when = cpu_free[v]
        else:                                   # allgather: keep it, forward unless last
            if step < last_step:
                heapq.heappush(heap, (now, seq, 0, v, i, step + 1))
                seq += 1
            finished, when = True, now
        if not finished:
            continue
        got = held[v].get(i, 0) + 1
        held[v][i] = got
        if got < n:                             # n-1 gathered + its own: the chunk is done
            continue
        del held[v][i]
        done[v][i] = when
        while retired[v] in done[v]:            # retire in order, copy out, admit the next
            k = retired[v]
            last_retire[v] = max(last_retire[v], done[v].pop(k))
            start = max(last_retire[v], h2d_free[v])
            h2d_free[v] = start + t_out
            finish = max(finish, h2d_free[v])
            retired[v] += 1
            nxt = k + window
            if window < chunks and nxt < chunks:
                heapq.heappush(heap, (max((nxt + 1) * t_in, last_retire[v]), seq, 0, v, nxt, 0))
                seq += 1
    return finish


def closed_form_ring_allreduce(n, chunks, chunk_bytes, bw, latency, t_in, t_red, t_out, depth=None):
    """Closed form of simulate_ring_allreduce (same inputs):

    chain = 2(n-1)(tau + latency) + (n-1) t_red      one chunk round the ring, tau = chunk/n / bw
    P     = max(t_in, t_out, (n-1) t_red, 2(n-1) tau, chain / depth)
    T     = (chunks - 1) P + t_in + chain + t_out
    chain / depth: at most `depth` chunks are in flight, so a window of them costs one chain (the
    latency of 2(n-1) dependent steps, which no amount of bandwidth hides). Link-bound with an
    open window this is 2(n-1)/n S / bw + 2(n-1) latency + the node stages' fill: the library's
    T_ring (models/inter_node.py)."""
    if n == 1:
        return closed_form_tree_allreduce(1, chunks, chunk_bytes, bw, latency, t_in, t_red, t_out,
                                          trees=1)
    tau = chunk_bytes / n / bw
    chain = 2 * (n - 1) * (tau + latency) + (n - 1) * t_red
    period = max(t_in, t_out, (n - 1) * t_red, 2 * (n - 1) * tau,
                 chain / depth if depth else 0.0)
    return (chunks - 1) * period + t_in + chain + t_out
