"""Allreduce time models: HFReduce (with and without the NVLink pair stage), NCCL ring and tree,
and the Open MPI ring and HFReduce on the emulated cluster (all model output, no measurement).

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
NCCL ring: every GPU sends and receives 2(N-1)/N per byte over PCIe P2P (or NVLink); the NIC reads
    it from a GPU by P2P; latency = base + 2(N-1) steps (NCCL's tuning model constants).
NCCL tree: an intra-node chain (each GPU sends S up and S down) and the double binary tree between
    nodes; latency = 2 ((g-1) intra + floor(log2 nodes) inter) (NCCL's tuning model).
"nccl" is the faster of the two under this model (NCCL's tuner picks by its own estimate).
"""
import math

from ffbench.launch import emu
from ffbench.models.cluster import ClusterError
from ffbench.models.sim import (closed_form_tree_allreduce, double_tree, simulate_tree_allreduce, tree_depth,
                         tree_parents)

GB = 1e9
MIB = 1 << 20
PAPER_SIZE = 192937984  # 46 x 2^20 fp32 (sec. 4)

ALGORITHMS = ("hfreduce", "hfreduce_nvlink", "nccl_ring", "nccl_tree", "nccl")
EMU_ALGORITHMS = ("hfreduce", "mpi_ring")


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

def hfreduce_loads(cluster, n, nvlink=False, purpose="the hfreduce model"):
    """Per-node resource loads of HFReduce and the stage each belongs to."""
    g = cluster.gpus_per_node
    roles, depth = _tree_roles(n)
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
    return res, stages, roles, depth


def _stage_lambda(res, names):
    return max((res[r][0] / res[r][1] for r in names if r in res and res[r][0] > 0), default=0.0)


def _hfreduce_inputs(cluster, n, size, nvlink, purpose):
    """Per-tree-chunk stage times for the tree pipeline (shared by the closed form and the DES)."""
    res, stages, roles, depth = hfreduce_loads(cluster, n, nvlink, purpose)
    eff = cluster.get("allreduce.hfreduce.efficiency", 1.0)
    chunk = min(cluster.get("allreduce.hfreduce.chunk_mib", 4) * MIB, size)
    c_t = chunk / 2.0                                   # each tree carries half of every chunk
    lam_in, lam_out, lam_red = (_stage_lambda(res, stages[k]) for k in ("in", "out", "red"))
    nic_bw = res["NIC"][1] if "NIC" in res else 1.0
    pipe = {
        "n": n, "chunks": max(1, math.ceil(size / chunk)), "chunk_bytes": c_t,
        "bw": nic_bw * eff, "latency": cluster.get("nics.latency_us", 0.0) * 1e-6,
        "t_in": c_t * lam_in / eff, "t_red": c_t * lam_red / eff, "t_out": c_t * lam_out / eff,
    }
    return res, roles, depth, eff, chunk, pipe


def hfreduce(cluster, gpus, size=PAPER_SIZE, nvlink=False, simulate=False):
    purpose = "the hfreduce_nvlink model" if nvlink else "the hfreduce model"
    n = _nodes_for(cluster, gpus)
    res, roles, depth, eff, chunk, pipe = _hfreduce_inputs(cluster, n, size, nvlink, purpose)
    lam, bottleneck = _bottleneck(res)
    # pipelined tree time for chunks x chunk bytes, scaled to the exact size
    t_pipe = closed_form_tree_allreduce(**pipe) * size / (pipe["chunks"] * chunk)
    t_bw = size * lam / eff
    lat_total = 2 * depth * pipe["latency"]
    out = _result("hfreduce_nvlink" if nvlink else "hfreduce", cluster, gpus, n, size, lam, bottleneck,
                  eff, max(0.0, t_pipe - t_bw - lat_total), lat_total, res,
                  {"tree_depth": depth, "chunk_bytes": chunk, "roles": roles, "pipeline": pipe})
    if simulate:
        out["simulated"] = simulate_hfreduce(cluster, gpus, size, nvlink)
    return out


def simulate_hfreduce(cluster, gpus, size=PAPER_SIZE, nvlink=False):
    """The same HFReduce case through the discrete-event simulation (models/sim.py)."""
    import time as _time
    n = _nodes_for(cluster, gpus)
    _res, _roles, _depth, _eff, chunk, pipe = _hfreduce_inputs(cluster, n, size, nvlink,
                                                                "the hfreduce simulation")
    start = _time.perf_counter()
    t = simulate_tree_allreduce(**pipe) * size / (pipe["chunks"] * chunk)
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
    """One model point: dict with time_s, algbw, busbw (GB/s), bottleneck, terms, loads."""
    if algorithm == "hfreduce":
        return hfreduce(cluster, gpus, size, nvlink=False, simulate=simulate)
    if algorithm == "hfreduce_nvlink":
        return hfreduce(cluster, gpus, size, nvlink=True, simulate=simulate)
    if algorithm == "nccl_ring":
        return nccl_ring(cluster, gpus, size)
    if algorithm == "nccl_tree":
        return nccl_tree(cluster, gpus, size)
    if algorithm == "nccl":
        return nccl(cluster, gpus, size)
    if algorithm in ("mpi_ring", "hfreduce_emu"):
        return predict_emu(cluster, gpus // cluster.gpus_per_node,
                           "mpi" if algorithm == "mpi_ring" else "hfreduce", size)
    raise ClusterError(f"--algorithms: unknown algorithm {algorithm!r} (choose from "
                       f"{', '.join(ALGORITHMS + ('mpi_ring', 'hfreduce_emu'))})")


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
                ranks_per_node=None):
    """Predicted allreduce on the emulated cluster (namespaces on one host, shaped links).

    backend "mpi": Open MPI's ring for large messages; "hfreduce": HFReduce over MPI/TCP with host
    memcpy copy-in/copy-out. Host memory is shared by all nodes when emulation.shared_host is true,
    so per-node memory loads are multiplied by nnodes. Kernel TCP copies add
    emulation.copies_per_network_byte bytes of memory traffic per byte sent+received.
    """
    p = emu_parameters(cluster, membw_gbs, link_gbit)
    g = ranks_per_node or cluster.gpus_per_node
    n = int(nnodes)
    if n < 1:
        raise ClusterError(f"nnodes must be >= 1, got {nnodes}")
    N = n * g
    share = n if p["shared"] else 1
    link_bw = p["link"] * p["tcp_eff"]
    latency = p["latency"]
    gpus = N
    fake = cluster.with_values({"nodes": n, "gpus_per_node": g})
    if backend == "mpi":
        f = busbw_factor(N)
        inter = f if n > 1 else 0.0                 # bytes a node sends over its link, per byte of S
        intra = (g - 1) * f if g > 1 else 0.0       # ring hops inside a node (shared memory copies)
        mem_node = g * (f / 2) * 3 + p["copies"] * inter + 2 * intra
        res = {"host memory": (mem_node * share, p["membw"])}
        if n > 1:
            res["link"] = (inter, link_bw)
        lam, bottleneck = _bottleneck(res)
        eff = cluster.get("allreduce.mpi.efficiency", 1.0)
        step = cluster.get("allreduce.mpi.step_latency_us", latency * 1e6) * 1e-6
        return _result("mpi_ring", fake, gpus, n, size, lam, bottleneck, eff, 0.0, 2 * (N - 1) * step,
                       res, {"emulated": True})
    if backend != "hfreduce":
        raise ClusterError(f"backend {backend!r}: predict_emu knows 'mpi' and 'hfreduce'")
    roles, depth = _tree_roles(n)
    mem_node = (2 * g + g + 1 + p["copies"] / 2 * (roles["send"] + roles["recv"])
                + roles["recv_reduce"] + 2 * g)
    res = {"host memory": (mem_node * share, p["membw"])}
    if n > 1:
        res["link"] = (max(roles["send"], roles["recv"]), link_bw)
    lam, bottleneck = _bottleneck(res)
    eff = cluster.get("allreduce.hfreduce.efficiency", 1.0)
    chunk = min(cluster.get("allreduce.hfreduce.chunk_mib", 4) * MIB, size)
    c_t = chunk / 2.0
    lam_mem = res["host memory"][0] / res["host memory"][1]
    pipe = {"n": n, "chunks": max(1, math.ceil(size / chunk)), "chunk_bytes": c_t,
            "bw": link_bw * eff, "latency": latency, "t_in": c_t * lam_mem / eff,
            "t_red": c_t * lam_mem / eff, "t_out": c_t * lam_mem / eff}
    # A few nodes: simulate the pipeline (exact for the model's stages, milliseconds to run); the
    # closed form's hop term (2 + rho transfers per hop) is written for NIC-bound clusters at scale
    # and over-states the fill of a handful of link-bound nodes (6 nodes, 4 MiB: -22% vs -8% measured).
    small = n <= EMU_SIMULATE_MAX_NODES and pipe["chunks"] <= EMU_SIMULATE_MAX_CHUNKS
    if small:   # the simulation also knows the links' token buckets
        t_pipe = simulate_tree_allreduce(**pipe, burst_bytes=p["burst"])
    else:
        t_pipe = closed_form_tree_allreduce(**pipe)
    t_pipe *= size / (pipe["chunks"] * chunk)
    t_bw = size * lam / eff
    lat_total = 2 * depth * latency
    return _result("hfreduce_emu", fake, gpus, n, size, lam, bottleneck, eff,
                   max(0.0, t_pipe - t_bw - lat_total), lat_total, res,
                   {"emulated": True, "tree_depth": depth, "pipeline": pipe,
                    "pipeline_model": "simulation" if small else "closed form"})
