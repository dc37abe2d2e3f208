"""Time one append of a small run to ffbench results files of about 10 MB, 100 MB and 1 GB.

    scripts/append-cost [--dir DIR] [--sizes 10M,100M,1G] [--membw BIN/membw_bench]
                        [--lib SCRIPTS_DIR] [--repeat 3]

Builds each file once (runs of 10 MiB: attrs plus one 2-D float64 column, written in one h5py
session as a single file, the layout of the committed results; --sealed adds the checksum block a
compaction writes), then times, on the same file:
  py first  h5io.append_run of a small run to the single file (the Python writer: model, cost,
            fio-crosscheck, merge); with the index layout this is the append that makes it an index
  py next   the median of --repeat further appends
  c++ next  membw_bench --threads 1 --bytes 4K --repetitions 1 --output FILE, minus the same
            command without --output (the C++ writer every program uses; medians of --repeat)
  read      h5io.read_runs of the whole results set (what report/compare/export pay, and about what
            a program's start-up check_output pays)
With --sweep N it instead appends N runs of --run-bytes each to one new file with h5io.append_run
(a sweep of N points into one file) and prints the time of the first and the last tenth of them
and the total. --lib DIR times an older checkout's writer: DIR is its scripts/ folder, which holds
the ffbenchlib package of before python/ffbench (default: this package's own h5io), so the same
script measures the old and the new writer. Files are removed at the end. Timings vary 15-30% between
runs.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import importlib
import importlib.machinery
import importlib.util

from ffbench.data import paths
from ffbench.data.config import parse_size
from ffbench.errors import UsageError

RUN_BYTES = 10 * 1024 * 1024


def load_h5io(lib):
    """The h5io module to time: this package's, or (--lib DIR) the ffbenchlib package in DIR of an
    older checkout, loaded by path (its modules import each other relatively, so no sys.path)."""
    if not lib:
        from ffbench.data import h5io
        return h5io
    spec = importlib.machinery.PathFinder.find_spec("ffbenchlib", [os.path.abspath(lib)])
    if spec is None:
        raise UsageError(f"--lib {lib}: no ffbenchlib package there; give an older checkout's "
                         f"scripts/ folder (or leave --lib out for this package's writer)")
    package = importlib.util.module_from_spec(spec)
    sys.modules["ffbenchlib"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("ffbenchlib.h5io")


def build(h5io, path, nbytes, sealed=False):
    """A results file of about nbytes: ceil(nbytes / 10 MiB) runs of one 10 MiB column."""
    import h5py
    import numpy as np
    data = np.arange(RUN_BYTES // 8, dtype=np.float64).reshape(-1, 1024)
    runs = max(1, round(nbytes / RUN_BYTES))
    kwargs = {"userblock_size": h5io.USERBLOCK} if sealed else {}
    with h5py.File(path, "w", **kwargs) as f:
        f.attrs["format"] = h5io.FORMAT
        f.attrs["schema_version"] = np.int64(h5io.SCHEMA_VERSION)
        g = f.create_group("runs")
        attrs = h5io.provenance("append_cost", "probe", ["append-cost"], label="filler")
        for i in range(runs):
            rg = g.create_group(f"{i:06d}")
            for k, v in attrs.items():
                rg.attrs[k] = v if not isinstance(v, list) else np.array(v, dtype=h5py.string_dtype())
            ds = rg.create_group("blob").create_dataset("data", data=data)
            ds.attrs["units"] = "1"
    if sealed:
        h5io._seal(path)
    return runs


def small_run(h5io):
    attrs = h5io.provenance("append_cost", "probe", ["append-cost", "small"], label="small")
    return attrs, {"membw": {"kernel": (["copy", "add"], "1"), "bandwidth": ([1.0, 2.0], "GB/s")}}


def sweep(h5io, work, n, run_bytes):
    import numpy as np
    path = os.path.join(work, "sweep.h5")
    attrs = h5io.provenance("append_cost", "probe", ["append-cost", "sweep"], label="sweep")
    table = {"blob": {"data": (np.arange(run_bytes // 8, dtype=np.float64).reshape(-1, 128), "1")}}
    times = [timed(lambda: h5io.append_run(path, attrs, table)) for _ in range(n)]
    tenth = max(1, n // 10)
    print(f"# sweep: {n} appends of {run_bytes / 1e6:.1f} MB to one file")
    print(f"  first {tenth}: {sum(times[:tenth]):.3f} s, last {tenth}: {sum(times[-tenth:]):.3f} s, "
          f"total {sum(times):.3f} s, file set {_set_bytes(path) / 1e6:.0f} MB")


def _set_bytes(path):
    directory, base = os.path.split(path)
    total = 0
    for root, _, files in os.walk(directory):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if f.startswith(base) or root != directory)
    return total


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpp_cost(membw, path, repeat):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [membw, "--threads", "1", "--bytes", "4K", "--repetitions", "1"]

    def run(extra):
        res = subprocess.run(cmd + extra, env=env, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise SystemExit(f"append-cost: {' '.join(cmd + extra)} failed: {res.stderr.strip()}")
    base = statistics.median(timed(lambda: run([])) for _ in range(repeat))
    with_out = statistics.median(timed(lambda: run(["--output", path])) for _ in range(repeat))
    return with_out - base


def main(argv=None):
    ap = argparse.ArgumentParser(prog="append-cost", description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None, help="where the files go (default: a fresh temp dir)")
    ap.add_argument("--sizes", default="10M,100M,1G")
    ap.add_argument("--membw", default=os.path.join(paths.bin_dir(), "membw_bench"))
    ap.add_argument("--lib", default=None,
                    help="an older checkout's scripts/ folder: time its ffbenchlib writer")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sealed", action="store_true", help="seal the big file (new writer only)")
    ap.add_argument("--sweep", type=int, default=0, help="N appends to one file instead")
    ap.add_argument("--run-bytes", default="4M", help="size of each run with --sweep")
    args = ap.parse_args(argv)
    try:
        h5io = load_h5io(args.lib)
        sizes = [(text, parse_size(text, "--sizes", UsageError)) for text in args.sizes.split(",")]
        run_bytes = parse_size(args.run_bytes, "--run-bytes", UsageError)
    except UsageError as exc:
        sys.stderr.write(f"append-cost: {exc}\n")
        return 2
    work = tempfile.mkdtemp(prefix="append-cost-", dir=args.dir)
    print(f"# append-cost: h5io from {os.path.dirname(h5io.__file__)}, membw_bench {args.membw}, "
          f"files in {work}")
    if args.sweep:
        try:
            sweep(h5io, work, args.sweep, run_bytes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    print(f"# {'file':>8} {'runs':>5} {'MB':>8} {'py first':>9} {'py next':>9} {'c++ next':>9} "
          f"{'read':>9}  (seconds)")
    try:
        for text, nbytes in sizes:
            path = os.path.join(work, f"cost-{text}.h5")
            runs = build(h5io, path, nbytes, args.sealed)
            mb = os.path.getsize(path) / 1e6
            attrs, tables = small_run(h5io)
            first = timed(lambda: h5io.append_run(path, attrs, tables))
            nxt = statistics.median(timed(lambda: h5io.append_run(path, attrs, tables))
                                    for _ in range(args.repeat))
            cpp = cpp_cost(args.membw, path, args.repeat) if os.path.exists(args.membw) else float("nan")
            rd = timed(lambda: h5io.read_runs(path))
            print(f"  {text:>8} {runs:>5} {mb:8.1f} {first:9.3f} {nxt:9.3f} {cpp:9.3f} {rd:9.3f}",
                  flush=True)
            remove = getattr(h5io, "remove_results", None)
            remove(path) if remove else os.unlink(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
