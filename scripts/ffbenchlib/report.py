"""`ffbench report RESULTS... --out DIR [--markdown FILE]`: plots (PNG) and a Markdown report.

Plots: allreduce bus bandwidth against message size, one panel per backend; bus bandwidth against
node count with the paper's points overlaid; storage throughput and latency percentiles. The
Markdown report (DIR/report.md unless --markdown) describes the machine that produced the results,
compares them with the paper (configs/reference/fire-flyer-2.yaml), applies the 24 S host memory
model to the measuring machine, and says what could not be measured here and why. Every number
in it is labelled measured, reference (the paper) or model.
"""
import datetime
import importlib
import math
import os
import re

import numpy as np

from . import compare as cmp
from . import h5io
from . import results as resmod
from .cli import UsageError

DEFAULT_REFERENCE = "configs/reference/fire-flyer-2.yaml"
PAPER_SIZE = 192937984


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


def _latest_by(rows, keyfn):
    """Keep the rows of the latest run for every identity keyfn(row)."""
    latest = {}
    for r in rows:
        k = keyfn(r)
        d = str(r.get("date", ""))
        if k not in latest or d > latest[k]:
            latest[k] = d
    return [r for r in rows if str(r.get("date", "")) == latest[keyfn(r)]]


def series_label(r):
    shape = f"{r['ranks']} ranks" if r["nodes"] == 1 else f"{r['nodes']} nodes x {r['ranks_per_node']}"
    return f"{r['series']} ({shape})"


# ---- collective plots -----------------------------------------------------------------------

def collective_series(runs):
    rows = [r for r in resmod.collective_rows(runs)
            if r.get("placement") == "out-of-place" and r.get("status") == "complete"]
    rows = _latest_by(rows, lambda r: (r["series"], r["ranks"], r["nodes"], r["program"]))
    series = {}
    for r in rows:
        series.setdefault((r["backend"] or r["program"], series_label(r)), []).append(r)
    for k in series:
        series[k].sort(key=lambda r: r["size"])
    return series


def plot_busbw_vs_size(series, path):
    plt = _plt()
    backends = sorted({b for b, _ in series})
    fig, axes = plt.subplots(1, len(backends), figsize=(6.0 * len(backends), 4.8), squeeze=False,
                             sharey=True)
    for ax, backend in zip(axes[0], backends):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for (b, label), rows in sorted(series.items()):
            if b != backend:
                continue
            # busbw is 0 for one rank (factor 2(n-1)/n) and sizes of 0 B: nothing to draw on a
            # log axis, and a 0 would stretch it to 1e-300.
            pts = [(r["size"], r["busbw"]) for r in rows if r["busbw"] > 0 and r["size"] > 0]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ticks = [1 << k for k in range(10, 31, 4)]
        ax.set_xticks(ticks)
        ax.set_xticklabels([fmt_size(t) for t in ticks])
        ax.set_xlabel("message size (B)")
        ax.set_title(f"{backend} allreduce (measured)")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=1 if len(series) < 12 else 2)
    axes[0][0].set_ylabel("busbw (GB/s, out-of-place, log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paper_curves(refs):
    """{label: [(nodes, value)]} of the paper's allreduce points (reference values)."""
    curves = {}
    names = {"R1": "paper HFReduce (reference)", "R2": "paper NCCL (reference)",
             "R4": "paper HFReduce+NVLink (reference)"}
    for ref in refs:
        m = re.match(r"(R1|R2|R4)\.g(\d+)$", ref.id)
        if m and ref.kind == "collective":
            nodes = ref.conditions.get("nodes")
            curves.setdefault(names[m.group(1)], []).append((nodes, ref.value))
    return {k: sorted(v) for k, v in curves.items()}


def nodes_points(series):
    """Measured busbw per series and node count, at 184 MiB if measured, else the largest size.

    Series measured on more than one node count (or on several nodes) are kept; when there are
    none, the best single-node series of each backend stands in, so the plot is never empty."""
    pts = {}
    for (backend, label), rows in series.items():
        at = [r for r in rows if r["size"] == PAPER_SIZE] or [rows[-1]]
        r = at[-1]
        name = re.sub(r" \(.*\)$", "", label)
        pts.setdefault((backend, name, r["ranks_per_node"]), []).append(
            (r["nodes"], r["busbw"], r["size"]))
    multi = {k: sorted(v) for k, v in pts.items() if any(n > 1 for n, _, _ in v)}
    if multi:
        return multi
    best = {}
    for k, v in pts.items():
        top = max(v, key=lambda p: p[1])
        if k[0] not in best or top[1] > best[k[0]][1][0][1]:
            best[k[0]] = (k, [top])
    return {k: v for k, v in best.values()}


def plot_busbw_vs_nodes(points, curves, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for label, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="--", marker="s", ms=4,
                label=label, alpha=0.8)
    for (backend, name, rpn), pts in sorted(points.items()):
        pts = [p for p in pts if p[1] > 0]  # one rank has busbw 0: not drawable on a log axis
        if not pts:
            continue
        sizes = sorted({fmt_size(p[2]) for p in pts})
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=6,
                label=f"measured {name}, {rpn}/node, {'/'.join(sizes)}B")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    xs = sorted({p[0] for c in curves.values() for p in c} | {p[0] for v in points.values() for p in v})
    if xs:
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs], rotation=45)
        ax.minorticks_off()
    ax.set_xlabel("nodes")
    ax.set_ylabel("allreduce busbw (GB/s, log scale)")
    ax.set_title("Allreduce bandwidth against nodes: paper (dashed) and measured (solid)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- storage plots --------------------------------------------------------------------------

def storage_table(runs):
    # fio-crosscheck's own storage_bench runs (label crosscheck:CASE:RUN) have their section
    rows = [r for r in resmod.storage_rows(runs) if not str(r["label"]).startswith("crosscheck:")]
    rows = _latest_by(rows, lambda r: (r["series"], r["ranks"], r["nodes"]))
    return [r for r in rows if int(r.get("rep", 0) or 0) == 0]


def plot_storage(rows, tput_path, lat_path):
    plt = _plt()
    names = [f"{r.get('workload')}\n{r.get('phase')}" for r in rows]
    bws = [r.get("bw") if isinstance(r.get("bw"), float) and r.get("bw") == r.get("bw") else 0.0
           for r in rows]
    rates = [r.get("ops_rate") if isinstance(r.get("ops_rate"), float) else 0.0 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(rows))
    axes[0].bar(x, bws, color="tab:blue")
    axes[0].set_xticks(x)
    axes[0].set_xticklabels(names, fontsize=7)
    axes[0].set_ylabel("throughput (GB/s)")
    axes[0].set_title("storage throughput (measured)")
    axes[1].bar(x, rates, color="tab:green")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(names, fontsize=7)
    axes[1].set_ylabel("operations/s")
    axes[1].set_yscale("log")
    axes[1].set_title("storage operation rate (measured)")
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(tput_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4.2))
    width = 0.27
    for i, (col, label) in enumerate((("lat_p50", "p50"), ("lat_p99", "p99"),
                                      ("lat_p999", "p99.9"))):
        vals = [r.get(col) if isinstance(r.get(col), float) and r.get(col) == r.get(col) else 0.0
                for r in rows]
        ax.bar(x + (i - 1) * width, vals, width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("latency of the phase's main operation (us)")
    ax.set_title("storage latency percentiles (measured, exact across ranks)")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(lat_path, dpi=110)
    plt.close(fig)


# ---- markdown ---------------------------------------------------------------------------------

def crosscheck_section(runs):
    """storage_bench against fio, side by side in one run (scripts/fio-crosscheck)."""
    lines = []
    for run in runs:
        if run.attrs.get("kind") != "crosscheck" or "crosscheck" not in run.tables:
            continue
        t = run.tables["crosscheck"]
        if not lines:
            lines += ["## storage_bench against fio (measured)", "",
                      "`scripts/fio-crosscheck`: the equivalent fio job beside each storage_bench case, "
                      "alternating (ABBA) on the same directory, one process, medians of the runs; "
                      "ratio = storage_bench / fio (the target: within 5%), paired = median of the "
                      "per-run ratios. Method and pitfalls: docs/storage_bench.md.", ""]
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


def _md_table(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in body:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in b) + " |")
    return lines


def machine_section(runs, paths):
    hosts, cpus, simd, mpis, commits, versions, dates, jobs, fs = (set() for _ in range(9))
    max_nodes = 1
    for r in runs:
        a = r.attrs
        hs = a.get("hosts") or []
        hosts.update(hs if isinstance(hs, list) else [hs])
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
    emu_hosts = sorted(h for h in hosts if re.fullmatch(r"[a-z][a-z0-9]*-node\d+", h))
    real_hosts = sorted(h for h in hosts if h not in emu_hosts)
    rows = [
        ("results files", ", ".join(f"`{p}`" for p in paths) + f" ({len(runs)} runs)"),
        ("hosts", ", ".join(real_hosts) or "-"),
    ]
    if emu_hosts:
        rows.append(("emulated nodes", f"{len(emu_hosts)} network namespaces ({emu_hosts[0]} .. "
                                       f"{emu_hosts[-1]}) on the host above, TCP over shaped veth links"))
    rows += [("CPU", "; ".join(sorted(cpus)) or "-"),
             ("SIMD level used", ", ".join(sorted(simd)) or "-"),
             ("MPI library", "; ".join(sorted(mpis)) or "-"),
             ("largest node count in a run", str(max_nodes)),
             ("GPUs", "yes" if any(resmod.uses_gpu(r) for r in runs) else "none used"),
             ("storage file systems", ", ".join(sorted(fs)) or "-"),
             ("suite version / git commit", f"{', '.join(sorted(versions)) or '-'} / "
                                            f"{', '.join(sorted(commits)) or '-'}"),
             ("measured between", f"{min(dates)} and {max(dates)}" if dates else "-")]
    if jobs:
        rows.append(("Slurm jobs", ", ".join(sorted(jobs, key=lambda j: int(j) if j.isdigit() else 0))))
    return ["## The machine that produced these results", ""] + _md_table(["", ""], rows) + [""]


def ceilings_section(runs, collective_series_):
    lines = ["## Analytic ceilings: the 24 S host-memory model (model)", "",
             "HFReduce moves every byte through host memory. Per node and per unit S of gradient: "
             "D2H 8 writes, intra-node reduce 8 reads + 1 write, inter-node 2 reads + 2 writes + "
             "1 read, H2D 2 reads (GDRCopy) = **24 S**; with NVLink pairs about 16 S; with "
             "cudaMemcpy H2D (8 reads instead of 2) 30 S. A node then finishes an allreduce of S "
             "bytes per GPU no faster than 24 S / (host memory bandwidth): the ceiling is on "
             "algbw = S / time (fire-flyer.md section 2; the paper's figure values are most likely "
             "busbw, so its ~8 GB/s and its 13.3 GB/s ceiling are not on the same axis for sure).",
             ""]
    membw = resmod.host_memory_bandwidth(runs)
    head = ["node", "host memory GB/s", "24 S ceiling GB/s", "16 S (NVLink) GB/s",
            "30 S (memcpy H2D) GB/s"]
    body = [["Fire-Flyer 2 node (paper)", "320 (reference, 16-channel DDR4-3200)",
             "13.3 (reference R5)", "20.0 (model)", "10.7 (model)"]]
    if membw:
        bw, where = membw
        body.append(["this machine", f"{bw:.1f} (measured)", f"{bw / 24:.2f} (model)",
                     f"{bw / 16:.2f} (model)", f"{bw / 30:.2f} (model)"])
    lines += _md_table(head, body) + [""]
    if not membw:
        lines += ["This machine's host memory bandwidth was not measured (no membw_bench probe and "
                  "no storage_bench start-up probe in these results), so the model is not applied "
                  "to it.", ""]
        return lines
    bw, where = membw
    lines += [f"Host memory bandwidth source: {where}.", ""]
    body = []
    for (backend, label), rows in sorted(collective_series_.items()):
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
    if body:
        lines += ["The same model for the host-buffer HFReduce runs measured here, with the memory "
                  "traffic per node each run's own configuration implies (no D2H/H2D over PCIe: "
                  "the buffers already are in host memory):", ""]
        lines += _md_table(["series", "size", "algbw GB/s", "host memory traffic per node",
                            "ceiling algbw GB/s", "measured / ceiling"], body) + [""]
        lines.append("The paper reached about 8 of 13.3 GB/s (60 %) on its nodes; on a small "
                     "shared machine the other ranks, the MPI progress engine and oversubscription "
                     "take their share of the same memory system and cores.")
    return lines + [""]


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


def models_section(runs, paths=()):
    """The models engineer's tables: a report_markdown(runs) hook when the module has one, else
    the output of its command on the paper's cluster descriptions (all model output)."""
    import subprocess
    import sys
    lines = ["## Cost and performance models (model)", "",
             "Model output of `ffbench cost` and `ffbench model` on the cluster descriptions in "
             "`configs/clusters/` (not measurements; inputs and method in docs/models.md).", ""]
    found = False
    commands = list(MODEL_COMMANDS)
    emulated = _emulated_results(paths)
    if emulated:
        # check (2): the emulated cluster's measurements against the model (exit 1 = a point
        # outside the tolerance: the table is shown all the same, with its verdict)
        commands.append(("model", ["model", "allreduce", "--cluster", "emu", "--gpus", "2,6",
                                   "--size", "16M", "--compare"] + emulated))
    for name, argv in commands:
        try:
            module = importlib.import_module(f"ffbenchlib.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ffbenchlib.{name}":
                continue
            lines.append(f"- `ffbench {name}` could not be loaded ({exc}).")
            continue
        except Exception as exc:  # noqa: BLE001 - another module must not break the report
            lines.append(f"- `ffbench {name}` could not be loaded ({type(exc).__name__}: {exc}).")
            continue
        found = True
        hook = getattr(module, "report_markdown", None)
        try:
            if hook is not None:
                text = hook(runs)
                if text:
                    lines += [text.rstrip(), ""]
                continue
            ffbench = os.path.join(resmod.repo_root(), "scripts", "ffbench")
            res = subprocess.run([sys.executable, ffbench] + argv, capture_output=True, text=True,
                                 timeout=120)
        except Exception as exc:  # noqa: BLE001
            lines.append(f"- `ffbench {' '.join(argv)}` failed ({type(exc).__name__}: {exc}).")
            continue
        if res.returncode != 0 and not ("--compare" in argv and res.returncode == 1):
            err = (res.stderr.strip().splitlines() or ["no message"])[-1]
            lines.append(f"- `ffbench {' '.join(argv)}` failed (exit {res.returncode}: {err}).")
            continue
        lines += [f"`scripts/ffbench {' '.join(argv)}` (model output):", "", "```",
                  res.stdout.rstrip(), "```", ""]
    if not found:
        lines.append("The cost and performance models (`ffbench cost`, `ffbench model`) are not "
                     "part of this checkout, so their tables are not included.")
    return lines + [""]


def limits_section(runs, cmp_rows, uncovered):
    """An honest account of what could not be measured here, and why."""
    gpu = any(resmod.uses_gpu(r) for r in runs)
    max_nodes = max([resmod.int_attr(r, "nnodes", 1) for r in runs] or [1])
    hosts = {h for r in runs for h in (r.attrs.get("hosts") or [])}
    emu = any(re.fullmatch(r"[a-z][a-z0-9]*-node\d+", h) for h in hosts)
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
    elif emu:
        items.append(f"**Multi-node runs used an emulated cluster** (up to {max_nodes} network "
                     f"namespaces on one machine, TCP over shaped veth links). They exercise the "
                     f"inter-node code paths, but all nodes share one CPU and one memory system, "
                     f"so absolute bandwidths say nothing about a real 200 Gb/s InfiniBand fabric.")
    if not rdma:
        items.append("**No RDMA device.** Inter-node traffic used TCP; HFReduce's RDMA Write path "
                     "and InfiniBand service levels cannot be exercised without a verbs device.")
    if fs and not any("3fs" in f.lower() for f in fs):
        items.append(f"**No 3FS.** The storage workloads ran on {', '.join(sorted(f for f in fs if f))} "
                     f"with a handful of ranks; R13-R15 are cluster-scale numbers (180 storage "
                     f"nodes, 400+ clients) and are not comparable.")
    elif not fs:
        items.append("**No storage results** in these files (storage_bench not built or not run).")
    items.append("**Training step times (R9-R12)** need a GPU cluster with PyTorch; they are not "
                 "measured by this suite here.")
    items.append("**Fleet reliability statistics (R16)** come from a year of operating logs and "
                 "cannot be measured by a benchmark.")
    lines = ["## What could not be measured here, and why", ""] + [f"- {i}" for i in items]
    nc = [r for r in cmp_rows if r.status == cmp.NC]
    if nc:
        lines += ["", f"{len(nc)} covered reference(s) were not comparable; the reasons are in the "
                  f"comparison table above (the first: {nc[0].ref.id}: {nc[0].detail})."]
    if uncovered:
        lines += ["", "References nothing in these results measures: "
                  + cmp.uncovered_text(uncovered) + "."]
    return lines + [""]


def ddp_section(paths, out_dir, rel, figures):
    """Training-step scaling (ddp_bench runs): step time against GPUs with R9/R10 overlaid."""
    from . import ddp
    rows = ddp.weak_scaling(paths)
    if not rows:
        return ["## Training-step scaling (ddp_bench)", "", "No ddp_bench results in these files.",
                ""]
    p = os.path.join(out_dir, "ddp_step_time_vs_gpus.png")
    ddp.plot_step_time_vs_gpus(rows, ddp.paper_points(), p)
    figures.append(p)
    body = [[r["series"], r["ranks"], "emulated" if r.get("emulated") else "measured",
             _f(1e3 * float(r["step_time"])), _f(r.get("overlap")),
             _f(r.get("weak_scaling_efficiency"))] for r in rows]
    return ["## Training-step scaling (ddp_bench)", "", f"![step time against GPUs]({rel(p)})", "",
            "Dashed: the paper's R9/R10 step times (reference). Compute marked *emulated* sleeps "
            "for FLOPs / device rate (no GPU here): only the communication and overlap are "
            "measured then.", ""] + _md_table(
                ["series", "ranks", "compute", "step time (ms)", "overlap",
                 "weak-scaling efficiency"], body) + [""]


def build_report(paths, out_dir, md_path, reference):
    runs = resmod.load_runs(paths)
    if not runs:
        raise UsageError(f"{', '.join(paths)}: no runs in the results file(s); run a sweep first "
                         f"(scripts/ffbench run configs/sweeps/local.yaml)")
    os.makedirs(out_dir, exist_ok=True)
    md_dir = os.path.dirname(os.path.abspath(md_path))
    os.makedirs(md_dir, exist_ok=True)

    def rel(p):
        return os.path.relpath(p, md_dir)

    figures = []
    _, refs = cmp.load_reference(reference)
    cmp_rows, uncovered = cmp.compare_reference(runs, refs)
    series = collective_series(runs)
    lines = ["# ffbench reproduction report: Fire-Flyer AI-HPC (SC'24)", "",
             f"Generated {datetime.datetime.now().astimezone().isoformat(timespec='seconds')} by "
             f"`scripts/ffbench report` from {', '.join(f'`{p}`' for p in paths)}. Every number is "
             f"labelled **measured** (by these results), **reference** (the paper, "
             f"`{os.path.relpath(reference, resmod.repo_root()) if reference.startswith(resmod.repo_root()) else reference}`) "
             f"or **model** (an analytic model). GB = 1e9 B; busbw = algbw x 2(n-1)/n.", ""]
    lines += machine_section(runs, paths)

    lines += ["## Comparison with the paper", "",
              "One row per reference these results cover (ReFrame-style tolerance: value, lower "
              "and upper fractions, unit). *not comparable* rows give the measured value in "
              "parentheses and the condition that differs.", ""]
    if cmp_rows:
        lines += cmp.table_lines(cmp_rows, markdown=True)
    else:
        lines.append("No reference is covered by these results.")
    lines += ["", cmp.summary_line(cmp_rows, uncovered) + ".", ""]

    if series:
        p = os.path.join(out_dir, "busbw_vs_size.png")
        plot_busbw_vs_size(series, p)
        figures.append(p)
        lines += ["## Allreduce bandwidth against message size (measured)", "",
                  f"![allreduce busbw against size]({rel(p)})", ""]
        body = []
        for (backend, label), rows in sorted(series.items()):
            peak = max(rows, key=lambda r: r["busbw"])
            last = rows[-1]
            body.append([backend, label, f"{_f(peak['busbw'])} at {fmt_size(peak['size'])}B",
                         f"{_f(last['busbw'])} / {_f(last['algbw'])} at {fmt_size(last['size'])}B",
                         _f(last.get("time_p99"), 4)])
        lines += _md_table(["backend", "series", "peak busbw GB/s (measured)",
                            "busbw / algbw GB/s at the largest size (measured)",
                            "p99 time there (us)"], body) + [""]
    else:
        lines += ["## Allreduce bandwidth against message size", "",
                  "No collective results in these files.", ""]

    curves = paper_curves(refs)
    pts = nodes_points(series)
    p = os.path.join(out_dir, "busbw_vs_nodes.png")
    plot_busbw_vs_nodes(pts, curves, p)
    figures.append(p)
    lines += ["## Allreduce bandwidth against nodes, with the paper's points", "",
              f"![busbw against nodes]({rel(p)})", "",
              "Dashed: the paper's values (reference; 184 MiB fp32 sum, 8 GPUs per node, A100-PCIe, "
              "200 Gb/s InfiniBand). Solid: measured here, at 184 MiB when measured, else at the "
              "largest size, under this machine's conditions (see the limits below).", ""]
    node_counts = sorted({n for c in curves.values() for n, _ in c} |
                         {n for v in pts.values() for n, _, _ in v})
    if node_counts:
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
        lines += _md_table(head, body) + [""]

    srows = storage_table(runs)
    if srows:
        tp = os.path.join(out_dir, "storage_throughput.png")
        lp = os.path.join(out_dir, "storage_latency.png")
        plot_storage(srows, tp, lp)
        figures += [tp, lp]
        lines += ["## Storage workloads (measured)", "",
                  f"![storage throughput]({rel(tp)})", "", f"![storage latency]({rel(lp)})", ""]
        body = []
        for r in srows:
            cached = r.get("cache_resident")
            body.append([r.get("workload", ""), r.get("phase", ""), r["ranks"], r.get("fs_type", ""),
                         _f(r.get("bw")), _f(r.get("ops_rate")), _f(r.get("lat_p50")),
                         _f(r.get("lat_p99")), _f(r.get("lat_p999")),
                         "-" if not isinstance(cached, float) or cached != cached
                         else f"{100 * cached:.0f} %"])
        lines += _md_table(["workload", "phase", "ranks", "file system", "GB/s", "ops/s",
                            "p50 us", "p99 us", "p99.9 us", "page-cache resident"], body) + [""]
        lines += ["Reads of page-cache-resident data measure memory, not the device: the last "
                  "column says how much was resident before the phase.", ""]
    else:
        lines += ["## Storage workloads", "", "No storage results in these files.", ""]

    lines += crosscheck_section(runs)
    lines += ddp_section(paths, out_dir, rel, figures)
    lines += ceilings_section(runs, series)
    lines += models_section(runs, paths)
    lines += limits_section(runs, cmp_rows, uncovered)
    with open(md_path, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")
    return md_path, figures


def cmd_report(args):
    out_dir = args.out
    md_path = args.markdown or os.path.join(out_dir, "report.md")
    ref = args.reference
    if not os.path.exists(ref) and os.path.exists(os.path.join(resmod.repo_root(), ref)):
        ref = os.path.join(resmod.repo_root(), ref)
    md, figures = build_report(args.results, out_dir, md_path, ref)
    print(f"ffbench report: {md} with {len(figures)} plot(s) in {out_dir}: "
          + ", ".join(os.path.basename(f) for f in figures))
    return 0


def register(sub):
    p = sub.add_parser("report", help="plots (PNG) and a Markdown report from results files",
                       description=__doc__.split("\n")[0])
    p.add_argument("results", metavar="RESULTS", nargs="+", help="results file(s)")
    p.add_argument("--out", default="results/report", help="folder for the PNGs (and report.md "
                   "unless --markdown); default results/report")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown report here instead "
                   "(image links are made relative to it), e.g. REPORT.md")
    p.add_argument("--reference", default=DEFAULT_REFERENCE,
                   help=f"reference file (default {DEFAULT_REFERENCE})")
    p.set_defaults(func=cmd_report)
