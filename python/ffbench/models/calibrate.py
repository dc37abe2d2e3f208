"""Fit a cluster description's machine parameters to measured results (ffbench HDF5 files).

What is read (results/SCHEMA.md; the reading is tolerant and says what it expected when it fails):
  membw_bench  run attrs program = "membw_bench", table `membw`: columns `bandwidth` (GB/s) and
               optionally `kernel` ("copy", "add", ...) and `threads`. Sets
               host_memory.practical_gbs = the best `copy` bandwidth (else the best of any kernel):
               STREAM-style kernels count bytes read plus bytes written, as the traffic model does.
  pcie_bench   table `pcie`: a bandwidth column (`bandwidth`, GB/s) and a test-name column (`test`,
               `mode` or `direction`) whose value names the pattern; optional `gpus` (concurrent
               GPUs). Patterns (case-insensitive substrings):
                   "nic" (GPU->NIC P2P)        -> pcie.gpu_nic_p2p_gbs
                   "p2p" / "gpu_gpu"           -> pcie.gpu_gpu_p2p_gbs
                   "bidir" / "duplex" with gpus >= 2  -> pcie.root_port_duplex_gbs
                   "d2h" with gpus >= 2        -> pcie.root_port_gbs
                   "d2h" / "h2d" with one GPU  -> pcie.gpu_d2h_gbs / pcie.gpu_h2d_gbs
               (the best value of each pattern is taken).
  collectives  table `collective` (size, time in us or algbw in GB/s) with run attrs `nnodes`,
               `nranks`, `backend` ("mpi", "hfreduce", "nccl"). On an emulated cluster (the
               description has an `emulation` section) the fit finds emulation.tcp_efficiency (one
               for all backends) and a per-message latency per backend (allreduce.mpi.
               step_latency_us for mpi, emulation.link_latency_us for hfreduce) by least squares
               on log time; the shaped rate comes from run attr `emu_link_gbit`, else from
               FFB_EMU_LINK_RATE in the run's `environment` attr ("1gbit"), else from the
               description. Elsewhere it fits allreduce.<backend>.efficiency (hfreduce,
               nccl) the same way. HFReduce rows are modelled with the inter-node algorithm
               they ran (hfreduce_algorithm: the row's `algorithm` column, else the run's
               forced --inter-node, else tree for runs older than the option), with the run's
               hfreduce_chunk_bytes and hfreduce_pipeline_depth.
Only sizes >= --min-size (default 1 MiB) are used for collectives: small messages measure software
overheads the model does not describe.
"""
import json
import math
from typing import NamedTuple, Optional

import numpy as np

from ffbench.data import h5io
from ffbench.models.allreduce import predict, predict_emu
from ffbench.models.cluster import ClusterError
from ffbench.models.inter_node import call_chunk, choose_chunk, hfreduce_inter_node_choice

MIN_SIZE = 1 << 20


def _col(table, names, what, run, required=True):
    for n in names:
        if n in table:
            return table[n]
    if required:
        raise ClusterError(f"run {run.id} ({run.attrs.get('program', '?')}): table has no {what} "
                           f"column (expected one of {', '.join(names)}; has {', '.join(sorted(table))})")
    return None


def read_measurements(paths):
    """Group the runs of the given files by what calibration can use."""
    found = {"membw": [], "pcie": [], "collective": []}
    for path in paths:
        try:
            runs = h5io.read_runs(path)
        except h5io.ResultsFileError as exc:
            raise ClusterError(str(exc)) from None
        for run in runs:
            if "membw" in run.tables:
                found["membw"].append(run)
            if "pcie" in run.tables:
                found["pcie"].append(run)
            if "collective" in run.tables:
                found["collective"].append(run)
    if not any(found.values()):
        raise ClusterError(f"{', '.join(paths)}: no table calibration can use (expected `membw` from "
                           f"membw_bench, `pcie` from pcie_bench or `collective` from the allreduce "
                           f"benchmarks; see results/SCHEMA.md)")
    return found


def fit_membw(runs):
    best, kernel_used = 0.0, None
    for run in runs:
        table = run.table("membw")
        bw = np.asarray(_col(table, ("bandwidth", "bw", "gbs"), "bandwidth (GB/s)", run), dtype=float)
        kernels = _col(table, ("kernel", "op"), "kernel", run, required=False)
        if kernels is not None and any(str(k).lower() == "copy" for k in kernels):
            mask = np.array([str(k).lower() == "copy" for k in kernels])
            value, kern = float(np.nanmax(bw[mask])), "copy"
        else:
            value, kern = float(np.nanmax(bw)), "any"
        if value > best:
            best, kernel_used = value, kern
    if best <= 0:
        return {}, []
    return ({"host_memory.practical_gbs": round(best, 3)},
            [("host_memory.practical_gbs", best, f"membw_bench best {kernel_used} bandwidth")])


def fit_pcie(runs):
    best = {}
    for run in runs:
        table = run.table("pcie")
        bw = np.asarray(_col(table, ("bandwidth", "bw", "gbs"), "bandwidth (GB/s)", run), dtype=float)
        names = _col(table, ("test", "mode", "direction", "pattern"), "test name", run)
        gpus = _col(table, ("gpus", "ngpus", "concurrent"), "gpus", run, required=False)
        for i, name in enumerate(names):
            name = str(name).lower()
            k = int(gpus[i]) if gpus is not None else 1
            if "nic" in name:
                key = "pcie.gpu_nic_p2p_gbs"
            elif "p2p" in name or "gpu_gpu" in name:
                key = "pcie.gpu_gpu_p2p_gbs"
            elif ("bidir" in name or "duplex" in name) and k >= 2:
                key = "pcie.root_port_duplex_gbs"
            elif "d2h" in name and k >= 2:
                key = "pcie.root_port_gbs"
            elif "d2h" in name:
                key = "pcie.gpu_d2h_gbs"
            elif "h2d" in name and k == 1:
                key = "pcie.gpu_h2d_gbs"
            else:
                continue
            if np.isfinite(bw[i]) and bw[i] > best.get(key, (0, ""))[0]:
                best[key] = (float(bw[i]), f"pcie_bench '{names[i]}' x{k}")
    return ({k: round(v[0], 3) for k, v in best.items()},
            [(k, v[0], v[1]) for k, v in sorted(best.items())])


class Point(NamedTuple):
    """One measured collective time (out-of-place) with what the model needs to predict it."""
    backend: str
    nnodes: int
    nranks: int
    size: float
    time_s: float
    link_gbit: Optional[float] = None     # shaped link rate: set for emulated-cluster runs only
    mpi_algorithm: Optional[int] = None   # Open MPI coll_tuned_allreduce_algorithm; 0 = its rules
    chunk_bytes: Optional[int] = None     # HFReduce pipeline chunk of the run
    algorithm: Optional[str] = None       # HFReduce: what carried the row (mpi, intra-node, tree,
    #                                       ring); None when the run cannot say (hfreduce_algorithm)
    inter_node_option: Optional[str] = None  # HFReduce --inter-node of the run (None: older run)
    rule_inputs: Optional[tuple] = None   # HFReduce (latency us, GB/s, fallback B) the run recorded
    depth: Optional[int] = None           # HFReduce pipeline depth of the run (chunks in flight)


RING = 4  # Open MPI's coll_tuned_allreduce_algorithm number of the ring, which the model describes


def _mpi_algorithm(run):
    """The allreduce algorithm Open MPI ran with, from the settings mpi_allreduce_bench records
    (read back through MPI_T): 0 when its decision rules chose, None when not recorded."""
    try:
        settings = json.loads(run.attrs.get("mpi_coll_settings") or "null")
    except (TypeError, ValueError):
        return None
    if not isinstance(settings, dict):
        return None
    dynamic = settings.get("coll_tuned_use_dynamic_rules")
    if dynamic is None:   # a bool cvar that MPI_T does not hand out as an int: take the environment
        try:
            env = json.loads(run.attrs.get("environment") or "{}")
        except (TypeError, ValueError):
            env = {}
        dynamic = str(env.get("OMPI_MCA_coll_tuned_use_dynamic_rules", "0")).lower() in ("1", "true")
    if not dynamic:
        return 0
    return int(settings.get("coll_tuned_allreduce_algorithm", 0) or 0)


def hfreduce_algorithm(run, table, i, nnodes):
    """What carried row i of an HFReduce run: the row's `algorithm` column when recorded; else
    what the run's --inter-node forced; runs older than the option ran the tree. None when the
    run chose per size (auto) without saying what it chose."""
    column = table.get("algorithm")
    if column is not None:
        value = column[i]
        return value.decode() if isinstance(value, bytes) else str(value)
    fallback = table.get("fallback")
    if fallback is not None and int(fallback[i]):
        return "mpi"
    if nnodes < 2:
        return "intra-node"
    option = run.attrs.get("hfreduce_inter_node_option")
    if option is None:
        return "tree"
    return str(option) if str(option) in ("tree", "ring") else None


def _hfreduce_rule_inputs(run):
    """(link latency us, link GB/s, fallback bytes) an HFReduce run recorded, or None."""
    lat, gbps = run.attrs.get("hfreduce_link_latency_us"), run.attrs.get("hfreduce_link_gbps")
    if lat is None or gbps is None or float(gbps) <= 0:
        return None
    return float(lat), float(gbps), int(run.attrs.get("hfreduce_fallback_bytes", 0) or 0)


def collective_points(runs, min_size=MIN_SIZE):
    """[Point] from collective runs (out-of-place rows of at least min_size bytes)."""
    points = []
    for run in runs:
        table = run.table("collective")
        size = np.asarray(_col(table, ("size",), "size (B)", run), dtype=float)
        time = _col(table, ("time", "time_mean"), "time (us)", run, required=False)
        if time is not None:
            t = np.asarray(time, dtype=float) * 1e-6
        else:
            algbw = np.asarray(_col(table, ("algbw",), "time or algbw", run), dtype=float)
            t = size / (algbw * 1e9)
        nnodes = run.attrs.get("nnodes")
        nranks = run.attrs.get("nranks")
        backend = run.attrs.get("backend")
        if nnodes is None or nranks is None or backend is None:
            raise ClusterError(f"run {run.id}: collective run attrs must include nnodes, nranks and "
                               f"backend (results/SCHEMA.md)")
        link = _link_gbit(run)
        hf = str(backend) == "hfreduce"
        algorithm = _mpi_algorithm(run) if str(backend) == "mpi" else None
        chunk = run.attrs.get("hfreduce_chunk_bytes")
        depth = run.attrs.get("hfreduce_pipeline_depth")
        option = run.attrs.get("hfreduce_inter_node_option") if hf else None
        rule_inputs = _hfreduce_rule_inputs(run) if hf else None
        placement = table.get("placement")
        for i in range(len(size)):
            if size[i] < min_size or not np.isfinite(t[i]) or t[i] <= 0:
                continue
            if placement is not None and str(placement[i]) != "out-of-place":
                continue
            points.append(Point(str(backend), int(nnodes), int(nranks), float(size[i]), float(t[i]),
                                float(link) if link is not None else None, algorithm,
                                int(chunk) if chunk is not None else None,
                                hfreduce_algorithm(run, table, i, int(nnodes)) if hf else None,
                                str(option) if option is not None else None, rule_inputs,
                                int(depth) if depth is not None else None))
    return points


def emu_comparable(point):
    """Why an emulated-cluster model cannot be held to this point, or None when it can."""
    if point.backend not in ("mpi", "hfreduce"):
        return f"backend {point.backend} (the emulated model knows mpi and hfreduce)"
    if point.link_gbit is None:
        return "not an emulated-cluster run (no shaped link rate recorded)"
    if point.nnodes < 2:
        return "one node (no link crossed)"
    if point.backend == "mpi" and point.mpi_algorithm not in (None, RING):
        return (f"Open MPI allreduce algorithm {point.mpi_algorithm} ({'its decision rules' if point.mpi_algorithm == 0 else 'not the ring'}); "
                f"the model describes the ring (algorithm {RING})")
    if point.backend == "hfreduce":
        return _hfreduce_not_comparable(point.algorithm)
    return None


def _hfreduce_not_comparable(algorithm):
    if algorithm is None:
        return ("HFReduce run with --inter-node auto and no per-row `algorithm` column (cannot "
                "tell tree from ring)")
    if algorithm == "mpi":
        return "HFReduce's MPI_Allreduce fast path (below fallback_bytes; Open MPI's own rules)"
    if "+" in algorithm:
        return (f"HFReduce row whose calls ran several algorithms ({algorithm}); the model "
                f"describes one per row")
    if algorithm not in ("tree", "ring"):
        return f"HFReduce algorithm {algorithm!r} (the model describes tree and ring)"
    return None


def rule_check(point):
    """For an HFReduce row of an --inter-node auto run that recorded its link figures: (what the
    Python rule picks with those inputs, whether the row ran it); None otherwise."""
    if point.backend != "hfreduce" or point.inter_node_option != "auto" or not point.rule_inputs \
            or point.algorithm not in ("mpi", "tree", "ring") or point.nnodes < 2:
        return None
    latency_us, gbps, fallback = point.rule_inputs
    chunk = point.chunk_bytes or choose_chunk(point.nnodes)[0]
    expect = hfreduce_inter_node_choice(point.nnodes, int(point.size), latency_us * 1e-6,
                                        gbps * 1e9, call_chunk(point.size, chunk), fallback).choice
    return expect, expect == point.algorithm


def emu_point_cluster(cluster, point):
    """The description with what the run itself recorded (HFReduce's chunk and depth) filled in."""
    updates = {}
    if point.backend == "hfreduce" and point.chunk_bytes:
        updates["allreduce.hfreduce.chunk_mib"] = point.chunk_bytes / (1 << 20)
    if point.backend == "hfreduce" and point.depth:
        updates["allreduce.hfreduce.pipeline_depth"] = point.depth
    return cluster.with_values(updates) if updates else cluster


def _rate_gbit(value):
    """1, 1.5, "1gbit", "500mbit", "10Gbit" -> Gb/s; None when it is not a rate."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        for suffix, scale in (("gbit", 1.0), ("mbit", 1e-3), ("kbit", 1e-6)):
            if text.endswith(suffix):
                try:
                    return float(text[: -len(suffix)]) * scale
                except ValueError:
                    return None
    return None


def _link_gbit(run):
    """The shaped link rate of an emulated run, from (first found): run attr emu_link_gbit, the
    FFB_EMU_LINK_RATE variable in the `environment` attr (e.g. "1gbit"), an options key."""
    if run.attrs.get("emu_link_gbit") is not None:
        return _rate_gbit(run.attrs["emu_link_gbit"])
    for attr, keys in (("environment", ("FFB_EMU_LINK_RATE",)),
                       ("options", ("emu_link_gbit", "link_gbit", "link_rate", "emu_rate", "rate"))):
        try:
            blob = json.loads(run.attrs.get(attr) or "{}")
        except (TypeError, ValueError):
            continue
        for key in keys:
            if isinstance(blob, dict) and key in blob:
                rate = _rate_gbit(blob[key])
                if rate:
                    return rate
    return None


def emu_predict(cluster, point):
    """predict_emu for one measured point, with the run's own link rate and chunk, and for
    HFReduce the inter-node algorithm the row says it ran (never the model's own guess)."""
    forced = point.algorithm if point.backend == "hfreduce" else None
    if point.backend == "hfreduce" and forced not in ("tree", "ring"):
        raise ClusterError(f"HFReduce point at {point.nnodes} nodes, {int(point.size)} B: "
                           f"{_hfreduce_not_comparable(forced) or 'no inter-node algorithm'}")
    return predict_emu(emu_point_cluster(cluster, point), point.nnodes, point.backend, point.size,
                       link_gbit=point.link_gbit,
                       ranks_per_node=max(1, point.nranks // max(1, point.nnodes)),
                       inter_node=forced or "auto")


def model_algorithm(point):
    """The model algorithm for a measured point on a GPU cluster: HFReduce rows by what they ran."""
    if point.backend == "hfreduce":
        return f"hfreduce_{point.algorithm}" if point.algorithm in ("tree", "ring") else None
    return "nccl" if point.backend == "nccl" else None


def _emu_predict(cluster, point, eff, latency_us):
    key = "allreduce.mpi.step_latency_us" if point.backend == "mpi" else "emulation.link_latency_us"
    c = cluster.with_values({"emulation.tcp_efficiency": eff, key: latency_us})
    return emu_predict(c, point)["time_s"]


def fit_emu(cluster, points):
    """Least squares on log time over tcp efficiency (grid + refine) and latency per backend, on
    the points the model describes (emu_comparable)."""
    points = [p for p in points if emu_comparable(p) is None]
    backends = sorted({p.backend for p in points})
    if not backends:
        return {}, [], None
    pts = {b: [p for p in points if p.backend == b] for b in backends}

    def solve(eff):
        total, lats = 0.0, {}
        for b in backends:
            base = np.array([_emu_predict(cluster, p, eff, 0.0) for p in pts[b]])
            slope = np.array([_emu_predict(cluster, p, eff, 1000.0) for p in pts[b]]) - base
            meas = np.array([p.time_s for p in pts[b]])
            # latency (per 1000 us) minimising squared relative error, clipped at >= 0
            w = 1.0 / meas ** 2
            denom = float(np.sum(w * slope * slope))
            k = max(0.0, float(np.sum(w * slope * (meas - base))) / denom) if denom > 0 else 0.0
            pred = base + k * slope
            total += float(np.sum(np.log(pred / meas) ** 2))
            lats[b] = 1000.0 * k
        return total, lats

    grid = np.linspace(0.05, 1.0, 96)
    scores = [solve(e)[0] for e in grid]
    i = int(np.argmin(scores))
    eff = _golden(lambda e: solve(e)[0], grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)], 30)
    score, lats = solve(eff)
    updates = {"emulation.tcp_efficiency": round(float(eff), 4)}
    report = [("emulation.tcp_efficiency", eff, f"fit to {len(points)} collective points")]
    for b, lat in lats.items():
        key = "allreduce.mpi.step_latency_us" if b == "mpi" else "emulation.link_latency_us"
        updates[key] = round(lat, 2)
        report.append((key, lat, f"fit to {len(pts[b])} {b} points"))
    rms = math.sqrt(score / max(1, len(points)))
    return updates, report, rms


def _golden(f, lo, hi, iters=40):
    for _ in range(iters):
        m1, m2 = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        if f(m1) < f(m2):
            hi = m2
        else:
            lo = m1
    return (lo + hi) / 2


def fit_efficiency(cluster, points):
    """Elsewhere: one efficiency per backend, least squares on log time (golden-section search)."""
    updates, report = {}, []
    for backend in ("hfreduce", "nccl"):
        pts = [p for p in points if p.backend == backend and p.nranks % cluster.gpus_per_node == 0
               and model_algorithm(p)]
        if not pts:
            continue
        key = f"allreduce.{backend}.efficiency"

        def score(eff, pts=pts, key=key):
            c = cluster.with_values({key: float(eff)})
            return sum(math.log(predict(c, model_algorithm(p), p.nranks, p.size)["time_s"] / p.time_s)
                       ** 2 for p in pts)

        grid = np.linspace(0.05, 1.0, 20)
        i = int(np.argmin([score(e) for e in grid]))
        value = _golden(score, grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)])
        updates[key] = round(float(value), 4)
        report.append((key, value, f"fit to {len(pts)} {backend} points"))
    return updates, report


def calibrate(cluster, paths, min_size=MIN_SIZE):
    """Return (calibrated cluster, report rows [(key, value, source)], extra dict)."""
    found = read_measurements(paths)
    updates, report = {}, []
    if found["membw"]:
        u, r = fit_membw(found["membw"])
        updates.update(u)
        report += r
    if found["pcie"]:
        u, r = fit_pcie(found["pcie"])
        updates.update(u)
        report += r
    current = cluster.with_values(updates) if updates else cluster
    extra = {}
    if found["collective"]:
        points = collective_points(found["collective"], min_size)
        if not points:
            raise ClusterError(f"collective runs in {', '.join(paths)} have no out-of-place sizes >= "
                               f"{min_size} B to fit")
        if current.get("emulation") is not None:
            u, r, rms = fit_emu(current, points)
            extra["rms_log_error"] = rms
        else:
            u, r = fit_efficiency(current, points)
        updates.update(u)
        report += r
        extra["points"] = len(points)
    if not updates:
        raise ClusterError("calibration found the tables but nothing to fit in them")
    calibrated = cluster.with_values(updates, name_suffix="(calibrated)")
    extra["updates"] = json.dumps(updates, sort_keys=True)
    return calibrated, report, extra
