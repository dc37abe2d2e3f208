"""ffbench model: cluster-scale models (model output, never measurements).

    ffbench model allreduce --cluster CLUSTER.yaml [--cluster ...] [--gpus 16,32,...] [--size BYTES]
                            [--algorithms hfreduce,nccl,...] [--calibrate RESULTS.h5 ...]
                            [--write-cluster OUT.yaml] [--compare RESULTS.h5 ...]
                            [--compare-rate RATE ...] [--tolerance 0.15]
                            [--simulate] [--project] [--inter-node-map] [--plot FILE.png]
                            [--output FILE.h5]

Predicts allreduce time, algbw and busbw for HFReduce (with and without the NVLink pair stage) and
NCCL ring/tree from the cluster description's bandwidths (docs/models.md). `hfreduce` is the
library's default: between nodes it runs the double binary tree or the ring, whichever its cost
rule picks per size and node count (the `inter` column says which); `hfreduce_tree` and
`hfreduce_ring` (also `hfreduce_nvlink_*`, `hfreduce_emu_*`) force one. With the paper's
description it prints the comparison with R1-R4 (held to hfreduce_tree: the paper's HFReduce is a
tree); --simulate checks the HFReduce closed forms against the discrete-event simulations;
--inter-node-map prints which algorithm the rule picks per GPU count and size; --calibrate fits
the description to measured results first; --compare prints measured (e.g. the emulated cluster's
sweep) against the model, modelling each HFReduce row with the algorithm it ran, and exits 1 when
a point is outside --tolerance or an auto row ran other than the rule picks.
"""
import argparse
import json
import sys

from ffbench.data import h5io
from ffbench.data.config import parse_size
from ffbench.errors import ClusterError, UsageError
from ffbench.models.allreduce import ALGORITHMS, PAPER_SIZE, SIMULATE_MAX_TRANSFERS
from ffbench.models.calibrate import MIN_SIZE, calibrate
from ffbench.models.cluster import apply_sets, load_cluster, resolve_cluster_path
from ffbench.models.projection import (DEFAULT_GPUS, EMU_DEFAULT_ALGS, PROJECT_GPUS, TOLERANCE,
                                       compare_measured, format_measured, format_model_table,
                                       format_inter_node_map, format_paper_comparison,
                                       h5_tables, inter_node_map, measured_passed, model_rows,
                                       paper_comparison, parse_rates, plot)


def register(subparsers):
    p = subparsers.add_parser("model", help="project allreduce bandwidth to cluster scale (model output)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="model_command", metavar="MODEL")
    sub.required = True
    a = sub.add_parser("allreduce", help="allreduce time/algbw/busbw of HFReduce and NCCL (model)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--cluster", action="append", required=True, metavar="CLUSTER.yaml",
                   help="cluster description (path or name in configs/clusters/); repeatable")
    a.add_argument("--gpus", metavar="LIST",
                   help="GPU counts, comma-separated (default: the paper's points when the "
                        "description has them, else 16,...,1024; on an emulated cluster: nodes 2..N)")
    a.add_argument("--project", action="store_true",
                   help=f"add the projection points {','.join(map(str, PROJECT_GPUS))} (model output)")
    a.add_argument("--size", default=None, metavar="BYTES",
                   help=f"per-GPU buffer in bytes, K/M/G suffixes binary (default {PAPER_SIZE}, the "
                        f"paper's 46 x 2^20 fp32; 64M on an emulated cluster)")
    a.add_argument("--algorithms", metavar="LIST",
                   help=f"comma-separated from {', '.join(ALGORITHMS + EMU_DEFAULT_ALGS)} "
                        f"(default: all the description supports)")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a description key for this run, e.g. "
                        "--set allreduce.hfreduce.chunk_mib=8 (repeatable; for sensitivity studies)")
    a.add_argument("--calibrate", action="append", default=[], metavar="RESULTS.h5",
                   help="fit the description to measured results first (membw_bench, pcie_bench, "
                        "collective runs); repeatable")
    a.add_argument("--min-size", type=int, default=MIN_SIZE,
                   help="smallest collective size used by --calibrate/--compare (default 1 MiB)")
    a.add_argument("--write-cluster", metavar="OUT.yaml", help="write the calibrated description")
    a.add_argument("--compare", action="append", default=[], metavar="RESULTS.h5",
                   help="compare measured collective runs with the model (exit 1 if outside "
                        "--tolerance)")
    a.add_argument("--compare-rate", action="append", default=[], metavar="RATE",
                   help="with --compare on an emulated cluster: compare only runs shaped at this "
                        "link rate (FFB_EMU_LINK_RATE of the run, e.g. 1gbit; repeatable)")
    a.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="relative tolerance for checks and --compare (default 0.15)")
    a.add_argument("--inter-node-map", action="store_true",
                   help="also print which inter-node algorithm (tree or ring) HFReduce's auto rule "
                        "picks for each GPU count at sizes 256 KiB..1 GiB (model output)")
    a.add_argument("--simulate", action="store_true",
                   help="also run the discrete-event simulation for the HFReduce points")
    a.add_argument("--plot", metavar="FILE.png", help="plot algbw vs GPUs (needs matplotlib)")
    a.add_argument("--output", metavar="FILE.h5", help="append the tables as a kind=model run")
    a.add_argument("--label", default="", help="free text stored with --output")
    a.set_defaults(func=run_allreduce)


def _buffer_size(text):
    """--size: the shared size rule (data/config.parse_size), and more than 0 bytes."""
    if text is None:
        return None
    value = parse_size(text.strip(), f"--size {text!r}", UsageError)
    if value <= 0:
        raise UsageError(f"--size {text!r}: must be > 0")
    return value


def parse_gpus(text):
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--gpus {text!r}: give comma-separated integers, e.g. 16,32,64") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--gpus {text!r}: give positive integers, e.g. 16,32,64")
    return values


def _algorithms_for(cluster, requested):
    emulated = cluster.get("emulation") is not None
    if requested:
        algs = [a.strip() for a in requested.split(",") if a.strip()]
        known = ALGORITHMS + EMU_DEFAULT_ALGS
        for a in algs:
            if a not in known:
                raise UsageError(f"--algorithms: unknown {a!r} (choose from {', '.join(known)})")
        return algs
    if emulated:
        return list(EMU_DEFAULT_ALGS)
    algs = ["hfreduce", "hfreduce_tree", "hfreduce_ring"]
    if cluster.get("nvlink.topology") == "pairs":
        algs += ["hfreduce_nvlink", "hfreduce_nvlink_tree"]
    algs += ["nccl_ring", "nccl_tree", "nccl"]
    return algs


def _gpus_for(cluster, args):
    if args.gpus:
        gpus = parse_gpus(args.gpus)
    elif cluster.get("emulation") is not None:
        gpus = [n * cluster.gpus_per_node for n in range(2, cluster.nodes + 1)]
    else:
        ref = cluster.paper.get("allreduce") if isinstance(cluster.paper.get("allreduce"), dict) else None
        gpus = list(ref["gpus"]) if ref and ref.get("gpus") else list(DEFAULT_GPUS)
    if args.project:
        gpus += [g for g in PROJECT_GPUS if g not in gpus]
    return sorted(set(gpus))


def _simulation_summary(rows):
    """One line on closed form vs DES, one on the ring points too large for the DES."""
    lines = []
    sims = [r for r in rows if r.get("simulated")]
    if sims:
        worst = max(sims, key=lambda r: abs(r["algbw"] / r["simulated"]["algbw"] - 1))
        slow = max(sims, key=lambda r: r["simulated"]["wall_s"])
        per = "" if slow.get("inter_node") == "ring" else " per tree"
        lines.append(
            f"# simulation: closed form vs DES worst {worst['algbw'] / worst['simulated']['algbw'] - 1:+.1%} "
            f"({worst['algorithm']}, {worst['gpus']} GPUs); slowest DES {slow['simulated']['wall_s']:.2f} s "
            f"at {slow['nodes']} nodes, {slow['simulated']['chunks']} chunks{per}")
    big = [r for r in rows if "simulated" in r and r["simulated"] is None]
    if big:
        lines.append(f"# simulation: {len(big)} ring point(s) not simulated (nodes x chunks x "
                     f"2(nodes-1) > {SIMULATE_MAX_TRANSFERS:,} transfers), closed form only")
    return lines


def run_allreduce(args):
    size_arg = _buffer_size(args.size)
    if not 0 < args.tolerance < 1:
        raise UsageError(f"--tolerance {args.tolerance}: give a fraction, e.g. 0.15")
    if args.write_cluster and not args.calibrate:
        raise UsageError("--write-cluster writes the calibrated description: give --calibrate RESULTS.h5")
    if args.write_cluster and len(args.cluster) > 1:
        raise UsageError("--write-cluster: give a single --cluster")
    rates = parse_rates(args.compare_rate)
    if rates and not args.compare:
        raise UsageError("--compare-rate selects runs to compare: give --compare RESULTS.h5")
    results, calib_reports, measured_all, out_lines = [], [], [], []
    status = 0
    try:
        for path in args.cluster:
            cluster = apply_sets(load_cluster(resolve_cluster_path(path)), args.set)
            if args.calibrate:
                cluster, report, extra = calibrate(cluster, args.calibrate, args.min_size)
                out_lines.append(f"# calibration of {cluster.name} from {', '.join(args.calibrate)} "
                                 f"(fitted machine parameters; rms log error "
                                 f"{extra.get('rms_log_error', float('nan')):.3f})")
                for key, value, source in report:
                    out_lines.append(f"  {key} = {value:.4g}   ({source})")
                    calib_reports.append((cluster.name, key, value, source))
                if args.write_cluster:
                    with open(args.write_cluster, "w") as fh:
                        fh.write(f"# calibrated by ffbench model allreduce --calibrate "
                                 f"{' '.join(args.calibrate)}\n")
                        for key, value, source in report:
                            fh.write(f"#   {key} = {value:.6g} ({source})\n")
                        fh.write(cluster.to_yaml())
                    out_lines.append(f"# wrote {args.write_cluster}")
            size = size_arg or (64 << 20 if cluster.get("emulation") is not None else PAPER_SIZE)
            algs = _algorithms_for(cluster, args.algorithms)
            gpus = _gpus_for(cluster, args)
            rows, notes = model_rows(cluster, gpus, algs, size, args.simulate)
            out_lines.append(format_model_table(cluster, rows, size, args.simulate))
            out_lines.extend(f"# note: {n}" for n in notes)
            if args.inter_node_map:
                out_lines.append(format_inter_node_map(cluster, inter_node_map(cluster, gpus)))
            if args.simulate:
                out_lines.extend(_simulation_summary(rows))
            cmp = paper_comparison(cluster, rows, args.tolerance) if size == PAPER_SIZE else None
            if cmp:
                out_lines.append(format_paper_comparison(cmp))
            if args.compare:
                skipped = {}
                measured = compare_measured(cluster, args.compare, args.tolerance, args.min_size,
                                            skipped, rates)
                out_lines.append(format_measured(measured, args.tolerance, skipped))
                measured_all += measured
                if not measured_passed(measured):
                    status = 1
            results.append((cluster, rows, cmp))
    except ClusterError as exc:
        raise UsageError(str(exc)) from None
    print("\n".join(out_lines))
    if args.plot:
        plot(args.plot, results)
        print(f"# plot (model output) written to {args.plot}")
    if args.output:
        attrs = h5io.provenance("ffbench model allreduce", "model",
                                ["ffbench", "model"] + sys.argv[2:],
                                {k: v for k, v in vars(args).items() if k != "func"}, args.label)
        attrs["model"] = "allreduce"
        attrs["clusters"] = json.dumps([c.name for c, _r, _p in results])
        run_id = h5io.append_run(args.output, attrs, h5_tables(results, measured_all, calib_reports))
        print(f"# appended run {run_id} to {args.output}")
    return status
