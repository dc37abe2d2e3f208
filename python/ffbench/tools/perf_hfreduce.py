"""HFReduce performance on this host, measured side by side in one run (issue 3's targets):

1. the 8-input multi-input reduce kernels against a STREAM add measured by the same binary;
2. allreduce with 2 and 4 ranks at 64 MiB and 256 MiB fp32: HFReduce algbw against the best of
   Open MPI's default MPI_Allreduce and its pinned algorithms 1-6;
3. latency from 8 B to 64 KiB: HFReduce against MPI_Allreduce (HFReduce may fall back to MPI).

Every program appends its runs to the results file; this script only reads that file (and Google
Benchmark's JSON) and prints the tables.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from ffbench.data import paths

ROOT = paths.repo_root()
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def run(cmd, label):
    print(f"# running {label}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL)


def collective_rows(path, label):
    """(size, algbw, time) for the out-of-place rows of the run with this label."""
    with h5py.File(path, "r") as f:
        for rid in sorted(f["runs"]):
            g = f["runs"][rid]
            if g.attrs.get("label") == label:
                t = g["collective"]
                place = [p.decode() if isinstance(p, bytes) else p for p in t["placement"][()]]
                keep = np.array([p == "out-of-place" for p in place])
                return (t["size"][()][keep], t["algbw"][()][keep], t["time"][()][keep])
    raise RuntimeError(f"no run labelled {label} in {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="perf-hfreduce", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=paths.bin_dir())
    ap.add_argument("--output", default=os.path.join(ROOT, "results", "perf-hfreduce.h5"))
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="64 MiB only, 2 ranks only")
    args = ap.parse_args(argv)
    b = args.bin
    for prog in ("hfreduce_bench", "mpi_allreduce_bench", "membw_bench"):
        if not os.path.exists(os.path.join(b, prog)):
            sys.exit(f"perf-hfreduce: {b}/{prog} is missing; build first (make build)")
    out = args.output
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    summary = {}

    # 0. Host probe.
    run([f"{b}/membw_bench", "--bytes", "64M", "--output", out, "--label", "perf:membw"], "membw")

    # 1. Kernels against STREAM add, same binary, same run.
    kern = os.path.join(b, "reduce_kernels_bench")
    if os.path.exists(kern):
        with tempfile.NamedTemporaryFile(suffix=".json") as js:
            run([kern, "--benchmark_min_time=0.2", f"--benchmark_out={js.name}",
                 "--benchmark_out_format=json"], "reduce kernels")
            data = json.load(open(js.name))
        rates = {bm["name"]: bm.get("bytes_per_second", 0.0) for bm in data["benchmarks"]}
        stream = max((v for k, v in rates.items() if "stream" in k.lower() and "add" in k.lower()),
                     default=0.0)
        print("\n## Multi-input reduce kernels (bytes/s counted as (L+1) x S) vs STREAM add")
        print(f"{'benchmark':60} {'GB/s':>8} {'% of add':>9}")
        for k, v in rates.items():
            pct = 100 * v / stream if stream else float("nan")
            print(f"{k:60} {v / 1e9:8.2f} {pct:8.1f}%")
            summary[f"kernel:{k}"] = pct
    else:
        print("# reduce_kernels_bench not built: kernel comparison skipped")

    # 2. Bandwidth: HFReduce vs the best of MPI default + pinned algorithms 1-6.
    sizes = ["64M"] if args.quick else ["64M", "256M"]
    ranks = [2] if args.quick else [2, 4]
    print("\n## Allreduce fp32 sum, out-of-place, algbw GB/s (GB = 1e9 B)")
    header = f"{'ranks':>5} {'size':>6} {'hfreduce':>9} {'best MPI':>9} {'(which)':>12} {'ratio':>6}"
    lines = []
    for np_ in ranks:
        for size in sizes:
            common = ["-b", size, "-e", size, "-n", str(args.iters), "-w", "1", "-c", "0",
                      "--output", out]
            lab = f"perf:hf:{np_}:{size}"
            run(["mpirun", "-np", str(np_), f"{b}/hfreduce_bench", *common, "--label", lab], lab)
            hf = collective_rows(out, lab)[1][0]
            best, which = 0.0, ""
            for alg in [None, 1, 2, 3, 4, 5, 6]:
                lab_m = f"perf:mpi{alg or 0}:{np_}:{size}"
                mca = [] if alg is None else ["--mca", "coll_tuned_use_dynamic_rules", "1", "--mca",
                                              "coll_tuned_allreduce_algorithm", str(alg)]
                run(["mpirun", *mca, "-np", str(np_), f"{b}/mpi_allreduce_bench", *common,
                     "--label", lab_m], lab_m)
                bw = collective_rows(out, lab_m)[1][0]
                if bw > best:
                    best, which = bw, "default" if alg is None else f"alg {alg}"
            ratio = hf / best
            summary[f"bw_ratio:{np_}:{size}"] = ratio
            lines.append(f"{np_:5} {size:>6} {hf:9.2f} {best:9.2f} {which:>12} {ratio:6.2f}")
    print(header)
    print("\n".join(lines))

    # 3. Latency 8 B .. 64 KiB.
    print("\n## Latency, fp32 sum, out-of-place, slowest rank, us")
    for np_ in ranks:
        common = ["-b", "8", "-e", "64K", "-f", "2", "-n", "200", "-w", "20", "-c", "0", "--output", out]
        run(["mpirun", "-np", str(np_), f"{b}/hfreduce_bench", *common, "--label", f"perf:lat:hf:{np_}"], "latency")
        run(["mpirun", "-np", str(np_), f"{b}/mpi_allreduce_bench", *common, "--label", f"perf:lat:mpi:{np_}"], "latency")
        s, _, th = collective_rows(out, f"perf:lat:hf:{np_}")
        _, _, tm = collective_rows(out, f"perf:lat:mpi:{np_}")
        print(f"{'ranks':>5} {'size':>8} {'hfreduce':>9} {'MPI':>9} {'ratio':>6}")
        for i in range(len(s)):
            print(f"{np_:5} {int(s[i]):8} {th[i]:9.2f} {tm[i]:9.2f} {th[i] / tm[i]:6.2f}")
        summary[f"lat_ratio_max:{np_}"] = float(np.max(th / tm))

    print("\n## Summary")
    for k, v in summary.items():
        print(f"{k:50} {v:8.3f}")
    print(f"\n# all runs are in {out}")


if __name__ == "__main__":
    main()
