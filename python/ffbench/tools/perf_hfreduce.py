"""HFReduce performance, measured side by side with Open MPI in one run (issues 3 and 17).

Default: this host.
  1. the 8-input multi-input reduce kernels against a STREAM add measured by the same binary;
  2. allreduce with 2 and 4 ranks at 64 MiB and 256 MiB fp32: HFReduce algbw against the best of
     Open MPI's default MPI_Allreduce and its pinned algorithms 1-6;
  3. latency from 8 B to 64 KiB, fp32: HFReduce against MPI_Allreduce.
  Runs: results/perf-hfreduce.h5.

--emulated: the emulated cluster (`ffbench emu`: network namespaces, tc-shaped veth links; root).
  2-6 nodes with 1 rank per node and 3 nodes with 2 ranks per node, 256 KiB-16 MiB fp32 sum, 1 gbit
  and 10 gbit links; HFReduce --inter-node tree, ring and auto (auto with every option at its
  default: what a user gets without tuning) against Open MPI's default, ring (alg 4) and
  Rabenseifner (alg 6). For each link rate the namespaces come up, one `ffbench run` sweep runs
  every (layout, program) as one mpirun over all sizes, and the namespaces go down again (also
  after Ctrl-C, SIGTERM or an error). Per point: busbw of all six, auto / best MPI, auto / best of
  tree and ring, the algorithm auto chose (the row's `algorithm` column) and auto against that
  algorithm's bound on the link. Runs: results/perf-hfreduce-emu.h5; table:
  results/perf-hfreduce-emu.txt. An existing results file is moved aside first (ffbench run
  --fresh) unless --resume keeps its complete points.

--small: latency from 4 B to 64 KiB (x2 steps) for every type HFReduce reduces, 2 and 4 ranks on
  this host: one small_message_bench run per rank count, which times HFReduce (library defaults),
  its other candidate (--small-path mpi: MPI_Allreduce at every size, with user-defined ops
  running HFReduce's kernels) and MPI_Allreduce side by side in one process, back to back at
  each point, in --rounds rounds whose order turns every round. fp8, which MPI has no type for,
  is set against MPI_Allreduce with that user-defined fp8 op, and also against MPI_Allreduce of
  uint8 on the same bytes (no fp8 arithmetic: a lower bound). Per point the median over rounds
  of each candidate's median iteration (slowest rank), and the median of the per-round ratios
  HFReduce / MPI (< 1: HFReduce faster). Runs: results/perf-hfreduce-small.h5; table:
  results/perf-hfreduce-small.txt.

--quick (any mode) runs a short version; its files go to a new temporary directory unless
--output / --text name them. Every program appends its runs to the results file; the tables are
read back from that file (the same functions give `ffbench report` its perf section).
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import h5py
import numpy as np
import yaml

from ffbench.data import paths
from ffbench.data.config import format_size, name_of_label, parse_size
from ffbench.errors import FfbenchError, UsageError

ROOT = paths.repo_root()
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")

# ---- the emulated series -------------------------------------------------------------------

EMU_LAYOUTS = ((2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (3, 2))  # (nodes, ranks per node)
EMU_QUICK_LAYOUTS = ((2, 1), (3, 1))
EMU_RATES = ("1gbit", "10gbit")
EMU_SIZES = ("256K", "1M", "4M", "16M")
# (variant, --inter-node value; None: no option at all, every HFReduce option at its default)
HF_VARIANTS = (("tree", "tree"), ("ring", "ring"), ("auto", None))
# (variant, Open MPI coll_tuned_allreduce_algorithm; None: Open MPI's own decision rules)
MPI_VARIANTS = (("default", None), ("ring", 4), ("rabenseifner", 6))
COLUMNS = (tuple(f"hfreduce.{v}" for v, _ in HF_VARIANTS)
           + tuple(f"mpi.{v}" for v, _ in MPI_VARIANTS))
# Every run of the series carries this in its environment (and so in its sweep key: the two link
# rates' points differ); the emu launcher adds FFB_EMU_LINK_RATE, which the programs record.
SERIES_ENV = "FFB_PERF_SERIES"
EMU_LABEL_RE = re.compile(r"^emu(?P<rate>[0-9.]+[kmgt]?bit)\.(?P<program>hfreduce|mpi)\."
                          r"(?P<variant>[a-z]+)\.n(?P<nodes>\d+)x(?P<rpn>\d+)$")
LAYOUT_RE = re.compile(r"^(\d+)x(\d+)$")
# Ethernet frames of a 1500-byte MTU carry 1448 B of TCP payload (timestamps on) per 1514 B the
# tc token bucket counts: 0.956 of the line rate at most.
BOUND_NOTE = ("bound = the tc line rate B (rate/8 B/s): algbw <= B n/(2(n-1)) for the ring, B/2 "
              "for the tree (n nodes), as busbw (x 2(N-1)/N, N ranks): B for the ring and "
              "B (n-1)/n for the tree with one rank per node. TCP payload is at most ~0.956 of "
              "the line rate (1448 of 1514 B per frame at MTU 1500): 0.9 of the line rate is "
              "~0.94 of what TCP can carry.")

# ---- the small-message table ---------------------------------------------------------------

SMALL_TYPES = ("float", "double", "half", "bfloat16", "int32", "int64", "uint8", "int8", "uint32",
               "uint64", "fp8_e4m3", "fp8_e5m2")
SMALL_QUICK_TYPES = ("float", "half", "fp8_e4m3")
# Types mpi_allreduce_bench has no MPI type for. Their MPI figure is MPI_Allreduce with a
# user-defined op (HFReduce's --small-path mpi); MPI_Allreduce of uint8 on the same bytes is shown
# beside it as a lower bound (it moves the bytes and does no fp8 arithmetic).
MPI_STAND_IN = {"fp8_e4m3": "uint8", "fp8_e5m2": "uint8"}
USER_OP = "user-op"
# small_message_bench labels its run perf-small.r<ranks>@KEY; the session (start time) is in
# FFB_PERF_SERIES, the key is made from it. Each run holds every round of one rank count.
SMALL_LABEL_RE = re.compile(r"^perf-small\.r(?P<ranks>\d+)@[0-9a-f]{12}$")
SMALL_SERIES_RE = re.compile(r"^small\.(?P<session>\d{8}T\d{6})$")
SMALL_KIND = "small_message"  # the runs' kind and table (small_message_bench, results/SCHEMA.md)


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


def run_host(args):
    """The host series (kernels, 2/4-rank bandwidth, fp32 latency) as before issue 17."""
    b = args.bin
    out = _outputs(args, "perf-hfreduce")[0]
    summary = {}
    iters = args.iters or 5

    # 0. Host probe.
    run([f"{b}/membw_bench", "--bytes", "64M", "--output", out, "--label", "perf:membw"], "membw")

    # 1. Kernels against STREAM add, same binary, same run.
    kern = os.path.join(b, "reduce_kernels_bench")
    if os.path.exists(kern):
        with tempfile.NamedTemporaryFile(suffix=".json") as js:
            run([kern, "--benchmark_min_time=0.2", f"--benchmark_out={js.name}",
                 "--benchmark_out_format=json"], "reduce kernels")
            with open(js.name) as fh:
                data = json.load(fh)
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
            common = ["-b", size, "-e", size, "-n", str(iters), "-w", "1", "-c", "0",
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
    return 0


# ---- reading a series back (also `ffbench report`'s perf section) --------------------------

def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _environment(run):
    try:
        env = json.loads(run.attrs.get("environment") or "{}")
    except (TypeError, ValueError):
        return {}
    return env if isinstance(env, dict) else {}


def _latest_complete(runs, match):
    """{label: (match, run)} of the complete runs whose label `match`es, the latest (highest run
    id) of each label: a series rerun into the same file shows its newest figures."""
    out = {}
    for run in sorted(runs, key=lambda r: str(r.id)):
        if run.attrs.get("status") != "complete" or "collective" not in run.tables:
            continue
        m = match(run)
        if m:
            out[_text(run.attrs.get("label", ""))] = (m, run)
    return out


def _out_of_place(run, datatype=None):
    """[(row index, size)] of the out-of-place rows of a run's collective table (of one type)."""
    t = run.tables["collective"]
    rows = []
    for i, (place, size) in enumerate(zip(t["placement"], t["size"])):
        if _text(place) != "out-of-place" or int(size) <= 0:
            continue
        if datatype is not None and _text(t["type"][i]) != datatype:
            continue
        rows.append((i, int(size)))
    return rows


# The hfreduce::Algorithm enum's order, for a numeric `algorithm` column (hfreduce.h).
ALGORITHM_CODES = ("none", "mpi", "intra-node", "tree", "ring")


def row_algorithm(table, i):
    """What carried row i (`algorithm` column: text, or hfreduce::Algorithm's number), or None
    when the table has no such column."""
    col = table.get("algorithm")
    if col is None:
        return None
    v = col[i]
    if isinstance(v, (bytes, str)):
        return _text(v) or None
    value = float(v)
    if value != value:
        return None
    code = int(round(value))
    if abs(value - code) > 1e-9 or not 0 <= code < len(ALGORITHM_CODES):
        return f"mixed ({value:g})"  # a mean over iterations that took different algorithms
    return ALGORITHM_CODES[code]


def emu_match(run):
    """The label fields of a run of the emulated series, else None."""
    m = EMU_LABEL_RE.match(name_of_label(_text(run.attrs.get("label", ""))))
    if not m or not str(_environment(run).get(SERIES_ENV, "")).startswith("emu-"):
        return None
    return m


def emu_series_runs(runs):
    return [r for r in runs if emu_match(r)]


def _ratio(a, b):
    return a / b if a is not None and b else None


@dataclass
class EmuPoint:
    rate: str            # the tc rate of the label, e.g. "1gbit"
    gbit: float          # the link rate the runs recorded (link_rate_gbit), NaN when none did
    nodes: int
    rpn: int
    size: int
    busbw: dict = field(default_factory=dict)   # COLUMNS entry -> GB/s
    chosen: str = None   # auto's algorithm (row column), None when the row has no such column
    notes: list = field(default_factory=list)

    @property
    def ranks(self):
        return self.nodes * self.rpn

    def best(self, prefix, exclude=()):
        vals = {k: v for k, v in self.busbw.items() if k.startswith(prefix) and k not in exclude}
        if not vals:
            return None, None
        k = max(vals, key=lambda c: vals[c])
        return vals[k], k

    @property
    def auto(self):
        return self.busbw.get("hfreduce.auto")

    @property
    def auto_vs_mpi(self):
        return _ratio(self.auto, self.best("mpi.")[0])

    @property
    def auto_vs_hf(self):
        return _ratio(self.auto, self.best("hfreduce.", ("hfreduce.auto",))[0])

    @property
    def bound(self):
        """busbw bound (GB/s) of auto's algorithm on the line rate, None when unknown."""
        if self.chosen not in ("tree", "ring") or not self.gbit == self.gbit or self.nodes < 2:
            return None
        b = self.gbit / 8
        n, big_n = self.nodes, self.ranks
        algbw = b * n / (2 * (n - 1)) if self.chosen == "ring" else b / 2
        return algbw * 2 * (big_n - 1) / big_n

    @property
    def auto_vs_bound(self):
        return _ratio(self.auto, self.bound)


def rate_gbit(rate):
    """Gbit/s of a tc rate ("1gbit" -> 1.0, "500mbit" -> 0.5); inf for text that is none."""
    from ffbench.launch.emu import RATE_RE, rate_bits
    return rate_bits(rate) / 1e9 if RATE_RE.match(rate) else float("inf")


def emu_points(runs):
    """[EmuPoint] of the emulated series (latest complete run per label), by rate, layout, size."""
    points = {}
    for m, run in _latest_complete(runs, emu_match).values():
        column = f"{m['program']}.{m['variant']}"
        nodes, rpn = int(m["nodes"]), int(m["rpn"])
        t = run.tables["collective"]
        gbit = float(run.attrs.get("link_rate_gbit", float("nan")))
        for i, size in _out_of_place(run, "float"):
            key = (m["rate"], nodes, rpn, size)
            p = points.setdefault(key, EmuPoint(m["rate"], gbit, nodes, rpn, size))
            if gbit == gbit:
                p.gbit = gbit
            p.busbw[column] = float(t["busbw"][i])
            if column == "hfreduce.auto":
                p.chosen = row_algorithm(t, i)
            if m["program"] == "hfreduce":
                formed = int(run.attrs.get("hfreduce_nodes", nodes))
                if formed != nodes:
                    p.notes.append(f"{column} formed {formed} nodes, not {nodes}")
            if int(run.attrs.get("nnodes", nodes)) != nodes:
                p.notes.append(f"{column} ran on {run.attrs.get('nnodes')} hosts, not {nodes}")
            if gbit == gbit and abs(gbit - rate_gbit(m["rate"])) > 1e-9 * gbit:
                p.notes.append(f"{column} recorded a {gbit:g} Gbit/s link, not {m['rate']}")
    return [points[k] for k in sorted(points, key=lambda k: (rate_gbit(k[0]), k[2], k[1], k[3]))]


def _f(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def _layout(p):
    return f"{p.nodes}x{p.rpn}"


def _where(p, value):
    return f"{p.rate} {_layout(p)} {format_size(p.size)} {value:.3f}"


def emu_summary(points):
    """Lines: at how many points auto matches the best Open MPI (>= 1, 0.98-1 and below 0.98
    listed apart: the raw ratios, no tolerance applied) and reaches 0.9 of its bound."""
    have = [p for p in points if p.auto_vs_mpi is not None]
    near = [p for p in have if 0.98 <= p.auto_vs_mpi < 1.0]
    below = [p for p in have if p.auto_vs_mpi < 0.98]
    line = f"auto >= best Open MPI at {len(have) - len(near) - len(below)} of {len(have)} points"
    if near:
        line += f"; 0.98-1 at {len(near)}: " + ", ".join(_where(p, p.auto_vs_mpi) for p in near)
    if below:
        line += f"; below 0.98 at {len(below)}: " + ", ".join(_where(p, p.auto_vs_mpi)
                                                            for p in below)
    lines = [line]
    bounded = [p for p in points if p.auto_vs_bound is not None]
    short = [p for p in bounded if p.auto_vs_bound < 0.9]
    lines.append(f"auto >= 0.9 of its algorithm's bound at {len(bounded) - len(short)} of "
                 f"{len(bounded)} points" + (f"; below at {len(short)}: " + ", ".join(
                     _where(p, p.auto_vs_bound) for p in short) if short else ""))
    unknown = [p for p in points if p.auto is not None and p.chosen is None]
    if unknown:
        lines.append(f"auto's algorithm unknown at {len(unknown)} points (the rows have no "
                     f"`algorithm` column): no bound ratio there")
    missing = [p for p in points if len(p.busbw) < len(COLUMNS)]
    if missing:
        lines.append(f"incomplete at {len(missing)} points (a run failed or is missing): " +
                     ", ".join(f"{p.rate} {_layout(p)} {format_size(p.size)} lacks "
                               f"{' '.join(c for c in COLUMNS if c not in p.busbw)}"
                               for p in missing))
    for p in points:
        for note in p.notes:
            lines.append(f"check: {p.rate} {_layout(p)} {format_size(p.size)}: {note}")
    return lines


EMU_HEAD = ("rate", "layout", "size", "hf tree", "hf ring", "hf auto", "mpi def", "mpi ring",
            "mpi rab", "auto/MPI", "auto/HF", "auto=", "bound", "auto/bnd")


def emu_cells(p):
    """One point's cells, in EMU_HEAD / EMU_MD_HEAD order."""
    return [p.rate, _layout(p), format_size(p.size)] + [_f(p.busbw.get(c)) for c in COLUMNS] + [
        _f(p.auto_vs_mpi, 2), _f(p.auto_vs_hf, 2), p.chosen or "?", _f(p.bound),
        _f(p.auto_vs_bound, 2)]


def emu_text(points):
    widths = [6, 6, 5] + [8] * 6 + [8, 7, 10, 6, 8]
    out = ["  ".join(f"{h:>{w}}" for h, w in zip(EMU_HEAD, widths))]
    for p in points:
        out.append("  ".join(f"{c:>{w}}" for c, w in zip(emu_cells(p), widths)))
    return out


# The same columns with the report's words (ffbench report's perf section).
EMU_MD_HEAD = ("link", "nodes x ranks", "size", "HFReduce tree", "HFReduce ring", "HFReduce auto",
               "MPI default", "MPI ring (4)", "MPI Rabenseifner (6)", "auto / best MPI",
               "auto / best of tree, ring", "auto chose", "bound", "auto / bound")


# ---- the small-message table ---------------------------------------------------------------

def small_label(series, ranks):
    key = hashlib.sha1(f"{series}.{ranks}".encode()).hexdigest()[:12]
    return f"perf-small.r{ranks}@{key}"


def small_match(run):
    """{session, ranks} of a small_message_bench run of the table, else None."""
    if run.attrs.get("kind") != SMALL_KIND or SMALL_KIND not in run.tables:
        return None
    label = SMALL_LABEL_RE.match(_text(run.attrs.get("label", "")))
    series = SMALL_SERIES_RE.match(str(_environment(run).get(SERIES_ENV, "")))
    if not label or not series:
        return None
    return {**label.groupdict(), **series.groupdict()}


def small_series_runs(runs, session=None):
    """The complete runs of the small-message table; of one session (start time) when given."""
    return [r for r in runs if r.attrs.get("status") == "complete" and small_match(r)
            and session in (None, small_match(r)["session"])]


def newest_small_runs(runs):
    """The runs of the newest small-message session in `runs` (what the report shows)."""
    mine = small_series_runs(runs)
    return small_series_runs(mine, max(small_match(r)["session"] for r in mine)) if mine else []


def _paired_median(rounds, num, den):
    """Median over the rounds that have both of num's time / den's time (they ran back to back)."""
    ratios = [t[num] / t[den] for t in rounds.values() if num in t and t.get(den, 0) > 0]
    return statistics.median(ratios) if ratios else None


@dataclass
class SmallPoint:
    """One (ranks, type, size) of the table: each candidate's time per round (us, the median
    iteration of the slowest rank), as small_message_bench measured them back to back."""
    ranks: int
    datatype: str
    size: int
    rounds: dict = field(default_factory=dict)    # round -> {candidate: us}
    carried_by: set = field(default_factory=set)  # HFReduce's path: shm, intra-node, mpi

    @property
    def fp8(self):
        return self.datatype in MPI_STAND_IN

    @property
    def mpi_type(self):
        """What the MPI figure reduces: the type, or for fp8 a user-defined op (USER_OP)."""
        return USER_OP if self.fp8 else self.datatype

    @property
    def reference(self):
        """The candidate HFReduce is judged against: MPI_Allreduce of the type; for fp8, which MPI
        has no type for, MPI_Allreduce with a user-defined fp8 op (HFReduce's --small-path mpi)."""
        return "hfmpi" if self.fp8 else "mpi"

    def times(self, candidate):
        return [t[candidate] for _, t in sorted(self.rounds.items()) if candidate in t]

    def median(self, candidate):
        v = self.times(candidate)
        return statistics.median(v) if v else None

    @property
    def hf(self):
        return self.times("hfreduce")

    @property
    def hf_median(self):
        return self.median("hfreduce")

    @property
    def mpi_median(self):
        return self.median(self.reference)

    @property
    def ratio(self):
        """HFReduce / its reference: the median of the per-round ratios."""
        return _paired_median(self.rounds, "hfreduce", self.reference)

    @property
    def stand_in_ratio(self):
        """fp8: HFReduce / MPI_Allreduce of uint8 on the same bytes (a lower bound); else None."""
        return _paired_median(self.rounds, "hfreduce", "mpi") if self.fp8 else None

    @property
    def mpi_path_ratio(self):
        """HFReduce's other candidate, --small-path mpi, / MPI (None for fp8: it is the MPI
        figure there)."""
        return None if self.fp8 else _paired_median(self.rounds, "hfmpi", "mpi")

    @property
    def paired_rounds(self):
        return sum(1 for t in self.rounds.values() if "hfreduce" in t and self.reference in t)


def small_points(runs, session=None):
    """[SmallPoint] of one small-message session in `runs` (default: the newest), by ranks, type
    and size; of each rank count the newest complete run."""
    mine = small_series_runs(runs, session)
    if not mine:
        return []
    session = session or max(small_match(r)["session"] for r in mine)
    newest = {}
    for run in sorted(small_series_runs(mine, session), key=lambda r: str(r.id)):
        newest[int(small_match(run)["ranks"])] = run
    points = {}
    for ranks, run in newest.items():
        t = run.tables[SMALL_KIND]
        for i in range(len(t["size"])):
            key = (ranks, _text(t["type"][i]), int(t["size"][i]))
            p = points.setdefault(key, SmallPoint(*key))
            cand = _text(t["candidate"][i])
            p.rounds.setdefault(int(t["round"][i]), {})[cand] = float(t["time_p50"][i])
            if cand == "hfreduce":
                p.carried_by.add(_text(t["path"][i]))
    order = {t: k for k, t in enumerate(SMALL_TYPES)}
    return [points[k] for k in sorted(points, key=lambda k: (k[0], order.get(k[1], 99), k[1],
                                                             k[2]))]


def small_text(points):
    out = [f"{'ranks':>5} {'type':>9} {'size':>6} {'hfreduce us':>12} {'MPI us':>9} "
           f"{'MPI type':>9} {'ratio':>6} {'rounds':>6}  {'hfreduce path':<14} "
           f"{'mpi-path us':>11} {'mpi-path ratio':>14} {'uint8 MPI us':>12} {'vs uint8':>8}"]
    for p in points:
        out.append(f"{p.ranks:5} {p.datatype:>9} {format_size(p.size):>6} "
                   f"{_f(p.hf_median, 2):>12} {_f(p.mpi_median, 2):>9} {p.mpi_type:>9} "
                   f"{_f(p.ratio, 2):>6} {p.paired_rounds:>6}  "
                   f"{', '.join(sorted(p.carried_by)):<14} {_f(p.median('hfmpi'), 2):>11} "
                   f"{_f(p.mpi_path_ratio, 2):>14} "
                   f"{_f(p.median('mpi') if p.fp8 else None, 2):>12} "
                   f"{_f(p.stand_in_ratio, 2):>8}")
    return out


def small_matrix(points, ranks, stand_in=False):
    """(head, body): ratio HFReduce / MPI per type (rows) and size (columns) for one rank count;
    stand_in: the fp8 rows only, against MPI_Allreduce of uint8 on the same bytes."""
    mine = [p for p in points if p.ranks == ranks]
    sizes = sorted({p.size for p in mine})
    types = []
    for p in mine:
        if p.datatype not in types and (not stand_in or p.fp8):
            types.append(p.datatype)
    cell = {(p.datatype, p.size): p for p in mine}
    body = []
    for dt in types:
        if stand_in:
            row = [f"{dt} (MPI: {MPI_STAND_IN[dt]})"]
        else:
            row = [dt + (f" (MPI: {USER_OP})" if dt in MPI_STAND_IN else "")]
        for s in sizes:
            p = cell.get((dt, s))
            value = None if p is None else (p.stand_in_ratio if stand_in else p.ratio)
            row.append(_f(value, 2) if value is not None else "-")
        body.append(row)
    return ["type"] + [format_size(s) for s in sizes], body


def _highest(points, key):
    worst = max(points, key=key)
    return f"highest {key(worst):.2f} ({worst.datatype}, {format_size(worst.size)})"


def small_summary(points):
    lines = []
    for ranks in sorted({p.ranks for p in points}):
        rs = [p for p in points if p.ranks == ranks and p.ratio is not None]
        if not rs:
            continue
        line = (f"{ranks} ranks: median ratio {statistics.median(p.ratio for p in rs):.2f} over "
                f"{len(rs)} points, HFReduce faster or equal at {sum(p.ratio <= 1 for p in rs)}; "
                + _highest(rs, lambda p: p.ratio))
        lower = [p for p in rs if p.stand_in_ratio is not None]
        if lower:
            line += (f"; fp8 against MPI's uint8 on the same bytes (a lower bound): faster or "
                     f"equal at {sum(p.stand_in_ratio <= 1 for p in lower)} of {len(lower)}, "
                     + _highest(lower, lambda p: p.stand_in_ratio))
        alt = [p for p in rs if p.mpi_path_ratio is not None]
        if alt:
            line += (f"; the other candidate, the MPI fast path (--small-path mpi): median "
                     f"{statistics.median(p.mpi_path_ratio for p in alt):.2f}, "
                     + _highest(alt, lambda p: p.mpi_path_ratio))
        lines.append(line)
    return lines


SMALL_NOTE = ("small_message_bench times HFReduce (the library's defaults), HFReduce with "
              "--small-path mpi (mpi-path: MPI_Allreduce at every size through HFReduce's ops) "
              "and MPI_Allreduce side by side in one process: at each point the three run back "
              "to back, in an order reversed every round, so each round's ratio pairs calls "
              "made in the same machine state (the VM's latency differs from one mpirun to the "
              "next by up to 3x). sum, out-of-place; time = median iteration of the slowest "
              "rank, median over rounds; ratio = the median of the per-round ratios HFReduce / "
              "MPI (< 1: HFReduce faster). fp8 has no MPI type: its MPI figure is MPI_Allreduce "
              "with a user-defined fp8 op (mpi-path), and the fp8 table beside it sets HFReduce "
              "against MPI_Allreduce of uint8 on the same bytes, which moves the bytes without "
              "any fp8 arithmetic (a lower bound). Below 16 KiB (--fallback-bytes) HFReduce's "
              "calls take the shared-memory exchange on one node (shm; fp8 from 512 B with the "
              "reduction split over the ranks, and up to 64 KiB), above it the pipeline "
              "(intra-node).")


def describe_runs(runs):
    """Header lines: dates, host CPU, MPI library, build, as the runs recorded them."""
    def values(name):
        return sorted({_text(r.attrs.get(name, "")) for r in runs if r.attrs.get(name)})
    dates = values("date")
    when = f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "?")
    return [f"# runs: {len(runs)}, {when}",
            f"# host CPU: {', '.join(values('cpu_model')) or '?'} ({os.cpu_count()} cores here)",
            f"# MPI: {', '.join(values('mpi_library_version')) or '?'}",
            f"# build: git {', '.join(values('git_commit')) or '?'}"]


def _auto_settings(runs):
    """'rate layout: chunk C, depth D, link L GB/s A us (source)' of the auto runs."""
    out = []
    for (m, run) in _latest_complete(runs, emu_match).values():
        if m["program"] != "hfreduce" or m["variant"] != "auto":
            continue
        a = run.attrs
        chunk = a.get("hfreduce_chunk_bytes")
        out.append(f"#   {m['rate']} {m['nodes']}x{m['rpn']}: chunk "
                   f"{format_size(int(chunk)) if chunk is not None else '?'}, depth "
                   f"{a.get('hfreduce_pipeline_depth', '?')}, link model "
                   f"{_f(_num(a.get('hfreduce_link_gbps')))} GB/s "
                   f"{_f(_num(a.get('hfreduce_link_latency_us')), 1)} us "
                   f"({a.get('hfreduce_link_source', '?')})")
    return out


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# ---- running the series ----------------------------------------------------------------------

def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class SigtermInterrupts:
    """While active, SIGTERM raises KeyboardInterrupt: the cleanup of Ctrl-C runs for it too."""

    def __enter__(self):
        self.old = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.old)


class Uninterrupted:
    """While active, SIGINT and SIGTERM are ignored: a clean-up runs to its end."""

    def __enter__(self):
        self.old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self.old.items():
            signal.signal(s, handler)


def _stop(proc, grace=30.0):
    """SIGTERM to the child's process group, SIGKILL after `grace` s. `ffbench run` stops its
    point's processes on SIGTERM (a few seconds): the grace leaves it that time."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_child(cmd, env, quiet=False, timeout=None):
    """The exit status of `cmd`, run in a session of its own; an interrupt (Ctrl-C, SIGTERM) or
    the timeout (status 124) stops its whole process group first."""
    print(f"# running: {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL if quiet else None)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        print(f"# killed after {timeout:g} s: {' '.join(cmd)}", flush=True)
        return 124
    except BaseException:
        _stop(proc)
        raise


def _ffbench_env():
    env = dict(ENV)
    env["PYTHONPATH"] = os.pathsep.join(
        [paths.PYTHON_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def emu_sweep(rate, layouts, sizes, iters, warmup, emu_name, timeout):
    """The `ffbench run` sweep of one link rate: per layout, HFReduce tree/ring/auto and Open MPI
    default/ring/Rabenseifner, each one mpirun over every size (fp32 sum)."""
    spec = {"min": format_size(sizes[0]), "max": format_size(sizes[-1])}
    if len(sizes) > 1:
        spec["factor"] = sizes[1] // sizes[0]
    tag = f"emu{rate}"
    entries = []
    for nodes, rpn in layouts:
        shape = {"nodes": [nodes], "ranks_per_node": rpn, "sizes": spec, "types": ["float"],
                 "ops": ["sum"], "iters": iters, "warmup": warmup}
        entries.append({"name": f"{tag}.hfreduce", "program": "hfreduce_bench", **shape,
                        "variants": [{"name": v, **({"options": {"inter-node": opt}}
                                                    if opt else {})} for v, opt in HF_VARIANTS]})
        entries.append({"name": f"{tag}.mpi", "program": "mpi_allreduce_bench", **shape,
                        "variants": [{"name": v, **({"env": {
                            "OMPI_MCA_coll_tuned_use_dynamic_rules": 1,
                            "OMPI_MCA_coll_tuned_allreduce_algorithm": alg}} if alg else {})}
                            for v, alg in MPI_VARIANTS]})
    return {"name": "perf-hfreduce-emu", "launcher": "emu", "emu": {"name": emu_name},
            "compare": False, "timeout": timeout, "env": {SERIES_ENV: f"emu-{rate}"},
            "collectives": entries}


def parse_layouts(text):
    out = []
    for item in [s for s in text.split(",") if s]:
        m = LAYOUT_RE.match(item)
        if not m or int(m.group(1)) < 2 or int(m.group(2)) < 1:
            raise UsageError(f"--layouts {text!r}: '{item}' is not NODESxRANKS with NODES >= 2 "
                             f"and RANKS >= 1; give e.g. 2x1,3x1,3x2")
        out.append((int(m.group(1)), int(m.group(2))))
    if not out:
        raise UsageError("--layouts '': give at least one NODESxRANKS, e.g. 2x1")
    return out


def parse_rates(text):
    from ffbench.launch.emu import RATE_RE
    rates = [s for s in text.split(",") if s]
    for r in rates:
        if not RATE_RE.match(r):
            raise UsageError(f"--rates {text!r}: '{r}' is not a tc rate; give e.g. 1gbit,10gbit")
    if not rates:
        raise UsageError("--rates '': give at least one tc rate, e.g. 1gbit")
    return rates


def parse_sizes(text):
    sizes = [parse_size(s, f"--sizes {text!r}", UsageError) for s in text.split(",") if s]
    factors = {b / a for a, b in zip(sizes, sizes[1:])} if len(sizes) > 1 else set()
    if not sizes or sizes[0] <= 0 or (factors and (len(factors) != 1 or min(factors) <= 1
                                                   or min(factors) != int(min(factors)))):
        raise UsageError(f"--sizes {text!r}: give increasing sizes a constant whole factor apart "
                         f"(one mpirun sweeps them), e.g. 256K,1M,4M,16M")
    return sizes


def _outputs(args, stem):
    """(results file, text file): --output / --text, else results/<stem>.{h5,txt}; --quick: a
    new temporary directory."""
    if args.quick and not (args.output and args.text):
        where = tempfile.mkdtemp(prefix=f"{stem}-quick-")
    else:
        where = os.path.join(ROOT, "results")
    out = os.path.abspath(args.output or os.path.join(where, f"{stem}.h5"))
    text = os.path.abspath(args.text or os.path.join(where, f"{stem}.txt"))
    for p in (out, text):
        os.makedirs(os.path.dirname(p), exist_ok=True)
    return out, text


def _need_programs(bin_dir, programs):
    for prog in programs:
        if not os.access(os.path.join(bin_dir, prog), os.X_OK):
            raise UsageError(f"--bin {bin_dir}: {prog} is missing; build first (make build) or "
                             f"give the directory of the programs")


def write_text(path, lines):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, path)


def _read_runs(path, kind):
    """The runs of `path` of one kind, after folding its segments into the one file (an index
    with a segment per program run otherwise: one file to commit)."""
    from ffbench.data import h5io
    if not os.path.exists(path):
        return []
    if h5io.compact(path):
        print(f"# {path}: segments folded into the one file (ffbench merge --compact)")
    return h5io.read_runs(path, kind=kind)



def run_emulated(args):
    from ffbench.launch import emu
    rates = parse_rates(args.rates or (EMU_RATES[0] if args.quick else ",".join(EMU_RATES)))
    layouts = parse_layouts(args.layouts) if args.layouts else list(
        EMU_QUICK_LAYOUTS if args.quick else EMU_LAYOUTS)
    sizes = parse_sizes(args.sizes or ("1M" if args.quick else ",".join(EMU_SIZES)))
    iters, warmup = args.iters or 5, 2 if args.warmup is None else args.warmup
    if not emu.NAME_RE.match(args.emu_name):
        raise UsageError(f"--emu-name {args.emu_name!r}: expected 1-8 lowercase letters/digits, "
                         f"starting with a letter")
    if max(n for n, _ in layouts) > emu.MAX_NODES:
        raise UsageError(f"--layouts {args.layouts}: at most {emu.MAX_NODES} nodes")
    emu.require_root("perf-hfreduce --emulated")
    _need_programs(args.bin, ("hfreduce_bench", "mpi_allreduce_bench"))
    if emu.load_state(args.emu_name) is not None:
        raise UsageError(f"--emu-name {args.emu_name}: an emulated cluster of that name is up "
                         f"(another run may be using it); take it down with `scripts/ffbench emu "
                         f"down --name {args.emu_name}` or give another --emu-name")
    out, text = _outputs(args, "perf-hfreduce-emu")
    nodes = max(n for n, _ in layouts)
    work = tempfile.mkdtemp(prefix="perf-hfreduce-emu-")
    start, status = time.time(), 0
    try:
        with SigtermInterrupts():
            for k, rate in enumerate(rates):
                cfg = os.path.join(work, f"emu-{rate}.yaml")
                with open(cfg, "w") as fh:
                    yaml.safe_dump(emu_sweep(rate, layouts, sizes, iters, warmup, args.emu_name,
                                             args.timeout), fh, sort_keys=False)
                emu.up(args.emu_name, nodes, rate)
                print(f"# emu: cluster '{args.emu_name}' up: {nodes} nodes, {rate} links",
                      flush=True)
                cmd = [sys.executable, "-m", "ffbench", "run", cfg, "--launcher", "emu",
                       "--emu-name", args.emu_name, "--output", out, "--bin", args.bin,
                       "--no-compare"] + (["--fresh"] if k == 0 and not args.resume else [])
                status = run_child(cmd, _ffbench_env()) or status
                emu.down(args.emu_name, quiet=True)
    finally:
        with Uninterrupted():
            removed = emu.down(args.emu_name, quiet=True)
        print(f"# emu: cluster '{args.emu_name}' down" + (f" ({removed} namespace(s) removed)"
                                                          if removed else ""), flush=True)
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
    runs = emu_series_runs(_read_runs(out, "collective"))
    points = [p for p in emu_points(runs)
              if p.rate in rates and (p.nodes, p.rpn) in layouts and p.size in sizes]
    lines = [f"# scripts/perf-hfreduce --emulated: HFReduce against Open MPI on the emulated "
             f"cluster (measured), written {now_text()}",
             f"# command: {' '.join(['scripts/perf-hfreduce'] + list(args.argv))}",
             f"# rates {','.join(rates)}; layouts {','.join(f'{n}x{r}' for n, r in layouts)} "
             f"(nodes x ranks per node); sizes {','.join(format_size(s) for s in sizes)}; fp32 "
             f"sum; -n {iters} -w {warmup} per size and placement (shown: out-of-place)"]
    lines += describe_runs(runs) + ["# hfreduce auto resolved (run attrs):"] + _auto_settings(runs)
    lines += ["#", "# busbw GB/s; auto/MPI = auto / best Open MPI; auto/HF = auto / best of tree "
                   "and ring; auto= its algorithm (row column); bound GB/s busbw; see the note"]
    lines += emu_text(points) + ["", "## Summary"] + emu_summary(points)
    lines += ["", f"# {BOUND_NOTE}", f"# runs: {out}",
              f"# wall time {(time.time() - start) / 60:.1f} min"]
    write_text(text, lines)
    print("\n".join(lines))
    print(f"# table written to {text}")
    expected = len(rates) * len(layouts) * len(COLUMNS) * len(sizes)
    found = sum(len(p.busbw) for p in points)
    if found < expected:
        print(f"# perf-hfreduce: {expected - found} of {expected} measurements missing (failed "
              f"points: see ffbench run's lines above)")
        status = status or 1
    return status


def now_text():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def run_small(args):
    _need_programs(args.bin, ("small_message_bench",))
    out, text = _outputs(args, "perf-hfreduce-small")
    ranks = (2,) if args.quick else (2, 4)
    types = SMALL_QUICK_TYPES if args.quick else SMALL_TYPES
    iters = args.iters or (50 if args.quick else 200)
    warmup = (5 if args.quick else 20) if args.warmup is None else args.warmup
    rounds = args.rounds or (2 if args.quick else 16)
    factor = "4" if args.quick else "2"
    session = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    series = f"small.{session}"
    start, status = time.time(), 0
    with SigtermInterrupts():
        for np_ in ranks:
            cmd = ["mpirun", "-np", str(np_), os.path.join(args.bin, "small_message_bench"),
                   "-b", "4", "-e", "64K", "-f", factor, "-n", str(iters), "-w", str(warmup),
                   "-r", str(rounds), "-d", ",".join(types), "--output", out,
                   "--label", small_label(series, np_)]
            status = run_child(cmd, dict(ENV, **{SERIES_ENV: series}), quiet=True,
                               timeout=args.timeout) or status
    runs = small_series_runs(_read_runs(out, SMALL_KIND), session)
    points = small_points(runs, session)
    lines = [f"# scripts/perf-hfreduce --small: HFReduce against MPI_Allreduce, 4 B - 64 KiB, "
             f"every type (measured), written {now_text()}",
             f"# command: {' '.join(['scripts/perf-hfreduce'] + list(args.argv))}",
             f"# ranks {','.join(map(str, ranks))} on this host, one small_message_bench run "
             f"each: {rounds} rounds, -n {iters} -w {warmup} per candidate and point; sum, "
             f"out-of-place; time = median iteration of the slowest rank, median over rounds; "
             f"ratio = median of the per-round HFReduce / MPI (< 1: HFReduce faster)"]
    lines += describe_runs(runs) + [""] + small_text(points)
    for np_ in ranks:
        head, body = small_matrix(points, np_)
        lines += ["", f"## ratio HFReduce / MPI, {np_} ranks"]
        lines += ["  ".join(f"{c:>22}" if j == 0 else f"{c:>6}" for j, c in enumerate(row))
                  for row in [head] + body]
    for np_ in ranks:
        head, body = small_matrix(points, np_, stand_in=True)
        if body:
            lines += ["", f"## fp8: ratio HFReduce / MPI_Allreduce of uint8 on the same bytes "
                          f"(no fp8 arithmetic in MPI's figure: a lower bound), {np_} ranks"]
            lines += ["  ".join(f"{c:>22}" if j == 0 else f"{c:>6}" for j, c in enumerate(row))
                      for row in [head] + body]
    lines += ["", "## Summary"] + small_summary(points)
    lines += ["", f"# {SMALL_NOTE}", f"# runs: {out}",
              f"# wall time {(time.time() - start) / 60:.1f} min"]
    write_text(text, lines)
    print("\n".join(lines))
    print(f"# table written to {text}")
    return status


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="perf-hfreduce", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--emulated", action="store_true",
                      help="the emulated-cluster series (root; see above)")
    mode.add_argument("--small", action="store_true",
                      help="the small-message table, every type, 2 and 4 ranks")
    ap.add_argument("--quick", action="store_true",
                    help="short version (host: 64 MiB, 2 ranks; emulated: 2x1 and 3x1, 1gbit, "
                         "1 MiB; small: 2 ranks, float/half/fp8_e4m3, x4 sizes, 2 rounds); files "
                         "in a new temporary directory unless --output/--text")
    ap.add_argument("--bin", default=paths.bin_dir(),
                    help="directory of the programs (default: $FFB_BIN, else build/bin)")
    ap.add_argument("--output", help="results file (default results/perf-hfreduce[-emu|-small].h5)")
    ap.add_argument("--text", help="table file (default results/perf-hfreduce-{emu,small}.txt)")
    ap.add_argument("--iters", type=int, help="timed iterations per size (host and emulated: 5; "
                    "small: 200)")
    ap.add_argument("--warmup", type=int, help="warm-up iterations per size (emulated: 2; "
                    "small: 20)")
    ap.add_argument("--rounds", type=int, help="small: rounds over every point (default 16)")
    ap.add_argument("--emu-name", default="ffb",
                    help="emulated cluster name (default ffb; refused while one of that name is "
                         "up)")
    ap.add_argument("--rates", help=f"emulated: tc link rates (default {','.join(EMU_RATES)})")
    ap.add_argument("--layouts", help="emulated: NODESxRANKS list (default "
                    f"{','.join(f'{n}x{r}' for n, r in EMU_LAYOUTS)})")
    ap.add_argument("--sizes", help=f"emulated: sizes a constant factor apart (default "
                    f"{','.join(EMU_SIZES)})")
    ap.add_argument("--resume", action="store_true",
                    help="emulated: keep the points an earlier run completed in --output")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds one program run may take before it is killed (default 600)")
    args = ap.parse_args(argv)
    for name in ("iters", "rounds"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name} {v}: give at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise UsageError(f"--warmup {args.warmup}: give 0 or more")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g}: give seconds > 0")
    if not args.emulated:
        for name in ("rates", "layouts", "sizes", "resume"):
            if getattr(args, name):
                raise UsageError(f"--{name}: only with --emulated")
    args.argv = list(argv)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(argv)
        if args.emulated:
            return run_emulated(args)
        if args.small:
            return run_small(args)
        _need_programs(args.bin, ("hfreduce_bench", "mpi_allreduce_bench", "membw_bench"))
        return run_host(args)
    except FfbenchError as exc:
        sys.stderr.write(f"perf-hfreduce: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("perf-hfreduce: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
