"""Cross-check storage_bench against fio on one directory, in one run.

For each case the equivalent storage_bench and fio jobs run after one discarded warm-up run,
--runs times each in counterbalanced ABBA order (fio sb, sb fio, ...), on the same directory, each
run of either tool in a fresh directory of its own. The medians, their ratio (storage_bench / fio,
the target's measure) and the median of the per-run ratios are printed and stored: storage_bench's own runs land in --output as
usual (kind "storage"), and one run of kind "crosscheck" (program "fio-crosscheck") holds the table
`crosscheck` with every measured value, both medians, the ratio and the fio command lines.

Cases (1 process, one file, --size bytes):
  seq_write_buffered   1 MiB writes, page cache, fsync at the end inside the timed region
  seq_read_buffered    1 MiB reads of a synced file after evicting it from the page cache
  seq_write_direct     1 MiB O_DIRECT writes, fsync at the end
  seq_read_direct      1 MiB O_DIRECT reads
  rand_read_4k_qd32    4 KiB O_DIRECT random reads, 32 in flight through io_uring, every block once

Equivalence notes: fio preallocates files by default (fallocate=native); storage_bench, like IOR
and like real checkpoint writers, does not, so fio runs with fallocate=none. fio hints the kernel
by default (fadvise_hint: POSIX_FADV_SEQUENTIAL doubles read-ahead); storage_bench does not, so
fio runs with fadvise_hint=0. fio's random map makes late random picks "the next free block"
(near-sequential, 10-20% more IOPS on devices with locality); storage_bench visits a true random
permutation, so fio runs with norandommap (uniform offsets). fio's read jobs read a file laid out
with 4 MiB writes (O_DIRECT ones for the O_DIRECT cases, as storage_bench does), synced and evicted from the page cache before the timed job (untimed, as
storage_bench's --phases read --drop-cache does; fio's invalidate=1 alone would evict inside its
timed region). Both tools pause --settle seconds, then flush (sync / fdatasync)
right before the timed job, and storage_bench runs unpinned (--bind-to none), like fio. Bandwidth: storage_bench's `bw` (bytes
over first open to last close, IOR semantics) against fio's bw (io_bytes over the job's runtime,
which includes end_fsync).
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from ffbench.data import h5io, paths
from ffbench.data.config import parse_size
from ffbench.errors import UsageError

# The command this tool records as its own (provenance argv[0]): the script users run.
SCRIPT = os.path.join(paths.scripts_dir(), "fio-crosscheck")

CASES = {
    # name: (storage_bench seq args, fio args, metric)
    "seq_write_buffered": (["-t", "1M", "--phases", "write", "--fsync"],
                           ["--rw=write", "--bs=1M", "--direct=0", "--end_fsync=1", "--ioengine=psync"],
                           "write"),
    "seq_read_buffered": (["-t", "1M", "--phases", "read", "--drop-cache"],
                          ["--rw=read", "--bs=1M", "--direct=0", "--invalidate=1", "--ioengine=psync"],
                          "read"),
    "seq_write_direct": (["-t", "1M", "--phases", "write", "--fsync", "--odirect"],
                         ["--rw=write", "--bs=1M", "--direct=1", "--end_fsync=1", "--ioengine=psync"],
                         "write"),
    "seq_read_direct": (["-t", "1M", "--phases", "read", "--odirect", "--drop-cache"],
                        ["--rw=read", "--bs=1M", "--direct=1", "--invalidate=1", "--ioengine=psync"],
                        "read"),
    "rand_read_4k_qd32": (["-t", "4K", "--pattern", "random", "--phases", "read", "--odirect", "--drop-cache",
                           "--engine", "io_uring", "--qd", "32"],
                          ["--rw=randread", "--bs=4k", "--direct=1", "--iodepth=32", "--ioengine=io_uring",
                           "--invalidate=1", "--norandommap"],
                          "read"),
}


def find_storage_bench(given):
    candidates = [given] if given else []
    candidates.append(os.path.join(paths.bin_dir(), "storage_bench"))
    for c in candidates:
        # a file: run from the repository root, "storage_bench" alone names the source folder
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise UsageError("storage_bench not found: build it (cmake --build build) or pass --storage-bench PATH")


def mpi_env():
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def run_storage_bench(args, bench, size, case, run, output):
    sb_args, _, metric = CASES[case]
    label = f"crosscheck:{case}:{run}"
    cmd = shlex.split(args.mpirun) + [bench, "seq", "-F", "-b", str(size)] + sb_args + \
        ["-d", str(args.settle), "--output", output, "--label", label, args.dir]
    p = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env())
    if p.returncode != 0:
        raise RuntimeError(f"storage_bench failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    runs = [r for r in h5io.read_runs(output, program="storage_bench") if r.attrs.get("label") == label]
    if not runs:
        raise RuntimeError(f"storage_bench run {label} not found in {output}")
    r = runs[-1]
    t = r.table("storage_phases")
    phases = [p.decode() if isinstance(p, bytes) else str(p) for p in t["phase"]]
    i = phases.index(metric)
    return {"gbps": float(t["bw"][i]), "ops_rate": float(t["ops_rate"][i]),
            "p99_us": float(t["lat_p99"][i]), "run_id": r.id, "command": shlex.join(cmd)}


def fio_cmd(args, case, size, filename):
    _, fio_args, _ = CASES[case]
    return [args.fio, "--name=" + case, "--filename=" + filename, f"--size={size}", "--fallocate=none",
            "--fadvise_hint=0", "--numjobs=1", "--group_reporting", "--output-format=json"] + fio_args


def layout_file(args, filename, size, direct):
    """Write and sync the file a fio read job reads (untimed): 4 MiB writes, O_DIRECT when the case
    reads with O_DIRECT, as storage_bench lays out data for --phases read (the write size and mode
    of the layout change later read speed on a virtual disk: 2-4x for the size; a buffered layout
    read back with O_DIRECT ran ~10% slower than storage_bench's direct one)."""
    cmd = [args.fio, "--name=layout", "--filename=" + filename, f"--size={size}", "--rw=write", "--bs=4M",
           f"--direct={1 if direct else 0}", "--fallocate=none", "--end_fsync=1", "--output-format=json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"fio layout failed: {p.stderr[-2000:]}")


def run_fio(args, case, size):
    # A fresh directory per run, next to storage_bench's (which makes a fresh job directory per
    # run): the file system then places both tools' files by the same policy. With one fixed fio
    # directory, fio rewrote the blocks it had just freed while storage_bench got new ones (ext4
    # spreads new top-level directories over block groups): on a RAM-backed ext4, buffered
    # write + fsync ran 0.35 GB/s (storage_bench) vs 3.05 GB/s (fio) in every run that way.
    workdir = tempfile.mkdtemp(prefix="fio-crosscheck.", dir=args.dir)
    try:
        return _run_fio_in(args, case, size, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_fio_in(args, case, size, workdir):
    filename = os.path.join(workdir, f"fio-{case}.dat")
    metric = CASES[case][2]
    # The same rhythm as storage_bench -d. Reads: lay out, pause, flush (storage_bench fdatasyncs
    # right before its eviction), then the timed job evicts (invalidate=1) and reads. Writes: the
    # caller's sync, then the pause (storage_bench starts up and waits -d), then the timed job.
    if metric == "read":
        layout_file(args, filename, size, "--direct=1" in CASES[case][1])
        time.sleep(args.settle)
        subprocess.run(["sync"], check=False)
        # Evict untimed, as storage_bench --drop-cache does: fio's own invalidate=1 runs inside
        # its timed job, and dropping gigabytes of page cache there costs it 10-25%.
        fd = os.open(filename, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    else:
        time.sleep(args.settle)
    cmd = fio_cmd(args, case, size, filename)
    p = subprocess.run(cmd, capture_output=True, text=True)
    try:
        os.unlink(filename)
    except FileNotFoundError:
        pass
    if p.returncode != 0:
        raise RuntimeError(f"fio failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    text = p.stdout[p.stdout.find("{"):]
    job = json.loads(text)["jobs"][0][metric]
    pct = job.get("clat_ns", {}).get("percentile", {})
    p99 = float(pct.get("99.000000", float("nan"))) / 1e3
    return {"gbps": job["bw_bytes"] / 1e9, "ops_rate": float(job["iops"]), "p99_us": p99,
            "command": shlex.join(cmd)}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(prog="fio-crosscheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="directory on the file system to test (both tools use it)")
    ap.add_argument("--size", default="1G", help="bytes per case and run (default 1G)")
    ap.add_argument("--runs", type=int, default=8,
                    help="runs per case and tool, counterbalanced ABBA (even is best); medians are "
                         "compared (default 8)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--output", default="results/crosscheck.h5", help="HDF5 results file (appended)")
    ap.add_argument("--label", default="", help="free text stored with the crosscheck run (ffbench run: "
                    "the sweep point's NAME@KEY)")
    ap.add_argument("--storage-bench", default=None, help="storage_bench binary (default build/bin/storage_bench)")
    ap.add_argument("--mpirun", default=os.environ.get("FFB_MPIEXEC", "mpirun") + " -n 1 --bind-to none",
                    help="launcher prefix for storage_bench (default 'mpirun -n 1 --bind-to none': fio is "
                         "not pinned either, and Open MPI pins one rank to one core by default)")
    # 5 s: on a virtual disk the host writes back the previous job (or the read case's layout)
    # for a second or more; with 1 s, the tool that started later (storage_bench: mpirun adds
    # 0.3-0.5 s) met a quieter device: O_DIRECT ratios 1.08 (write) and 1.15 (read) in 16-run
    # series, 1.04 and 0.99 with 5 s.
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds both tools pause before flushing and starting the timed job "
                         "(storage_bench -d; default 5)")
    ap.add_argument("--fio", default="fio", help="fio binary")
    ap.add_argument("--tolerance", type=float, default=0.05, help="target |ratio - 1| (default 0.05)")
    args = ap.parse_args(argv)
    try:
        if args.runs < 1:
            raise UsageError(f"--runs {args.runs}: give at least 1")
        size = parse_size(args.size, "--size", UsageError)
        cases = [c for c in args.cases.split(",") if c]
        for c in cases:
            if c not in CASES:
                raise UsageError(f"--cases: unknown case '{c}'; choose from {', '.join(CASES)}")
        if not os.path.isdir(args.dir) or not os.access(args.dir, os.W_OK):
            raise UsageError(f"--dir {args.dir}: not a writable directory; give one on the file system to test")
        if shutil.which(args.fio) is None:
            raise UsageError(f"--fio {args.fio}: not found; install fio (apt-get install fio)")
        bench = find_storage_bench(args.storage_bench)
    except UsageError as e:
        sys.stderr.write(f"fio-crosscheck: {e}\n")
        return 2
    fio_version = subprocess.run([args.fio, "--version"], capture_output=True, text=True).stdout.strip()
    if os.path.dirname(os.path.abspath(args.output)):
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    results = {c: {"sb": [], "fio": []} for c in cases}
    # Per case: one discarded warm-up run (the case-to-case transition must not fall on one
    # tool only), then the two tools counterbalanced ABBA (fio sb, sb fio, fio sb, ...): on a
    # disk whose speed depends on what ran one or two jobs before (host write-back of deleted
    # files), each tool gets every position equally often.
    for case in cases:
        run_storage_bench(args, bench, size, case, -1, args.output)
        print(f"  {case:<20} warm-up run done (discarded)", flush=True)
        for run in range(args.runs):
            for tool in (("fio", "sb") if run % 2 == 0 else ("sb", "fio")):
                subprocess.run(["sync"], check=False)
                if tool == "sb":
                    r = run_storage_bench(args, bench, size, case, run, args.output)
                else:
                    r = run_fio(args, case, size)
                results[case][tool].append(r)
                print(f"  run {run} {case:<20} {tool:<4} {r['gbps']:8.3f} GB/s {r['ops_rate']:10.0f} ops/s",
                      flush=True)

    print(f"# fio-crosscheck on {args.dir}: size {args.size}, {args.runs} run(s) per tool, medians; "
          f"ratio = storage_bench / fio (paired: median of the per-run ratios); target within "
          f"{args.tolerance:.0%} for ratio")
    print(f"{'# case':<22} {'storage_bench GB/s':>18} {'fio GB/s':>10} {'ratio':>7} {'paired':>7} "
          f"{'sb ops/s':>10} {'fio ops/s':>10}  within")
    rows = {k: [] for k in ("case", "sb_gbps", "fio_gbps", "ratio", "paired", "sb_ops", "fio_ops", "ok", "sb_p99",
                            "fio_p99", "fio_cmd", "sb_cmd", "sb_runs", "sb_all", "fio_all")}
    all_ok = True
    for case in cases:
        sb = [r["gbps"] for r in results[case]["sb"]]
        fo = [r["gbps"] for r in results[case]["fio"]]
        sbm, fom = statistics.median(sb), statistics.median(fo)
        ratio = sbm / fom if fom > 0 else float("nan")
        # Shown beside it: the median of the per-run ratios (run i of each tool ran back to back),
        # which a slow drift of the device over the case moves less than either median.
        paired = statistics.median([a / b for a, b in zip(sb, fo) if b > 0] or [float("nan")])
        ok = abs(ratio - 1.0) <= args.tolerance
        all_ok &= ok
        sb_ops = statistics.median([r["ops_rate"] for r in results[case]["sb"]])
        fio_ops = statistics.median([r["ops_rate"] for r in results[case]["fio"]])
        print(f"  {case:<20} {sbm:18.3f} {fom:10.3f} {ratio:7.3f} {paired:7.3f} {sb_ops:10.0f} "
              f"{fio_ops:10.0f}  {'yes' if ok else 'NO'}")
        rows["paired"].append(paired)
        rows["case"].append(case)
        rows["sb_gbps"].append(sbm)
        rows["fio_gbps"].append(fom)
        rows["ratio"].append(ratio)
        rows["sb_ops"].append(sb_ops)
        rows["fio_ops"].append(fio_ops)
        rows["ok"].append(int(ok))
        rows["sb_p99"].append(statistics.median([r["p99_us"] for r in results[case]["sb"]]))
        rows["fio_p99"].append(statistics.median([r["p99_us"] for r in results[case]["fio"]]))
        rows["fio_cmd"].append(results[case]["fio"][0]["command"])
        rows["sb_cmd"].append(results[case]["sb"][0]["command"])
        rows["sb_runs"].append(",".join(r["run_id"] for r in results[case]["sb"]))
        rows["sb_all"].append(sb)
        rows["fio_all"].append(fo)

    attrs = h5io.provenance("fio-crosscheck", "crosscheck", argv=[SCRIPT] + argv,
                            options=vars(args), label=args.label)
    fs_type = ""
    try:
        st = subprocess.run(["stat", "-f", "-c", "%T", args.dir], capture_output=True, text=True)
        fs_type = st.stdout.strip()
    except OSError:
        pass
    attrs.update({"status": "complete", "fio_version": fio_version, "dir": os.path.realpath(args.dir),
                  "fs_type": fs_type, "size_bytes": size, "runs": args.runs, "tolerance": args.tolerance,
                  "all_within_tolerance": int(all_ok)})
    table = {
        "case": (rows["case"], "1"),
        "storage_bench_bw": (rows["sb_gbps"], "GB/s"),
        "fio_bw": (rows["fio_gbps"], "GB/s"),
        "ratio": (rows["ratio"], "1"),
        "paired_ratio": (rows["paired"], "1"),
        "within_tolerance": (rows["ok"], "1"),
        "storage_bench_ops_rate": (rows["sb_ops"], "ops/s"),
        "fio_ops_rate": (rows["fio_ops"], "ops/s"),
        "storage_bench_lat_p99": (rows["sb_p99"], "us"),
        "fio_clat_p99": (rows["fio_p99"], "us"),
        "storage_bench_bw_runs": (np.array(rows["sb_all"], dtype=float), "GB/s"),
        "fio_bw_runs": (np.array(rows["fio_all"], dtype=float), "GB/s"),
        "storage_bench_run_ids": (rows["sb_runs"], "1"),
        "storage_bench_command": (rows["sb_cmd"], "1"),
        "fio_command": (rows["fio_cmd"], "1"),
    }
    try:
        run_id = h5io.append_run(args.output, attrs, {"crosscheck": table})
    except h5io.ResultsFileError as e:
        sys.stderr.write(f"fio-crosscheck: {e}\n")
        return 2
    print(f"# results: {args.output} run {run_id} (kind crosscheck) and the storage_bench runs "
          f"{', '.join(rows['sb_runs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
