"""Allreduce time models: HFReduce (tree or ring between nodes, with and without the NVLink pair
stage), NCCL ring and tree, and the Open MPI ring and HFReduce on the emulated cluster (all model
output, no measurement).

Every algorithm is described by the traffic it puts on each resource of the busiest node, in bytes
per byte of the per-GPU buffer S (a "load"), and the resource bandwidths of the cluster
description. The bandwidth term is the slowest resource:

    lambda = max_r load_r / bandwidth_r            (seconds per byte of S)
    T      = S * lambda / efficiency + pipeline fill + latency

algbw = S / T and busbw = algbw * 2(n-1)/n with n = total ranks (the nccl-tests definitions; GB =
1e9 B). Resources (per node unless said otherwise): host memory (practical bandwidth), the most
loaded PCIe root port (both directions together, `root_port_duplex_gbs`, and each direction), one
GPU's PCIe link, GPU->NIC and GPU->GPU peer-to-peer, the NICs, NVLink.

HFReduce loads (sec. 2 of fire-flyer.md; per node, g GPUs, tree roles from sim.double_tree):
    memory  g (D2H writes) + g (reduce reads) + 1 (write) + send + recv + recv_reduce (add reads)
            + h2d reads (numa_nodes with GDRCopy, g with memcpy)          = 24 for large trees
    with the NVLink pair stage each GPU hands S/2 to the CPU and gets S/2 back: 4+4+1+5+2 = 16
    port    gpus_per_root_port x (d2h + h2d per GPU) over root_port_duplex_gbs
    NIC     send (2 for interior+leaf nodes, 1 on two nodes) over nics x rate x efficiency
Pipeline (sim.closed_form_tree_allreduce, checked against the discrete-event simulation):
    each stage of a node runs at the rate its most loaded resource allows for the whole node;
    t_in / t_out / t_red = one tree-chunk (chunk/2) through copy-in / copy-out / one child's add,
    tau = one tree-chunk on the NIC; P = the busiest stage's time per chunk;
    T = (chunks - 1) P + 2 t_in + t_out + D (hop + 2 t_red) + D hop,  hop = tau (2 + rho) + latency
    (D = depth of the deeper tree, rho = NIC utilisation). The fill grows with D = log2(nodes).
HFReduce ring (the library's other inter-node algorithm): the same node stages; send = recv =
    2(n-1)/n, recv_reduce = (n-1)/n; latency 2(n-1) steps; at most `depth` chunks in flight
    (sim.closed_form_ring_allreduce). `hfreduce` = the library's default: the rule of
    models/inter_node.py picks tree or ring per call; `hfreduce_tree` / `hfreduce_ring` force one.
NCCL ring: every GPU sends and receives 2(N-1)/N per byte over PCIe P2P (or NVLink); the NIC reads
    it from a GPU by P2P; latency = base + 2(N-1) steps (NCCL's tuning model constants).
NCCL tree: an intra-node chain (each GPU sends S up and S down) and the double binary tree between
    nodes; latency = 2 ((g-1) intra + floor(log2 nodes) inter) (NCCL's tuning model).
"nccl" is the faster of the two under this model (NCCL's tuner picks by its own estimate).
"""
import math

from ffbench.launch import emu
from ffbench.models.cluster import ClusterError
from ffbench.models.inter_node import (INTER_NODE_OPTIONS, call_chunk, choose_chunk,
                                      hfreduce_inter_node_choice, split_algorithm)
from ffbench.models.sim import (closed_form_ring_allreduce, closed_form_tree_allreduce, double_tree,
                                simulate_ring_allreduce, simulate_tree_allreduce, tree_depth,
                                tree_parents)

GB = 1e9
MIB = 1 << 20
PAPER_SIZE = 192937984  # 46 x 2^20 fp32 (sec. 4)

# HFReduce as the library runs it by default (inter-node auto), or with _tree / _ring forced
HFREDUCE_BASES = ("hfreduce", "hfreduce_nvlink")


def _with_forced(bases):
    return tuple(f"{b}{suffix}" for b in bases for suffix in ("", "_tree", "_ring"))


ALGORITHMS = _with_forced(HFREDUCE_BASES) + ("nccl_ring", "nccl_tree", "nccl")
EMU_ALGORITHMS = _with_forced(("hfreduce_emu",)) + ("mpi_ring",)


def busbw_factor(nranks):
    return 2.0 * (nranks - 1) / nranks if nranks > 1 else 0.0


def _tree_roles(n):
    """Busiest per-node tree roles (units of S) and the depth of the deeper tree."""
    if n == 1:
        return {"send": 0.0, "recv": 0.0, "recv_reduce": 0.0}, 0
    _trees, roles = double_tree(n)
    depth = max(tree_depth(tree_parents(n, 0)), tree_depth(tree_parents(n, 1)))
    return {k: max(r[k] for r in roles) for k in ("send", "recv", "recv_reduce")}, depth


def _nodes_for(cluster, gpus):
    g = cluster.gpus_per_node
    if gpus < 1 or gpus % g:
        raise ClusterError(f"--gpus {gpus}: must be a positive multiple of gpus_per_node = {g} "
                           f"({cluster.where})")
    return gpus // g


def _gbs(cluster, key, purpose):
    return cluster.req(key, purpose) * GB


def _nic_bw(cluster, purpose):
    """Bytes/s of all compute NICs of one node, at their efficiency."""
    nics = cluster.req("nics.per_node", purpose)
    rate = cluster.req("nics.gbit", purpose) * 1e9 / 8
    return nics * rate * cluster.get("nics.efficiency", 1.0)


def _bottleneck(resources):
    """resources: {name: (load per byte of S, bandwidth B/s)} -> (lambda, name)."""
    best, name = 0.0, "none"
    for r, (load, bw) in resources.items():
        if load <= 0:
            continue
        t = load / bw
        if t > best:
            best, name = t, r
    return best, name


def _result(algorithm, cluster, gpus, n, size, lam, bottleneck, eff, fill, latency, resources,
            extra=None):
    t_bw = size * lam / eff
    time = t_bw + fill + latency
    algbw = size / time / GB
    out = {
        "algorithm": algorithm, "cluster": cluster.name, "gpus": gpus, "nodes": n, "size": size,
        "time_s": time, "t_bandwidth_s": t_bw, "t_fill_s": fill, "t_latency_s": latency,
        "algbw": algbw, "busbw": algbw * busbw_factor(gpus), "bottleneck": bottleneck,
        "ceiling_algbw": 1.0 / lam / GB if lam > 0 else math.inf,
        "efficiency": eff,
        "loads": {r: {"load": ld, "gbs": bw / GB, "algbw_limit": (bw / ld / GB) if ld > 0 else None}
                  for r, (ld, bw) in resources.items()},
    }
    if extra:
        out.update(extra)
    return out


# ---- HFReduce ---------------------------------------------------------------------------------

def _ring_roles(n):
    """The ring's per-node traffic in units of S: 2(n-1)/n out and in, (n-1)/n of it added."""
    f = busbw_factor(n)
    return {"send": f, "recv": f, "recv_reduce": f / 2}


def inter_node_roles(n, inter_node):
    """(roles, hops): roles in units of S; hops = tree depth (tree) or 2(n-1) steps (ring)."""
    if inter_node == "ring" and n > 1:
        return _ring_roles(n), 2 * (n - 1)
    return _tree_roles(n)


def hfreduce_chunk(cluster, n):
    """(chunk bytes, pipeline depth, source) of the modelled call: the description's
    allreduce.hfreduce.chunk_mib and pipeline_depth play --chunk-size and --depth; absent (or
    'auto'), the library's own choice (inter_node.choose_chunk)."""
    value = cluster.get("allreduce.hfreduce.chunk_mib")
    depth = cluster.get("allreduce.hfreduce.pipeline_depth") or 0
    if value is None or value == "auto":
        return (*choose_chunk(n, 0, depth), "auto")
    return (*choose_chunk(n, int(round(value * MIB)), depth), "description")


def hfreduce_rule_link(cluster, purpose):
    """The rule's link on a real cluster: (alpha s, B B/s) = nics.latency_us, one NIC's
    nics.gbit x nics.efficiency (what the library measures between two leaders)."""
    rate = cluster.req("nics.gbit", purpose) * 1e9 / 8 * cluster.get("nics.efficiency", 1.0)
    return cluster.get("nics.latency_us", 0.0) * 1e-6, rate


def decide_inter_node(n, size, option, latency_s, link_Bps, chunk):
    """The rule for one modelled call -> (algorithm, details for the result)."""
    c = call_chunk(size, chunk)
    choice = hfreduce_inter_node_choice(n, size, latency_s, link_Bps, c, 0, option)
    details = {"inter_node": choice.choice, "inter_node_option": option}
    if n > 1:
        details["inter_node_rule"] = {
            "t_tree_us": choice.t_tree_s * 1e6, "t_ring_us": choice.t_ring_s * 1e6,
            "latency_us": latency_s * 1e6, "gbps": link_Bps / GB, "chunk_bytes": c,
            "rule_choice": "ring" if choice.t_ring_s < choice.t_tree_s else "tree"}
    return choice.choice, details


def hfreduce_loads(cluster, n, nvlink=False, purpose="the hfreduce model", inter_node="tree"):
    """Per-node resource loads of HFReduce and the stage each belongs to."""
    g = cluster.gpus_per_node
    roles, hops = inter_node_roles(n, inter_node)
    share = 0.5 if nvlink else 1.0     # data each GPU hands to / gets back from the CPU
    h2d_mode = cluster.get("allreduce.hfreduce.h2d", "gdrcopy")
    numa = cluster.get("host_memory.numa_nodes", 1)
    h2d_reads = min(numa, g) if h2d_mode == "gdrcopy" else g * share
    mem = (g * share + g * share + 1.0 + roles["send"] + roles["recv"] + roles["recv_reduce"]
           + h2d_reads)
    port_n = cluster.req("pcie.gpus_per_root_port", purpose)
    h2d_gbs = cluster.get("pcie.gdrcopy_h2d_gbs") if h2d_mode == "gdrcopy" else None
    res = {
        "host memory": (mem, _gbs(cluster, "host_memory.practical_gbs", purpose)),
        "PCIe root port (both directions)": (port_n * 2 * share,
                                             _gbs(cluster, "pcie.root_port_duplex_gbs", purpose)),
        "PCIe root port (one direction)": (port_n * share, _gbs(cluster, "pcie.root_port_gbs", purpose)),
        "GPU PCIe D2H": (share, _gbs(cluster, "pcie.gpu_d2h_gbs", purpose)),
        "GPU PCIe H2D": (share, (h2d_gbs * GB) if h2d_gbs else _gbs(cluster, "pcie.gpu_h2d_gbs", purpose)),
    }
    if n > 1:
        res["NIC"] = (max(roles["send"], roles["recv"]), _nic_bw(cluster, purpose))
    if nvlink:
        topo = cluster.get("nvlink.topology")
        if topo is None:
            raise ClusterError(f"{cluster.where}: missing key 'nvlink.topology' (pairs or nvswitch); "
                               f"hfreduce_nvlink needs an NVLink description")
        # pair stage: send half to the partner, get half back (reduce-scatter + allgather in a pair)
        res["NVLink"] = (0.5 + 0.5, cluster.req("nvlink.gbs", purpose) * GB / 2)
    stages = {
        "in": ("host memory", "PCIe root port (both directions)", "PCIe root port (one direction)",
               "GPU PCIe D2H", "NVLink"),
        "out": ("host memory", "PCIe root port (both directions)", "PCIe root port (one direction)",
                "GPU PCIe H2D", "NVLink"),
        "red": ("host memory",),
    }
    return res, stages, roles, hops


def _stage_lambda(res, names):
    return max((res[r][0] / res[r][1] for r in names if r in res and res[r][0] > 0), default=0.0)


def pipeline_inputs(n, size, chunk, inter_node, bw, latency, lam_in, lam_red, lam_out, eff,
                    depth=None):
    """Stage times of one pipeline piece for the closed forms and the simulations (models/sim.py):
    the tree moves chunk/2 per tree and adds a child's half-chunk; the ring moves the whole chunk
    through copy-in/out, adds one n-th of it per reduce-scatter step and has at most `depth`
    chunks in flight (the library's window; the tree's is not modelled, docs/models.md)."""
    chunk = min(chunk, size)
    ring = inter_node == "ring"
    piece = float(chunk) if ring else chunk / 2.0
    added = chunk / max(n, 1) if ring else piece
    pipe = {"n": n, "chunks": max(1, math.ceil(size / chunk)), "chunk_bytes": piece, "bw": bw,
            "latency": latency, "t_in": piece * lam_in / eff, "t_red": added * lam_red / eff,
            "t_out": piece * lam_out / eff}
    if ring:
        pipe["depth"] = depth
    return pipe


def ring_window_binds(pipe):
    """True when the ring's window (depth chunks in flight, each 2(n-1) dependent steps round the
    ring) and not a resource sets its period (sim.closed_form_ring_allreduce)."""
    n, depth = pipe["n"], pipe.get("depth")
    if n < 2 or not depth:
        return False
    tau = pipe["chunk_bytes"] / n / pipe["bw"]
    chain = 2 * (n - 1) * (tau + pipe["latency"]) + (n - 1) * pipe["t_red"]
    return chain / depth > max(pipe["t_in"], pipe["t_out"], (n - 1) * pipe["t_red"], 2 * (n - 1) * tau)


def pipeline_time(pipe, inter_node, size, burst_bytes=None):
    """Pipelined time for `size` bytes: the closed form, or the simulation when burst_bytes is
    given (None: closed form); scaled from whole chunks to the exact size."""
    ring = inter_node == "ring"
    if burst_bytes is None:
        t = (closed_form_ring_allreduce if ring else closed_form_tree_allreduce)(**pipe)
    elif ring:
        t = simulate_ring_allreduce(**pipe, burst_bytes=burst_bytes)
    else:
        t = simulate_tree_allreduce(**pipe, burst_bytes=burst_bytes)
    whole = pipe["chunks"] * pipe["chunk_bytes"] * (1 if ring else 2)
    return t * size / whole


def _hfreduce_inputs(cluster, n, size, nvlink, purpose, inter_node, chunk, depth):
    """Loads and the pipeline piece for one HFReduce call (shared by the closed form and the DES)."""
    res, stages, roles, hops = hfreduce_loads(cluster, n, nvlink, purpose, inter_node)
    eff = cluster.get("allreduce.hfreduce.efficiency", 1.0)
    lam_in, lam_out, lam_red = (_stage_lambda(res, stages[k]) for k in ("in", "out", "red"))
    nic_bw = res["NIC"][1] if "NIC" in res else 1.0
    pipe = pipeline_inputs(n, size, chunk, inter_node, nic_bw * eff,
                           cluster.get("nics.latency_us", 0.0) * 1e-6, lam_in, lam_red, lam_out, eff,
                           depth)
    return res, roles, hops, eff, pipe


def hfreduce(cluster, gpus, size=PAPER_SIZE, nvlink=False, simulate=False, inter_node="auto"):
    """HFReduce as the library runs it: inter_node "auto" (the rule, models/inter_node.py), or
    "tree" / "ring" forced; the chunk from hfreduce_chunk."""
    base = "hfreduce_nvlink" if nvlink else "hfreduce"
    name = base if inter_node == "auto" else f"{base}_{inter_node}"
    purpose = f"the {name} model"
    n = _nodes_for(cluster, gpus)
    chunk, depth, chunk_source = hfreduce_chunk(cluster, n)
    algorithm, details = decide_inter_node(n, size, inter_node, *hfreduce_rule_link(cluster, purpose),
                                           chunk)
    res, roles, hops, eff, pipe = _hfreduce_inputs(cluster, n, size, nvlink, purpose, algorithm,
                                                   chunk, depth)
    lam, bottleneck = _bottleneck(res)
    if algorithm == "ring" and ring_window_binds(pipe):
        bottleneck += f"; the ring's window binds ({depth} chunks in flight)"
    t_pipe = pipeline_time(pipe, algorithm, size)
    t_bw = size * lam / eff
    lat_total = (hops if algorithm == "ring" else 2 * hops) * pipe["latency"]
    details.update({"chunk_bytes": min(chunk, size), "chunk_source": chunk_source,
                    "pipeline_depth": depth, "roles": roles, "pipeline": pipe,
                    ("ring_steps" if algorithm == "ring" else "tree_depth"): hops})
    out = _result(name, cluster, gpus, n, size, lam, bottleneck, eff,
                  max(0.0, t_pipe - t_bw - lat_total), lat_total, res, details)
    if simulate:
        out["simulated"] = simulate_hfreduce(cluster, gpus, size, nvlink, algorithm)
    return out


SIMULATE_MAX_TRANSFERS = 200_000    # the ring DES moves n x chunks x 2(n-1) segments


def simulate_hfreduce(cluster, gpus, size=PAPER_SIZE, nvlink=False, inter_node="tree"):
    """The same HFReduce case through the discrete-event simulation (models/sim.py); None for a
    ring too large to simulate here (n x chunks x 2(n-1) > SIMULATE_MAX_TRANSFERS)."""
    import time as _time
    n = _nodes_for(cluster, gpus)
    chunk, depth, _source = hfreduce_chunk(cluster, n)
    *_unused, pipe = _hfreduce_inputs(cluster, n, size, nvlink, "the hfreduce simulation",
                                      inter_node, chunk, depth)
    if inter_node == "ring" and n * pipe["chunks"] * 2 * (n - 1) > SIMULATE_MAX_TRANSFERS:
        return None
    start = _time.perf_counter()
    t = pipeline_time(pipe, inter_node, size, burst_bytes=0)
    return {"time_s": t, "algbw": size / t / GB, "busbw": size / t / GB * busbw_factor(gpus),
            "wall_s": _time.perf_counter() - start, "chunks": pipe["chunks"]}


# ---- NCCL ----------------------------------------------------------------------------------

def _nccl_latency(cluster, key, default):
    return cluster.get(f"allreduce.nccl.{key}", default) * 1e-6


def _intra_hop_bw(cluster, purpose):
    if cluster.get("nvlink.topology") == "nvswitch":
        return cluster.req("nvlink.gbs", purpose) * GB / 2, "NVLink"
    return _gbs(cluster, "pcie.gpu_gpu_p2p_gbs", purpose), "GPU-GPU P2P"


def nccl_ring(cluster, gpus, size=PAPER_SIZE):
    purpose = "the nccl_ring model"
    n = _nodes_for(cluster, gpus)
    g = cluster.gpus_per_node
    N = gpus
    f = busbw_factor(N)                         # bytes each GPU sends (and receives) per byte of S
    nics = cluster.req("nics.per_node", purpose)
    intra_bw, intra_name = _intra_hop_bw(cluster, purpose)
    port_n = cluster.req("pcie.gpus_per_root_port", purpose)
    res = {}
    if g > 1:
        res[intra_name] = (f, intra_bw)
    if intra_name != "NVLink":
        res["PCIe root port (both directions)"] = (port_n * 2 * f,
                                                   _gbs(cluster, "pcie.root_port_duplex_gbs", purpose))
    if n > 1:
        res["GPU->NIC P2P"] = (f / nics, _gbs(cluster, "pcie.gpu_nic_p2p_gbs", purpose))
        res["NIC"] = (f, _nic_bw(cluster, purpose))
    lam, bottleneck = _bottleneck(res)
    eff = cluster.get("allreduce.nccl.efficiency", 1.0)
    steps = 2 * (N - 1)
    latency = _nccl_latency(cluster, "ring_base_latency_us", 8.4) + \
        steps * _nccl_latency(cluster, "ring_step_latency_us", 6.6)
    return _result("nccl_ring", cluster, gpus, n, size, lam, bottleneck, eff, 0.0, latency, res,
                   {"steps": steps})


def nccl_tree(cluster, gpus, size=PAPER_SIZE):
    purpose = "the nccl_tree model"
    n = _nodes_for(cluster, gpus)
    g = cluster.gpus_per_node
    nics = cluster.req("nics.per_node", purpose)
    roles, depth = _tree_roles(n)
    intra_bw, intra_name = _intra_hop_bw(cluster, purpose)
    port_n = cluster.req("pcie.gpus_per_root_port", purpose)
    res = {}
    if g > 1:
        res[intra_name] = (2.0, intra_bw)      # S up the chain and S down it
    if intra_name != "NVLink":
        res["PCIe root port (both directions)"] = (port_n * 4.0,
                                                   _gbs(cluster, "pcie.root_port_duplex_gbs", purpose))
    if n > 1:
        res["GPU->NIC P2P"] = (roles["send"] / nics, _gbs(cluster, "pcie.gpu_nic_p2p_gbs", purpose))
        res["NIC"] = (max(roles["send"], roles["recv"]), _nic_bw(cluster, purpose))
    lam, bottleneck = _bottleneck(res)
    eff = cluster.get("allreduce.nccl.efficiency", 1.0)
    levels = int(math.log2(n)) if n > 1 else 0
    latency = 2 * ((g - 1) * _nccl_latency(cluster, "tree_intra_latency_us", 28)
                   + levels * _nccl_latency(cluster, "tree_inter_latency_us", 50))
    return _result("nccl_tree", cluster, gpus, n, size, lam, bottleneck, eff, 0.0, latency, res,
                   {"tree_depth": depth})


def nccl(cluster, gpus, size=PAPER_SIZE):
    ring, tree = nccl_ring(cluster, gpus, size), nccl_tree(cluster, gpus, size)
    best = dict(ring if ring["time_s"] <= tree["time_s"] else tree)
    best["chosen"] = best["algorithm"]
    best["algorithm"] = "nccl"
    best["bottleneck"] = f"{best['chosen'].split('_')[1]}: {best['bottleneck']}"
    return best


def predict(cluster, algorithm, gpus, size=PAPER_SIZE, simulate=False):
    """One model point: dict with time_s, algbw, busbw (GB/s), bottleneck, terms, loads; HFReduce
    points also say which inter-node algorithm ran ("inter_node") and the rule's two times."""
    hf = split_algorithm(algorithm, HFREDUCE_BASES)
    if hf:
        return hfreduce(cluster, gpus, size, nvlink=hf[0] == "hfreduce_nvlink", simulate=simulate,
                        inter_node=hf[1])
    if algorithm == "nccl_ring":
        return nccl_ring(cluster, gpus, size)
    if algorithm == "nccl_tree":
        return nccl_tree(cluster, gpus, size)
    if algorithm == "nccl":
        return nccl(cluster, gpus, size)
    emu_hf = split_algorithm(algorithm, ("hfreduce_emu",))
    if algorithm == "mpi_ring" or emu_hf:
        return predict_emu(cluster, gpus // cluster.gpus_per_node,
                           "mpi" if algorithm == "mpi_ring" else "hfreduce", size,
                           inter_node=emu_hf[1] if emu_hf else "auto")
    raise ClusterError(f"--algorithms: unknown algorithm {algorithm!r} (choose from "
                       f"{', '.join(ALGORITHMS + EMU_ALGORITHMS)})")


# ---- the emulated cluster --------------------------------------------------------------------

def emu_parameters(cluster, membw_gbs=None, link_gbit=None):
    purpose = "the emulated-cluster model (predict_emu)"
    out = {
        "membw": (membw_gbs or cluster.req("host_memory.practical_gbs", purpose)) * GB,
        "link": (link_gbit or cluster.get("emulation.link_gbit") or cluster.req("nics.gbit", purpose))
        * 1e9 / 8,
        "tcp_eff": cluster.get("emulation.tcp_efficiency", cluster.get("nics.efficiency", 1.0)),
        "latency": cluster.get("emulation.link_latency_us", cluster.get("nics.latency_us", 0.0)) * 1e-6,
        "copies": cluster.get("emulation.copies_per_network_byte", 4.0),
        "shared": bool(cluster.get("emulation.shared_host", False)),
    }
    # tc tbf's bucket: what `ffbench emu up` configures for this rate unless the description says
    burst = cluster.get("emulation.tbf_burst_bytes")
    out["burst"] = float(burst) if burst is not None else float(emu.burst_for_bits(out["link"] * 8))
    return out


EMU_SIMULATE_MAX_NODES = 64
EMU_SIMULATE_MAX_CHUNKS = 1024


def predict_emu(cluster, nnodes, backend="hfreduce", size=64 * MIB, membw_gbs=None, link_gbit=None,
                ranks_per_node=None, inter_node="auto"):
    """Predicted allreduce on the emulated cluster (namespaces on one host, shaped links).

    backend "mpi": Open MPI's ring for large messages; "hfreduce": HFReduce over MPI/TCP with host
    memcpy copy-in/copy-out, its inter-node algorithm by the rule (inter_node "auto": alpha =
    emulation.link_latency_us, B = the shaped rate x emulation.tcp_efficiency) or forced ("tree",
    "ring": what a measured row says it ran). Host memory is shared by all nodes when
    emulation.shared_host is true, so per-node memory loads are multiplied by nnodes. Kernel TCP
    copies add emulation.copies_per_network_byte bytes of memory traffic per byte sent+received.
    """
    p = emu_parameters(cluster, membw_gbs, link_gbit)
    g = ranks_per_node or cluster.gpus_per_node
    n = int(nnodes)
    if n < 1:
        raise ClusterError(f"nnodes must be >= 1, got {nnodes}")
    fake = cluster.with_values({"nodes": n, "gpus_per_node": g})
    if backend == "mpi":
        return _emu_mpi_ring(cluster, fake, p, n, g, size)
    if backend != "hfreduce":
        raise ClusterError(f"backend {backend!r}: predict_emu knows 'mpi' and 'hfreduce'")
    if inter_node not in INTER_NODE_OPTIONS:
        raise ClusterError(f"inter_node {inter_node!r}: predict_emu knows "
                           f"{', '.join(INTER_NODE_OPTIONS)}")
    return _emu_hfreduce(cluster, fake, p, n, g, size, inter_node)


def _emu_mpi_ring(cluster, fake, p, n, g, size):
    N = n * g
    share = n if p["shared"] else 1
    f = busbw_factor(N)
    inter = f if n > 1 else 0.0                 # bytes a node sends over its link, per byte of S
    intra = (g - 1) * f if g > 1 else 0.0       # ring hops inside a node (shared memory copies)
    mem_node = g * (f / 2) * 3 + p["copies"] * inter + 2 * intra
    res = {"host memory": (mem_node * share, p["membw"])}
    if n > 1:
        res["link"] = (inter, p["link"] * p["tcp_eff"])
    lam, bottleneck = _bottleneck(res)
    eff = cluster.get("allreduce.mpi.efficiency", 1.0)
    step = cluster.get("allreduce.mpi.step_latency_us", p["latency"] * 1e6) * 1e-6
    return _result("mpi_ring", fake, N, n, size, lam, bottleneck, eff, 0.0, 2 * (N - 1) * step,
                   res, {"emulated": True})


def _emu_hfreduce(cluster, fake, p, n, g, size, option):
    share = n if p["shared"] else 1
    link_bw = p["link"] * p["tcp_eff"]
    latency = p["latency"]
    chunk, depth, chunk_source = hfreduce_chunk(cluster, n)
    algorithm, details = decide_inter_node(n, size, option, latency, link_bw, chunk)
    roles, hops = inter_node_roles(n, algorithm)
    mem_node = (2 * g + g + 1 + p["copies"] / 2 * (roles["send"] + roles["recv"])
                + roles["recv_reduce"] + 2 * g)
    res = {"host memory": (mem_node * share, p["membw"])}
    if n > 1:
        res["link"] = (max(roles["send"], roles["recv"]), link_bw)
    lam, bottleneck = _bottleneck(res)
    eff = cluster.get("allreduce.hfreduce.efficiency", 1.0)
    lam_mem = res["host memory"][0] / res["host memory"][1]
    pipe = pipeline_inputs(n, size, chunk, algorithm, link_bw * eff, latency, lam_mem, lam_mem,
                           lam_mem, eff, depth)
    if algorithm == "ring" and ring_window_binds(pipe):
        bottleneck += f"; the ring's window binds ({depth} chunks in flight)"
    # A few nodes: simulate the pipeline (exact for the model's stages, milliseconds to run); the
    # closed form's hop term (2 + rho transfers per hop) is written for NIC-bound clusters at scale
    # and over-states the fill of a handful of link-bound nodes (6 nodes, 4 MiB: -22% vs -8% measured).
    if algorithm == "ring":
        small = n <= EMU_SIMULATE_MAX_NODES and \
            n * pipe["chunks"] * 2 * (n - 1) <= SIMULATE_MAX_TRANSFERS
    else:
        small = n <= EMU_SIMULATE_MAX_NODES and pipe["chunks"] <= EMU_SIMULATE_MAX_CHUNKS
    # the simulation also knows the links' token buckets
    t_pipe = pipeline_time(pipe, algorithm, size, burst_bytes=p["burst"] if small else None)
    t_bw = size * lam / eff
    lat_total = (hops if algorithm == "ring" else 2 * hops) * latency
    details.update({"emulated": True, "chunk_bytes": min(chunk, size), "chunk_source": chunk_source,
                    "pipeline_depth": depth, "pipeline": pipe,
                    ("ring_steps" if algorithm == "ring" else "tree_depth"): hops,
                    "pipeline_model": "simulation" if small else "closed form"})
    name = "hfreduce_emu" if option == "auto" else f"hfreduce_emu_{option}"
    return _result(name, fake, n * g, n, size, lam, bottleneck, eff,
                   max(0.0, t_pipe - t_bw - lat_total), lat_total, res, details)
