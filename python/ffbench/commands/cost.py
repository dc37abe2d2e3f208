"""ffbench cost: switch counts, prices, performance, power and operating cost of cluster descriptions.

    ffbench cost CLUSTER.yaml [--vs OTHER.yaml ...] [--baseline N] [--perf-metric M] [--output F.h5]

Every number printed is model output computed from the YAML inputs (see models/cost.py,
models/fattree.py of python/ffbench and docs/models.md). Where a description carries a `paper:`
section, the paper's value is printed beside the model's in brackets with the difference; the
paper values are never used as inputs.
"""
import argparse
import json
import sys

from ffbench.data import h5io
from ffbench.errors import UsageError
from ffbench.models.cluster import apply_sets, load_cluster, resolve_cluster_path
from ffbench.models.cost_table import PERF_METRICS, compute, format_table, h5_tables


def register(subparsers):
    p = subparsers.add_parser(
        "cost", help="price, power and cost-performance of cluster designs (model)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cluster", metavar="CLUSTER.yaml",
                   help="cluster description (a path, or a name in configs/clusters/)")
    p.add_argument("--vs", action="append", default=[], metavar="OTHER.yaml",
                   help="another cluster to compare with (repeatable)")
    p.add_argument("--baseline", default=None, metavar="N|NAME",
                   help="column the ratios are taken against: 1-based index or cluster name "
                        "(default: the last cluster given)")
    p.add_argument("--perf-metric", choices=PERF_METRICS, default=None,
                   help="basis of relative performance (default: performance.metric of the first "
                        "cluster, else gemm_mean = mean of the TF32 and FP16 GEMM ratios)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the FIRST cluster for this run, e.g. --set prices.switch=2.869 "
                        "(repeatable)")
    p.add_argument("--output", metavar="FILE.h5", help="append the tables as a kind=model run")
    p.add_argument("--label", default="", help="free text stored with --output")
    p.set_defaults(func=run)


def _load_all(args):
    paths = [args.cluster] + list(args.vs)
    clusters = []
    for i, path in enumerate(paths):
        cluster = load_cluster(resolve_cluster_path(path))
        clusters.append(apply_sets(cluster, args.set) if i == 0 else cluster)
    return clusters


def _baseline_index(args, clusters):
    if args.baseline is None:
        return len(clusters) - 1
    if args.baseline.isdigit():
        i = int(args.baseline) - 1
        if not 0 <= i < len(clusters):
            raise UsageError(f"--baseline {args.baseline}: give 1..{len(clusters)} (the column) or a "
                             f"cluster name")
        return i
    for i, c in enumerate(clusters):
        if c.name == args.baseline:
            return i
    raise UsageError(f"--baseline {args.baseline!r}: no such cluster (have: "
                     f"{', '.join(c.name for c in clusters)})")


def run(args):
    clusters = _load_all(args)
    base_index = _baseline_index(args, clusters)
    metric = args.perf_metric or clusters[0].get("performance.metric") or "gemm_mean"
    costs, comps = compute(clusters, base_index, metric)
    print(format_table(clusters, costs, comps, base_index))
    if args.output:
        attrs = h5io.provenance("ffbench cost", "model", ["ffbench", "cost"] + sys.argv[2:],
                                {"clusters": [c.path for c in clusters],
                                 "baseline": clusters[base_index].name, "perf_metric": metric},
                                args.label)
        attrs["model"] = "cost"
        attrs["clusters"] = json.dumps([c.name for c in clusters])
        run_id = h5io.append_run(args.output, attrs, h5_tables(clusters, costs, comps))
        print(f"# appended run {run_id} to {args.output}")
    return 0
