"""`ffbench report RESULTS... --out DIR [--markdown FILE]`: plots (PNG) and a Markdown report.

The report leads with the verdict: for every machine in the results (machines.group: host names,
CPU model, GPU model, node count) the verdict table of verdict.py. One section per machine
follows, built from that machine's runs only: its description, the row-by-row comparison with the
paper (configs/reference/fire-flyer-2.yaml), allreduce bus bandwidth against message size
(HFReduce, the best MPI algorithm and NCCL on the same axes) and against node count with the
paper's points, storage throughput and latency, the fio cross-check, ddp_bench step times, the
24 S host memory model applied to the machine's own probe, and what could not be measured there.
Model output (`ffbench cost`, `ffbench model`) is machine-independent and comes last. Runs of
different machines never share a table or a plot; every number is labelled measured, reference
(the paper) or model.
"""
import datetime
import glob
import math
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np

from ffbench.analysis import compare as cmp
from ffbench.data import h5io
from ffbench.data import machines as machmod
from ffbench.data import results as resmod
from ffbench.data.paths import PYTHON_DIR, repo_root
from ffbench.analysis import verdict as verdmod
from ffbench.errors import UsageError

DEFAULT_REFERENCE = "configs/reference/fire-flyer-2.yaml"
PAPER_SIZE = 192937984
MAX_SERIES = 8  # lines per axes
# ffbench's own plot names (with or without a machine slug): stale ones are removed from --out
OWN_PNGS = ("busbw_vs_size*.png", "busbw_vs_nodes*.png", "storage_*.png",
            "ddp_step_time_vs_gpus*.png")
# Open MPI's tuned allreduce algorithms (OMPI_MCA_coll_tuned_allreduce_algorithm)
MPI_ALGORITHMS = {"1": "basic linear", "2": "nonoverlapping", "3": "recursive doubling",
                  "4": "ring", "5": "segmented ring", "6": "Rabenseifner"}
BACKEND_ORDER = {"hfreduce": 0, "mpi": 1, "nccl": 2}
SHAPE_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"),
                ((0, (1, 2)), "P"))


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("ffbench report needs matplotlib for /usr/bin/python3: apt-get install "
                         "python3-matplotlib (or run scripts/setup-deps)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def fmt_size(n):
    n = int(n)
    for suffix, mult in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= mult:
            v = n / mult
            return f"{v:g}{suffix}" if v == int(v) else f"{v:.1f}{suffix}"
    return f"{n}"


def _f(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def _latest_by(rows, keyfn):
    """Keep the rows of the latest run for every identity keyfn(row)."""
    latest = {}
    for r in rows:
        k = keyfn(r)
        d = str(r.get("date", ""))
        if k not in latest or d > latest[k]:
            latest[k] = d
    return [r for r in rows if str(r.get("date", "")) == latest[keyfn(r)]]


def _md_table(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in body:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in b) + " |")
    return lines


class Context:
    """Where one report writes: the PNG folder, links relative to the Markdown file, the
    figures written so far, and the reference values."""

    def __init__(self, out_dir, md_path, refs, reference, paths):
        self.out_dir, self.refs, self.reference, self.paths = out_dir, refs, reference, paths
        self.md_dir = os.path.dirname(os.path.abspath(md_path))
        self.figures = []

    def rel(self, p):
        return os.path.relpath(p, self.md_dir)

    def png(self, stem, slug):
        p = os.path.join(self.out_dir, f"{stem}.{slug}.png")
        self.figures.append(p)
        return p


# ---- collective series ------------------------------------------------------------------------

def shape_text(nodes, ranks, rpn=""):
    if int(nodes) == 1:
        return f"{_plural(int(ranks), 'rank')}, 1 node"
    return f"{nodes} nodes x {rpn or int(ranks) // int(nodes)}/node"


def series_label(r):
    shape = _plural(r["ranks"], "rank") if r["nodes"] == 1 else \
        f"{r['nodes']} nodes x {r['ranks_per_node']}"
    return f"{r['series']} ({shape})"


def collective_series(runs):
    """{(backend, "series (shape)"): rows by size} of the out-of-place allreduce rows, latest run
    each (imported allgather, bcast, ... runs are other collectives: not on these axes)."""
    rows = [r for r in resmod.collective_rows(runs)
            if r.get("placement") == "out-of-place" and r.get("status") == "complete"
            and (r.get("collective") or "allreduce") == "allreduce"]
    rows = _latest_by(rows, lambda r: (r["series"], r["ranks"], r["nodes"], r["program"]))
    series = {}
    for r in rows:
        series.setdefault((r["backend"] or r["program"], series_label(r)), []).append(r)
    for k in series:
        series[k].sort(key=lambda r: r["size"])
    return series


def _points(rows):
    # busbw is 0 for one rank (factor 2(n-1)/n) and sizes of 0 B: nothing to draw on a log axis
    return [(r["size"], r["busbw"]) for r in rows if r["busbw"] > 0 and r["size"] > 0]


def _shape(rows):
    r = rows[0]
    return (r["nodes"], r["ranks"], str(r["ranks_per_node"]))


def mpi_algorithm(rows):
    """"ring (alg 4)" for a pinned Open MPI algorithm, else the default's decision rules."""
    alg = str((rows[0].get("env") or {}).get("OMPI_MCA_coll_tuned_allreduce_algorithm") or "")
    if not alg or alg == "0":
        return "default (Open MPI's decision rules)"
    return f"{MPI_ALGORITHMS.get(alg, 'algorithm')} (alg {alg})"


def best_mpi(candidates):
    """(key, size): of MPI series of one shape, the one with the highest busbw at the largest
    size at least two of them measured (the largest size of all when no two share one)."""
    pts = {k: dict(_points(rows)) for k, rows in candidates.items()}
    pts = {k: v for k, v in pts.items() if v}
    if not pts:
        return None, None
    count = Counter(s for v in pts.values() for s in v)
    shared = [s for s, c in count.items() if c >= 2]
    size = max(shared or count)
    key = max((k for k in pts if size in pts[k]), key=lambda k: (pts[k][size], k))
    return key, size


def _drawn_for_shape(group, notes):
    """[(key, legend label)] drawn for one shape: every HFReduce and NCCL (and other backends')
    series with a positive point, and the best MPI series; notes[key] says why others are not."""
    drawn, mpi = [], {}
    for key, rows in sorted(group.items()):
        if not _points(rows):
            notes[key] = ("not drawn: busbw is 0 for one rank (2(n-1)/n = 0)"
                          if rows[0]["ranks"] == 1 else "not drawn: no positive busbw")
        elif key[0] == "mpi":
            mpi[key] = rows
        else:
            drawn.append((key, key[1]))
    best, at = best_mpi(mpi)
    for key in mpi:
        if key == best:
            drawn.append((key, f"MPI best at {fmt_size(at)}B: {mpi_algorithm(mpi[key])}, "
                               f"{key[1]}"))
        else:
            notes[key] = f"not drawn (MPI; the best of this shape: {best[1]})"
    drawn.sort(key=lambda e: (BACKEND_ORDER.get(e[0][0], 3), e[0][1]))
    for key, _ in drawn:
        notes[key] = "drawn"
    return drawn


def size_panels(series):
    """The axes of one machine's busbw_vs_size plot: ([(title, [(key, label)])], notes).

    One axes when all shapes (node and rank counts) together draw at most MAX_SERIES series,
    else one per shape (split further past MAX_SERIES); never an axes without a series."""
    by_shape, notes = {}, {}
    for key, rows in series.items():
        by_shape.setdefault(_shape(rows), {})[key] = rows
    per_shape = [(shape, _drawn_for_shape(by_shape[shape], notes))
                 for shape in sorted(by_shape, key=lambda s: (s[0], s[1]))]
    per_shape = [(s, d) for s, d in per_shape if d]
    if sum(len(d) for _, d in per_shape) <= MAX_SERIES:
        entries = [e for _, d in per_shape for e in d]
        return ([("", entries)] if entries else []), notes
    panels = []
    for shape, d in per_shape:
        for i in range(0, len(d), MAX_SERIES):
            panels.append((shape_text(*shape), d[i:i + MAX_SERIES]))
    return panels, notes


def _series_styles(series, panels):
    """{key: (color, linestyle, marker)}: a colour per series name (one for "MPI best"); on a
    single axes holding several shapes, a line style and marker per shape as well."""
    import matplotlib
    palette = list(matplotlib.colormaps["tab10"].colors)
    names, shapes, styles = {}, {}, {}
    for _, entries in panels:
        for key, label in entries:
            name = "MPI best" if label.startswith("MPI best") else re.sub(r" \(.*\)$", "", key[1])
            color = names.setdefault(name, palette[len(names) % len(palette)])
            shape = _shape(series[key]) if len(panels) == 1 else None
            ls, marker = shapes.setdefault(shape, SHAPE_STYLES[len(shapes) % len(SHAPE_STYLES)])
            styles[key] = (color, ls, marker)
    return styles


def _plain_log_labels(ax):
    """Y tick labels such as 0.1 and 12 on a log axis (not 1.25 x 10^-1); the minor ticks are
    labelled too when the axis spans less than about one and a half decades."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _pos):
        lo, hi = ax.get_ylim()
        return f"{v:g}" if lo > 0 and hi / lo < 30 else ""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _log2_ticks(lo, hi, most=8):
    k0, k1 = int(math.floor(math.log2(lo))), int(math.ceil(math.log2(hi)))
    step = max(1, -(-(k1 - k0) // most))
    step = next(s for s in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 32) if s >= step)
    return [1 << k for k in range(max(0, k0), k1 + 1, step)]


def plot_busbw_vs_size(series, panels, path, title=""):
    """One machine's busbw against size, one axes per panel (size_panels). Legends sit outside
    the axes (right of a single axes, below each of several). Returns the legend labels of each
    axes, read back from the lines drawn."""
    plt = _plt()
    n = len(panels)
    ncols = 1 if n == 1 else min(n, 3)
    nrows = -(-n // ncols)
    longest = max(len(e) for _, e in panels)
    width = 11.5 if n == 1 else 5.2 * ncols
    height = 5.0 if n == 1 else nrows * (3.6 + 0.17 * longest)
    fig = plt.figure(figsize=(width, height), layout="constrained")
    styles = _series_styles(series, panels)
    sizes = [p[0] for _, entries in panels for k, _ in entries for p in _points(series[k])]
    ticks = _log2_ticks(min(sizes), max(sizes))
    drawn, first = [], None
    for i, (ptitle, entries) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1, sharey=first)
        first = first or ax
        for key, label in entries:
            pts = _points(series[key])
            color, ls, marker = styles[key]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linestyle=ls,
                    marker=marker, ms=4 if len(pts) > 1 else 8, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([fmt_size(t) for t in ticks])
        ax.set_xlabel("message size (B)")
        ax.set_ylabel("busbw (GB/s, out-of-place, log)")
        if ptitle:
            ax.set_title(ptitle, fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        if n == 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
        else:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, frameon=False)
        drawn.append([line.get_label() for line in ax.get_lines()])
    for ax in fig.axes:  # after sharey settled the limits
        _plain_log_labels(ax)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def paper_curves(refs):
    """{label: [(nodes, value)]} of the paper's allreduce points (reference values)."""
    curves = {}
    names = {"R1": "paper HFReduce, R1 (reference)", "R2": "paper NCCL, R2 (reference)",
             "R4": "paper HFReduce+NVLink, R4 (reference)"}
    for ref in refs:
        m = re.match(r"(R1|R2|R4)\.g(\d+)$", ref.id)
        if m and ref.kind == "collective":
            nodes = ref.conditions.get("nodes")
            curves.setdefault(names[m.group(1)], []).append((nodes, ref.value))
    return {k: sorted(v) for k, v in curves.items()}


def nodes_points(series):
    """{(backend, name, ranks per node): [(nodes, busbw, size)]} of the series one machine
    measured on several nodes, at 184 MiB if measured, else the largest size."""
    pts = {}
    for (backend, label), rows in series.items():
        at = [r for r in rows if r["size"] == PAPER_SIZE] or [rows[-1]]
        r = at[-1]
        name = re.sub(r" \(.*\)$", "", label)
        pts.setdefault((backend, name, r["ranks_per_node"]), []).append(
            (r["nodes"], r["busbw"], r["size"]))
    return {k: sorted(v) for k, v in pts.items() if any(n > 1 for n, _, _ in v)}


def nodes_drawn(points, room):
    """The measured series busbw_vs_nodes draws: all with a positive point when they fit in
    `room`, else every non-MPI series and the MPI ones with the highest busbw at their largest
    node count, until the room is full."""
    keys = sorted(k for k, v in points.items() if any(p[1] > 0 for p in v))
    if len(keys) <= room:
        return keys
    mpi = sorted((k for k in keys if k[0] == "mpi"), key=lambda k: -max(points[k])[1])
    return sorted(([k for k in keys if k[0] != "mpi"] + mpi)[:room])


def plot_busbw_vs_nodes(points, curves, path, title=""):
    """Paper's points dashed (reference), measured solid; legend right of the axes. Returns the
    legend labels."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11.5, 4.8), layout="constrained")
    for label, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="--", marker="s", ms=4,
                label=label, alpha=0.8)
    for key in nodes_drawn(points, MAX_SERIES - len(curves)):
        backend, name, rpn = key
        pts = [p for p in points[key] if p[1] > 0]  # one rank: busbw 0, not drawable on a log axis
        sizes = sorted({fmt_size(p[2]) for p in pts})
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=6,
                label=f"measured {name}, {rpn}/node, {'/'.join(sizes)}B")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    xs = sorted({int(x) for line in ax.get_lines() for x in line.get_xdata()})
    if xs:
        ax.set_xticks(xs)
        ax.set_xticklabels([str(int(x)) for x in xs], rotation=45)
        ax.minorticks_off()
    ax.set_xlabel("nodes")
    ax.set_ylabel("allreduce busbw (GB/s, log scale)")
    ax.set_title(title or "Allreduce bandwidth against nodes: paper (dashed) and measured (solid)",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    _plain_log_labels(ax)
    drawn = [line.get_label() for line in ax.get_lines()]
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


# ---- storage plots --------------------------------------------------------------------------

def storage_table(runs):
    # fio-crosscheck's own storage_bench runs (label crosscheck:CASE:RUN) have their section
    rows = [r for r in resmod.storage_rows(runs) if not str(r["label"]).startswith("crosscheck:")]
    rows = _latest_by(rows, lambda r: (r["series"], r["ranks"], r["nodes"]))
    return [r for r in rows if int(r.get("rep", 0) or 0) == 0]


def _num_or_0(v):
    return v if isinstance(v, float) and v == v else 0.0


def plot_storage(rows, tput_path, lat_path):
    plt = _plt()
    names = [f"{r.get('workload')} {r.get('phase')}" for r in rows]
    bws = [_num_or_0(r.get("bw")) for r in rows]
    rates = [_num_or_0(r.get("ops_rate")) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    x = np.arange(len(rows))
    axes[0].bar(x, bws, color="tab:blue")
    axes[0].set_ylabel("throughput (GB/s)")
    axes[0].set_title("storage throughput (measured)")
    axes[1].bar(x, rates, color="tab:green")
    axes[1].set_ylabel("operations/s")
    axes[1].set_yscale("log")
    axes[1].set_title("storage operation rate (measured)")
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(names, fontsize=7, rotation=35, ha="right")
        ax.grid(True, axis="y", alpha=0.3)
    fig.savefig(tput_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4.2), layout="constrained")
    width = 0.27
    for i, (col, label) in enumerate((("lat_p50", "p50"), ("lat_p99", "p99"),
                                      ("lat_p999", "p99.9"))):
        ax.bar(x + (i - 1) * width, [_num_or_0(r.get(col)) for r in rows], width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=7, rotation=35, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("latency of the phase's main operation (us)")
    ax.set_title("storage latency percentiles (measured, exact across ranks)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    fig.savefig(lat_path, dpi=110)
    plt.close(fig)


# ---- markdown: the verdict ------------------------------------------------------------------

def verdict_section(machine_list, refs):
    """## Verdict: per machine, verdict.py's table of capabilities against the paper."""
    lines = ["## Verdict", "",
             "Per machine: each capability of the paper, the paper's value and this machine's, "
             "both normalised to their own hardware (this machine's ceilings come from its own "
             "runs), their ratio, PASS / FAIL / not measured and one short reason. The row-by-row "
             "comparison behind it is in each machine's section.", ""]
    for m, _measured, _slug in machine_list:
        lines += [f"### {m.name}", ""]
        try:
            rows = verdmod.verdicts(m.runs, refs)  # as verdict.machine_verdicts does
        except Exception as exc:  # noqa: BLE001 - the rest of the report stays useful
            lines += [f"No verdict: the verdict engine failed ({type(exc).__name__}: {exc}).", ""]
            continue
        if not rows:
            lines += ["No verdict could be formed for this machine: none of its runs covers a "
                      "capability the verdict engine compares with the paper (no twin covered).",
                      ""]
            continue
        lines += verdmod.verdict_lines(rows, markdown=True)
        lines += ["", verdmod.summary(rows) + ".", ""]
    return lines


# ---- markdown: one machine ------------------------------------------------------------------

def _machine_attrs(runs):
    cpus, simd, mpis, commits, versions, dates, jobs, fs = (set() for _ in range(8))
    max_nodes = 1
    for r in runs:
        a = r.attrs
        for k, s in (("cpu_model", cpus), ("simd_level", simd), ("git_commit", commits),
                     ("suite_version", versions)):
            if a.get(k) and not str(a[k]).startswith(("n/a", "unknown")):
                s.add(str(a[k]))
        mpi = str(a.get("mpi_library_version") or "").replace("\0", "").strip()
        if mpi and not mpi.startswith("n/a"):
            mpis.add(mpi)
        if a.get("date"):
            dates.add(str(a["date"]))
        env = resmod.environment(r)
        if env.get("SLURM_JOB_ID"):
            jobs.add(env["SLURM_JOB_ID"])
        if a.get("fs_type"):
            fs.add(f"{a['fs_type']} ({a.get('mount_point', '?')})")
        max_nodes = max(max_nodes, resmod.int_attr(r, "nnodes", 1))
    commits = {c for c in commits if not any(o != c and o.startswith(c) for o in commits)}
    return dict(cpus=cpus, simd=simd, mpis=mpis, commits=commits, versions=versions, dates=dates,
                jobs=jobs, fs=fs, max_nodes=max_nodes)


def machine_section(machine, runs):
    """The description table of one machine, from its own runs only."""
    a = _machine_attrs(runs)
    hosts = sorted(machine.hosts)
    emu_hosts = [h for h in hosts if machmod.EMU_HOST.fullmatch(h)]
    real_hosts = [h for h in hosts if h not in emu_hosts]
    sources = sorted({getattr(r, "source", "") for r in runs} - {""})
    rows = [("results files", ", ".join(f"`{p}`" for p in sources) + f" ({len(runs)} runs)"),
            ("hosts", ", ".join(real_hosts) or "-")]
    if emu_hosts:
        rows.append(("emulated nodes", f"{len(emu_hosts)} network namespaces ({emu_hosts[0]} .. "
                                       f"{emu_hosts[-1]}) on one real host, TCP over shaped veth "
                                       f"links"))
    dates = a["dates"]
    rows += [("CPU", "; ".join(sorted(a["cpus"])) or machine.cpu or "-"),
             ("GPU", machine.gpu or "none used"),
             ("nodes", str(machine.nodes)),
             ("SIMD level used", ", ".join(sorted(a["simd"])) or "-"),
             ("MPI library", "; ".join(sorted(a["mpis"])) or "-"),
             ("largest node count in a run", str(a["max_nodes"])),
             ("storage file systems", ", ".join(sorted(a["fs"])) or "-"),
             ("suite version / git commit", f"{', '.join(sorted(a['versions'])) or '-'} / "
                                            f"{', '.join(sorted(a['commits'])) or '-'}"),
             ("measured between", f"{min(dates)} and {max(dates)}" if dates else "-")]
    if a["jobs"]:
        rows.append(("Slurm jobs", ", ".join(sorted(a["jobs"], key=lambda j: int(j)
                                                    if j.isdigit() else 0))))
    return ["### The machine", ""] + _md_table(["", ""], rows) + [""]


def comparison_section(cmp_rows, uncovered):
    lines = ["### Comparison with the paper, row by row", "",
             "One row per reference this machine's runs cover (ReFrame-style tolerance: value, "
             "lower and upper fractions, unit). *not comparable* rows give the measured value in "
             "parentheses and the condition that differs.", ""]
    if cmp_rows:
        lines += cmp.table_lines(cmp_rows, markdown=True)
    else:
        lines.append("No reference is covered by this machine's runs.")
    return lines + ["", cmp.summary_line(cmp_rows, uncovered) + ".", ""]


def _series_table(series, notes):
    body = []
    for (backend, label), rows in sorted(series.items()):
        peak = max(rows, key=lambda r: r["busbw"])
        last = rows[-1]
        body.append([backend, label, notes.get((backend, label), ""),
                     f"{_f(peak['busbw'])} at {fmt_size(peak['size'])}B",
                     f"{_f(last['busbw'])} / {_f(last['algbw'])} at {fmt_size(last['size'])}B",
                     _f(last.get("time_p99"), 4)])
    return _md_table(["backend", "series", "in the plot", "peak busbw GB/s (measured)",
                      "busbw / algbw GB/s at the largest size (measured)", "p99 time there (us)"],
                     body) + [""]


def size_section(machine, series, slug, ctx):
    """Allreduce busbw against size: the plot (HFReduce, best MPI, NCCL) and every series."""
    lines = ["### Allreduce bandwidth against message size (measured)", ""]
    if not series:
        return lines + ["No collective results for this machine.", ""]
    panels, notes = size_panels(series)
    if panels:
        p = ctx.png("busbw_vs_size", slug)
        drawn = plot_busbw_vs_size(series, panels, p, f"Allreduce busbw (measured): {machine.name}")
        lines += [f"![allreduce busbw against size, {machine.name}]({ctx.rel(p)})", "",
                  "HFReduce, the best MPI algorithm of each node/rank shape (the highest busbw at "
                  "the largest size at least two MPI series measured) and NCCL on the same axes; "
                  "the other MPI variants are in the table below, not drawn. Series without a "
                  "positive busbw (one rank) are not drawn.", ""]
        for (ptitle, _), labels in zip(panels, drawn):
            lines.append(f"- legend{f' ({ptitle})' if ptitle else ''}: " + "; ".join(labels))
        lines.append("")
    else:
        lines += ["Nothing to draw: no series has a positive busbw (one rank each).", ""]
    return lines + _series_table(series, notes)


def nodes_section(machine, series, slug, ctx):
    """Busbw against nodes with the paper's points: only for a machine with multi-node runs."""
    pts = nodes_points(series)
    if not pts:
        return []
    curves = paper_curves(ctx.refs)
    p = ctx.png("busbw_vs_nodes", slug)
    drawn = plot_busbw_vs_nodes(pts, curves, p, "Allreduce busbw against nodes: paper (dashed, "
                                f"reference) and measured (solid)\n{machine.name}")
    lines = ["### Allreduce bandwidth against nodes, with the paper's points", "",
             f"![busbw against nodes]({ctx.rel(p)})", "",
             "Dashed: the paper's values (reference; 184 MiB fp32 sum, 8 GPUs per node, "
             "A100-PCIe, 200 Gb/s InfiniBand). Solid: measured on this machine, at 184 MiB when "
             "measured, else at the largest size, under its conditions (see the limits below).",
             "",
             "- legend: " + "; ".join(drawn), ""]
    node_counts = sorted({n for c in curves.values() for n, _ in c} |
                         {n for v in pts.values() for n, _, _ in v})
    head = ["nodes"] + list(curves) + [f"measured {name} ({rpn}/node)"
                                       for (_, name, rpn) in sorted(pts)]
    body = []
    for n in node_counts:
        row = [str(n)]
        for c in curves.values():
            row.append(next((_f(v) for x, v in c if x == n), ""))
        for k in sorted(pts):
            row.append(next((f"{_f(v)} @ {fmt_size(s)}B" for x, v, s in pts[k] if x == n), ""))
        body.append(row)
    return lines + _md_table(head, body) + [""]


def storage_section(runs, slug, ctx):
    srows = storage_table(runs)
    if not srows:
        return []
    tp, lp = ctx.png("storage_throughput", slug), ctx.png("storage_latency", slug)
    plot_storage(srows, tp, lp)
    lines = ["### Storage workloads (measured)", "",
             f"![storage throughput]({ctx.rel(tp)})", "", f"![storage latency]({ctx.rel(lp)})", ""]
    body = []
    for r in srows:
        cached = r.get("cache_resident")
        body.append([r.get("workload", ""), r.get("phase", ""), r["ranks"], r.get("fs_type", ""),
                     _f(r.get("bw")), _f(r.get("ops_rate")), _f(r.get("lat_p50")),
                     _f(r.get("lat_p99")), _f(r.get("lat_p999")),
                     "-" if not isinstance(cached, float) or cached != cached
                     else f"{100 * cached:.0f} %"])
    lines += _md_table(["workload", "phase", "ranks", "file system", "GB/s", "ops/s", "p50 us",
                        "p99 us", "p99.9 us", "page-cache resident"], body) + [""]
    return lines + ["Reads of page-cache-resident data measure memory, not the device: the last "
                    "column says how much was resident before the phase.", ""]


def crosscheck_section(runs):
    """storage_bench against fio, side by side in one run (scripts/fio-crosscheck)."""
    lines = []
    for run in runs:
        if run.attrs.get("kind") != "crosscheck" or "crosscheck" not in run.tables:
            continue
        t = run.tables["crosscheck"]
        if not lines:
            lines += ["### storage_bench against fio (measured)", "",
                      "`scripts/fio-crosscheck`: the equivalent fio job beside each storage_bench "
                      "case, alternating (ABBA) on the same directory, one process, medians of the "
                      "runs; ratio = storage_bench / fio (the target: within 5%), paired = median "
                      "of the per-run ratios. Method and pitfalls: docs/storage_bench.md.", ""]
        lines += [f"{run.attrs.get('dir', '?')} ({run.attrs.get('fs_type', '?')}), "
                  f"{fmt_size(int(run.attrs.get('size_bytes', 0) or 0))} per run, "
                  f"{run.attrs.get('runs', '?')} runs per tool, {run.attrs.get('fio_version', 'fio')}, "
                  f"{str(run.attrs.get('date', ''))[:10]}"
                  + (f" ({run.attrs['note']})" if run.attrs.get("note") else "") + ":", ""]
        paired = t.get("paired_ratio")
        body = []
        for i, case in enumerate(t["case"]):
            case = case.decode() if isinstance(case, bytes) else str(case)
            body.append([case, _f(float(t["storage_bench_bw"][i])), _f(float(t["fio_bw"][i])),
                         f"{float(t['ratio'][i]):.3f}",
                         "-" if paired is None else f"{float(paired[i]):.3f}",
                         "yes" if int(t["within_tolerance"][i]) else "NO"])
        lines += _md_table(["case", "storage_bench GB/s", "fio GB/s", "ratio", "paired",
                            "within 5%"], body) + [""]
    return lines


def ddp_section(runs, slug, ctx):
    """Training-step scaling (ddp_bench runs): step time against GPUs with R9/R10 overlaid."""
    from ffbench.analysis import ddp
    rows = ddp.weak_scaling_runs(runs)
    if not rows:
        return []
    p = ctx.png("ddp_step_time_vs_gpus", slug)
    ddp.plot_step_time_vs_gpus(rows, ddp.paper_points(ctx.reference), p)
    body = [[r["series"], r["ranks"], "emulated" if r.get("emulated") else "measured",
             _f(1e3 * float(r["step_time"])), _f(r.get("overlap")),
             _f(r.get("weak_scaling_efficiency"))] for r in rows]
    return ["### Training-step scaling (ddp_bench)", "", f"![step time against GPUs]({ctx.rel(p)})",
            "", "Dashed: the paper's R9/R10 step times (reference). Compute marked *emulated* "
            "sleeps for FLOPs / device rate (no GPU): only the communication and overlap are "
            "measured then.", ""] + _md_table(
                ["series", "ranks", "compute", "step time (ms)", "overlap",
                 "weak-scaling efficiency"], body) + [""]


CEILING_TEXT = (
    "HFReduce moves every byte through host memory. Per node and per unit S of gradient: D2H 8 "
    "writes, intra-node reduce 8 reads + 1 write, inter-node 2 reads + 2 writes + 1 read, H2D 2 "
    "reads (GDRCopy) = **24 S**; with NVLink pairs about 16 S; with cudaMemcpy H2D (8 reads "
    "instead of 2) 30 S. A node then finishes an allreduce of S bytes per GPU no faster than "
    "24 S / (host memory bandwidth): the ceiling is on algbw = S / time (fire-flyer.md section 2; "
    "the paper's figure values are most likely busbw, so its ~8 GB/s and its 13.3 GB/s ceiling "
    "are not on the same axis for sure). This machine's ceilings use its own host memory "
    "bandwidth only.")


def _hfreduce_ceiling_rows(series, bw):
    body = []
    for (backend, label), rows in sorted(series.items()):
        if backend != "hfreduce":
            continue
        last = rows[-1]
        traffic = last["run"].attrs.get("hfreduce_memory_traffic_per_node")
        if not isinstance(traffic, (int, float)) or traffic <= 0:
            continue
        ceiling = bw / traffic
        body.append([label, f"{fmt_size(last['size'])}B", f"{_f(last['algbw'])} (measured)",
                     f"{traffic:g} S (model, recorded by hfreduce_bench)",
                     f"{ceiling:.2f} (model)", f"{100 * last['algbw'] / ceiling:.0f} %"])
    return body


def ceilings_section(machine, runs, series):
    """The 24 S model with this machine's own host memory bandwidth (its probe runs only)."""
    lines = ["### Analytic ceilings: the 24 S host-memory model (model)", "", CEILING_TEXT, ""]
    membw = resmod.host_memory_bandwidth(runs)
    head = ["node", "host memory GB/s", "24 S ceiling GB/s", "16 S (NVLink) GB/s",
            "30 S (memcpy H2D) GB/s"]
    body = [["Fire-Flyer 2 node (paper)", "320 (reference, 16-channel DDR4-3200)",
             "13.3 (reference R5)", "20.0 (model)", "10.7 (model)"]]
    if membw:
        bw, _where = membw
        body.append(["this machine", f"{bw:.1f} (measured)", f"{bw / 24:.2f} (model)",
                     f"{bw / 16:.2f} (model)", f"{bw / 30:.2f} (model)"])
    lines += _md_table(head, body) + [""]
    if not membw:
        shared = (" Its emulated nodes share one real host, whose probe (if any) belongs to that "
                  "host's own section." if machine.emulated else "")
        return lines + ["This machine's host memory bandwidth was not measured (no membw_bench "
                        "probe and no storage_bench start-up probe in its runs), so the model is "
                        "not applied to it." + shared, ""]
    bw, where = membw
    lines += [f"Host memory bandwidth source: {where}.", ""]
    body = _hfreduce_ceiling_rows(series, bw)
    if body:
        lines += ["The same model for the HFReduce runs measured here, with the memory traffic "
                  "per node each run's own configuration implies (recorded by hfreduce_bench):", ""]
        lines += _md_table(["series", "size", "algbw GB/s", "host memory traffic per node",
                            "ceiling algbw GB/s", "measured / ceiling"], body) + [""]
        lines.append("The paper reached about 8 of 13.3 GB/s (60 %) on its nodes; on a small "
                     "shared machine the other ranks, the MPI progress engine and oversubscription "
                     "take their share of the same memory system and cores.")
    return lines + [""]


def _limit_items(machine, runs):
    gpu = bool(machine.gpu) or any(resmod.uses_gpu(r) for r in runs)
    max_nodes = max([resmod.int_attr(r, "nnodes", 1) for r in runs] or [1])
    fs = {str(r.attrs.get("fs_type", "")) for r in runs if r.attrs.get("kind") == "storage"}
    rdma = any("rdma" in str(r.attrs.get("transport", "")).lower() or
               "verbs" in str(r.attrs.get("transport", "")).lower() for r in runs)
    items = []
    if not gpu:
        items.append("**No GPU was used.** The paper's allreduce numbers (R1-R4) are for GPU "
                     "buffers on A100-PCIe nodes; here HFReduce and MPI reduced host buffers, so "
                     "there are no D2H/H2D copies, no GDRCopy, no NCCL (R2, R3) and no NVLink (R4). "
                     "PCIe limits (R6) and GEMM (R7) need GPUs.")
    if max_nodes <= 1:
        items.append("**One host only.** Every rank ran on one machine: the inter-node double "
                     "binary tree ran over shared memory (or pseudo-nodes), not a network; the "
                     "paper's 2-160 node points (R1-R4) are not comparable.")
    elif machine.emulated:
        items.append(f"**Multi-node runs used an emulated cluster** (up to {max_nodes} network "
                     f"namespaces on one machine, TCP over shaped veth links). They exercise the "
                     f"inter-node code paths, but all nodes share one CPU and one memory system, "
                     f"so absolute bandwidths say nothing about a real 200 Gb/s InfiniBand fabric.")
    if not rdma:
        items.append("**No RDMA device.** Inter-node traffic used TCP (or none); HFReduce's RDMA "
                     "Write path and InfiniBand service levels cannot be exercised without a verbs "
                     "device.")
    if fs and not any("3fs" in f.lower() for f in fs):
        items.append(f"**No 3FS.** The storage workloads ran on {', '.join(sorted(f for f in fs if f))} "
                     f"with a handful of ranks; R13-R15 are cluster-scale numbers (180 storage "
                     f"nodes, 400+ clients) and are not comparable.")
    elif not fs:
        items.append("**No storage results** for this machine (storage_bench not built or not "
                     "run here).")
    if not any(r.attrs.get("kind") == "ddp" for r in runs):
        items.append("**No ddp_bench results** for this machine.")
    items.append("**Training step times (R9-R12)** need a GPU cluster with PyTorch; they are not "
                 "measured by this suite here.")
    items.append("**Fleet reliability statistics (R16)** come from a year of operating logs and "
                 "cannot be measured by a benchmark.")
    return items


def limits_section(machine, runs, cmp_rows, uncovered):
    """An honest account of what could not be measured on this machine, and why."""
    lines = ["### What could not be measured here, and why", ""]
    lines += [f"- {i}" for i in _limit_items(machine, runs)]
    nc = [r for r in cmp_rows if r.status == cmp.NC]
    if nc:
        lines += ["", f"{len(nc)} covered reference(s) were not comparable; the reasons are in the "
                  f"comparison table above (the first: {nc[0].ref.id}: {nc[0].detail})."]
    if uncovered:
        lines += ["", "References nothing in this machine's runs measures: "
                  + cmp.uncovered_text(uncovered) + "."]
    return lines + [""]


def machine_report(machine, runs, slug, ctx):
    """## Machine: everything measured on one machine, from its own runs only."""
    cmp_rows, uncovered = cmp.compare_reference(runs, ctx.refs)
    uncovered = [r for r in uncovered if r.kind != "model"]  # the Models section has those
    series = collective_series(runs)
    lines = [f"## Machine: {machine.name}", ""]
    lines += machine_section(machine, runs)
    lines += comparison_section(cmp_rows, uncovered)
    lines += size_section(machine, series, slug, ctx)
    lines += nodes_section(machine, series, slug, ctx)
    lines += storage_section(runs, slug, ctx)
    lines += crosscheck_section(runs)
    lines += ddp_section(runs, slug, ctx)
    lines += ceilings_section(machine, runs, series)
    lines += limits_section(machine, runs, cmp_rows, uncovered)
    return lines


# ---- markdown: scripts/perf-hfreduce's emulated series and small-message table (measured) ----

def perf_hfreduce_section(runs):
    """## HFReduce against Open MPI (scripts/perf-hfreduce, measured): the emulated series
    (--emulated, results/perf-hfreduce-emu.h5) and the small-message table (--small,
    results/perf-hfreduce-small.h5), from those runs among the report's inputs (the tables the
    tool prints, from the same functions; the small table's newest session); the machine each
    ran on named."""
    from ffbench.tools import perf_hfreduce as perf
    emu_runs, small_runs = perf.emu_series_runs(runs), perf.newest_small_runs(runs)
    if not emu_runs and not small_runs:
        return []
    lines = ["## HFReduce against Open MPI: `scripts/perf-hfreduce` (measured)", ""]
    points = perf.emu_points(emu_runs)
    if points:
        machines = "; ".join(m.name for m in machmod.group(emu_runs))
        dates = sorted(str(r.attrs.get("date", "")) for r in emu_runs)
        lines += ["### Emulated cluster: HFReduce tree, ring, auto against Open MPI (measured)",
                  "", f"`scripts/perf-hfreduce --emulated` on {machines}, {dates[0][:10]}"
                      f"{' .. ' + dates[-1][:10] if dates[-1][:10] != dates[0][:10] else ''}. "
                      f"HFReduce auto runs with every option at its default. busbw GB/s.", ""]
        lines += _md_table(perf.EMU_MD_HEAD, [perf.emu_cells(p) for p in points]) + [""]
        lines += [f"- {line}" for line in perf.emu_summary(points)] + [""]
        lines += ["fp32 sum, out-of-place; " + perf.BOUND_NOTE, ""]
    small = perf.small_points(small_runs)
    if small:
        machines = "; ".join(m.name for m in machmod.group(small_runs))
        lines += ["### Small messages, every type: HFReduce / MPI_Allreduce latency (measured)",
                  "", f"`scripts/perf-hfreduce --small` on {machines}: " + perf.SMALL_NOTE, ""]
        for ranks in sorted({p.ranks for p in small}):
            head, body = perf.small_matrix(small, ranks)
            lines += [f"{ranks} ranks, ratio HFReduce / MPI:", ""] + _md_table(head, body) + [""]
        for ranks in sorted({p.ranks for p in small}):
            head, body = perf.small_matrix(small, ranks, stand_in=True)
            if body:
                lines += [f"{ranks} ranks, fp8 against MPI_Allreduce of uint8 on the same bytes "
                          f"(a lower bound: no fp8 arithmetic):", ""] + _md_table(head, body) + [""]
        lines += [f"- {line}" for line in perf.small_summary(small)] + [""]
    return lines


# ---- markdown: model output (machine-independent) -------------------------------------------

MODEL_COMMANDS = (
    ("cost", ["cost", "fire-flyer-2", "--vs", "fire-flyer-2-pcie-3layer", "--vs", "dgx-a100"]),
    ("model", ["model", "allreduce", "--cluster", "fire-flyer-2"]),
)


def _emulated_results(paths):
    """The report inputs holding emulated-cluster collective runs (for the model's check 2)."""
    found = []
    for path in paths:
        try:
            runs = h5io.read_runs(path, kind="collective")
        except h5io.ResultsFileError:
            continue
        if any(resmod.int_attr(r, "nnodes", 1) > 1 and "FFB_EMU_LINK_RATE" in
               str(r.attrs.get("environment", "")) for r in runs):
            found.append(path)
    return found


def _run_model_command(argv):
    """The Markdown of one model command's output, run as `python -m ffbench ARGV` by this same
    interpreter (the package's parent directory on its PYTHONPATH)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [PYTHON_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        res = subprocess.run([sys.executable, "-m", "ffbench"] + argv, capture_output=True,
                             text=True, timeout=120, env=env)
    except Exception as exc:  # noqa: BLE001 - a model command must not break the report
        return [f"- `ffbench {' '.join(argv)}` failed ({type(exc).__name__}: {exc})."]
    if res.returncode != 0 and not ("--compare" in argv and res.returncode == 1):
        err = (res.stderr.strip().splitlines() or ["no message"])[-1]
        return [f"- `ffbench {' '.join(argv)}` failed (exit {res.returncode}: {err})."]
    return [f"`scripts/ffbench {' '.join(argv)}` (model output):", "", "```", res.stdout.rstrip(),
            "```", ""]


def models_section(runs, result_paths=(), refs=()):
    """## Models: the model runs against the paper and the models' tables (all model output)."""
    lines = ["## Models (model output)", "",
             "Machine-independent: `ffbench cost` and `ffbench model` on the cluster descriptions "
             "in `configs/clusters/` (not measurements; inputs and method in docs/models.md).", ""]
    model_runs = [r for r in runs if r.attrs.get("kind") == "model"]
    cmp_rows, _ = cmp.compare_reference(model_runs, refs) if model_runs and refs else ([], [])
    if cmp_rows:
        lines += ["### Model runs against the paper (model)", "",
                  "The model runs stored in these results files (kind `model`), row by row.", ""]
        lines += cmp.table_lines(cmp_rows, markdown=True)
        n = Counter(r.status for r in cmp_rows)
        lines += ["", f"{n[cmp.PASS]} PASS, {n[cmp.FAIL]} FAIL, {n[cmp.NC]} not comparable "
                      f"(model output against reference values).", ""]
    lines += ["### Cost and performance models (model)", ""]
    commands = list(MODEL_COMMANDS)
    emulated = _emulated_results(result_paths)
    if emulated:
        # check (2): the emulated cluster's measurements against the model (exit 1 = a point
        # outside the tolerance: the table is shown all the same, with its verdict)
        # 1 gbit only: the model describes link-bound points; 10 gbit on the 2-core build VM is
        # CPU-bound (results/perf-hfreduce-emu.txt, docs/models.md "Check (2)").
        compare = [a for path in emulated for a in ("--compare", path)]
        commands.append(("model", ["model", "allreduce", "--cluster", "emu", "--gpus", "2,6",
                                   "--size", "16M", "--compare-rate", "1gbit"] + compare))
    for _name, argv in commands:
        lines += _run_model_command(argv)
    return lines + [""]


# ---- the report -----------------------------------------------------------------------------

def machines_of(runs):
    """[(machine, its measured runs, slug)]: machines.group, model runs left out (they have
    their own section), machines with nothing else dropped; slugs m1, m2, ..."""
    out = []
    for m in machmod.group(runs):
        measured = [r for r in m.runs if r.attrs.get("kind") != "model"]
        if measured:
            out.append((m, measured, f"m{len(out) + 1}"))
    return out


def header_lines(paths, reference):
    ref = os.path.relpath(reference, repo_root()) \
        if reference.startswith(repo_root()) else reference
    return ["# ffbench reproduction report: Fire-Flyer AI-HPC (SC'24)", "",
            f"Generated {datetime.datetime.now().astimezone().isoformat(timespec='seconds')} by "
            f"`scripts/ffbench report` from {', '.join(f'`{p}`' for p in paths)}. Every number is "
            f"labelled **measured** (by these results), **reference** (the paper, `{ref}`) or "
            f"**model** (an analytic model). GB = 1e9 B; busbw = algbw x 2(n-1)/n.", ""]


def remove_stale_pngs(out_dir, keep):
    """Delete ffbench's own plot names in out_dir (OWN_PNGS) that this report did not write."""
    keep = {os.path.abspath(p) for p in keep}
    for pattern in OWN_PNGS:
        for p in glob.glob(os.path.join(out_dir, pattern)):
            if os.path.abspath(p) not in keep and os.path.isfile(p):
                os.remove(p)


def build_report(paths, out_dir, md_path, reference):
    runs = resmod.load_runs(paths)
    if not runs:
        raise UsageError(f"{', '.join(paths)}: no runs in the results file(s); run a sweep first "
                         f"(scripts/ffbench run configs/sweeps/local.yaml)")
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(md_path)), exist_ok=True)
    _, refs = cmp.load_reference(reference)
    ctx = Context(out_dir, md_path, refs, reference, paths)
    machine_list = machines_of(runs)
    lines = header_lines(paths, reference)
    lines += verdict_section(machine_list, refs)
    for m, mruns, slug in machine_list:
        lines += machine_report(m, mruns, slug, ctx)
    lines += perf_hfreduce_section(runs)
    lines += models_section(runs, paths, refs)
    with open(md_path, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")
    remove_stale_pngs(out_dir, ctx.figures)
    return md_path, ctx.figures


