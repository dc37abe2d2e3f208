"""ddp_bench results: weak-scaling rows, the step-time plot with the paper's points, and a
strong-scaling model for the paper's LLaMA-13B and DeepSeekMoE-16B points (R11, R12).

A library for `ffbench report` and notebooks, not a command. Layout of what it reads:
results/SCHEMA.md ("Table written by ddp_bench"); the program: docs/ddp_bench.md.

    rows = weak_scaling("results/ddp-local.h5")          # or a list of files
    plot_step_time_vs_gpus(rows, paper_points(), "ddp-steps.png")
    for r in paper_strong_scaling_model(): print(r)      # every value labelled MODEL

weak_scaling groups runs into series (everything but the number of ranks equal: model, backend,
compute engine and its rate, batch, scale, bucket caps, dtype, HFReduce ranks per node, label
series) and gives each row `weak_scaling_efficiency` = step time at the series' smallest rank
count / step time at this count (the paper's definition; R9's "~88 %" is 0.13 / 0.15).
Emulated-compute runs are kept (`emulated` = True) and plotted as such: they show what the
allreduce does to a step whose compute is a sleep at a configured rate, not a GPU's step.
"""
import math
import os

from ffbench.data import paths
from ffbench.data import results as resmod
from ffbench.data.yamlfile import load_yaml
from ffbench.errors import UsageError

DEFAULT_REFERENCE = os.path.join("configs", "reference", "fire-flyer-2.yaml")

# The columns a row carries from the `ddp` table (name -> default).
_DDP_COLUMNS = ("model", "backend", "compute", "ranks", "nodes", "batch_per_gpu", "params",
                "grad_bytes", "buckets", "step_time", "step_time_p50", "step_time_p99",
                "step_time_min", "step_time_max", "forward_time", "backward_time", "compute_time",
                "exposed_comm", "optimizer_time", "comm_alone", "compute_alone", "comm_overhead",
                "hidden_comm", "overlap", "samples_per_s", "param_scale", "compute_scale", "wrong")
# Run attrs that define a series besides the table's columns.
_SERIES_ATTRS = ("compute", "emulated_tflops", "emulated_efficiency", "dtype", "bucket_bytes",
                 "first_bucket_bytes", "optimizer", "hfreduce_ranks_per_node_option")


def _num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _py(x):
    return x.item() if hasattr(x, "item") else x


def _key_value(v):
    f = _num(v)
    if f is not None and not isinstance(v, str):
        return round(f, 12)
    return "" if v is None else str(v)


def ddp_rows(runs):
    """One flat dict per row of every `ddp` table (kind = "ddp") of the given runs."""
    rows = []
    for run in runs:
        if run.attrs.get("kind") != "ddp" or "ddp" not in run.tables:
            continue
        t = run.tables["ddp"]
        n = len(t["backend"]) if "backend" in t else 0
        gpu = resmod.uses_gpu(run)
        label = str(run.attrs.get("label", ""))
        series = resmod.name_of_label(label) if resmod.key_of_label(label) else label
        for i in range(n):
            r = {c: _py(t[c][i]) for c in _DDP_COLUMNS if c in t}
            for a in _SERIES_ATTRS:
                if a != "compute" or "compute" not in r:
                    r[a] = _py(run.attrs.get(a))
            for cond in ("image_size", "context", "seq_len"):
                if cond in run.attrs:
                    r[cond] = _py(run.attrs[cond])
            r["emulated"] = bool(int(run.attrs.get("compute_emulated", 0) or 0))
            r["gpus"] = int(r.get("ranks", 0)) if gpu else 0
            r["series_label"] = _series_from_label(series)
            r["status"] = run.attrs.get("status", "")
            r["date"] = run.attrs.get("date", "")
            r["source"] = f"{os.path.basename(getattr(run, 'source', ''))}:/runs/{run.id}"
            rows.append(r)
    return rows


def _series_from_label(name):
    """The sweep point name without its shape suffix (".r4", ".n2x8") and option values that
    vary with the shape."""
    parts = [p for p in str(name).split(".") if p]
    out = []
    for p in parts:
        if (p.startswith("r") and p[1:].isdigit()) or (p.startswith("n") and "x" in p
                                                       and p[1:].replace("x", "").isdigit()):
            continue
        out.append(p)
    return ".".join(out)


def series_key(r):
    keys = ("model", "backend", "compute", "batch_per_gpu", "param_scale", "compute_scale",
            "emulated_tflops", "emulated_efficiency", "dtype", "bucket_bytes",
            "first_bucket_bytes", "optimizer", "series_label")
    rpn = r.get("hfreduce_ranks_per_node_option") if r.get("backend") == "hfreduce" else None
    return tuple(_key_value(r.get(k)) for k in keys) + (_key_value(rpn),)


def series_name(r):
    """Human name of a series, e.g. "vgg16 hfreduce (emulated 107 TFLOPS, scale 0.01)"."""
    bits = []
    if r.get("emulated"):
        tf = _num(r.get("emulated_tflops"))
        eff = _num(r.get("emulated_efficiency"))
        rate = f"{tf:g} TFLOPS" if tf else "?"
        if eff is not None and eff != 1:
            rate += f" x {eff:g}"
        bits.append(f"emulated {rate}")
    else:
        bits.append(str(r.get("compute", "")))
    ps = _num(r.get("param_scale"))
    if ps is not None and ps != 1:
        bits.append(f"scale {ps:g}")
    cs = _num(r.get("compute_scale"))
    if cs is not None and cs != 1:
        bits.append(f"FLOPs x {cs:g}")
    rpn = _num(r.get("hfreduce_ranks_per_node_option"))
    if r.get("backend") == "hfreduce" and rpn:
        bits.append(f"{int(rpn)} ranks/node")
    return f"{r.get('model')} {r.get('backend')} ({', '.join(bits)})"


def weak_scaling(results_path):
    """weak_scaling_runs of every run in `results_path` (a path or a list of paths)."""
    files = [results_path] if isinstance(results_path, (str, os.PathLike)) else list(results_path)
    return weak_scaling_runs(resmod.load_runs([str(p) for p in files]))


def weak_scaling_runs(runs):
    """One row per (series, ranks) of these runs' ddp tables, the latest run winning, sorted by
    series then ranks, each with:

    series, model, backend, compute, emulated, ranks, nodes, gpus (ranks on GPUs, else 0),
    step_time, step_time_p50, step_time_p99 (s), exposed_comm, comm_overhead, comm_alone (s),
    overlap, samples_per_s, baseline_ranks, baseline_step_time (s) and
    weak_scaling_efficiency = baseline_step_time / step_time, where the baseline is the series'
    smallest rank count (efficiency 1.0 there). The verdict's weak-scaling twin reads these.
    """
    rows = [r for r in ddp_rows(runs) if r.get("status", "complete") == "complete"
            and _num(r.get("step_time"))]
    latest = {}
    for r in rows:
        k = (series_key(r), int(r.get("ranks", 0)))
        if k not in latest or str(r["date"]) >= str(latest[k]["date"]):
            latest[k] = r
    by_series = {}
    for (skey, _ranks), r in latest.items():
        by_series.setdefault(skey, []).append(r)
    out = []
    for skey in sorted(by_series, key=lambda k: tuple(str(x) for x in k)):
        pts = sorted(by_series[skey], key=lambda r: int(r["ranks"]))
        base = pts[0]
        for r in pts:
            row = dict(r)
            row["series"] = series_name(r)
            row["baseline_ranks"] = int(base["ranks"])
            row["baseline_step_time"] = float(base["step_time"])
            row["baseline_source"] = base["source"]
            row["weak_scaling_efficiency"] = float(base["step_time"]) / float(r["step_time"])
            out.append(row)
    return out


def paper_points(reference=None):
    """The paper's DDP weak-scaling step times (R9 VGG16, R10 GPT2-medium) as
    {series label: [(gpus, seconds)]}, read from configs/reference/fire-flyer-2.yaml."""
    from ffbench.analysis import compare
    path = reference or paths.config_path(DEFAULT_REFERENCE)
    _data, refs = compare.load_reference(path)
    names = {("R9", "hfreduce"): "paper VGG16 HFReduce (R9)",
             ("R9", "nccl"): "paper VGG16 Torch DDP/NCCL (R9)",
             ("R10", "haiscale"): "paper GPT2-medium HaiScale FSDP (R10)",
             ("R10", "torch-fsdp"): "paper GPT2-medium Torch FSDP (R10)"}
    out = {}
    for ref in refs:
        prefix = ref.id.split(".")[0]
        name = names.get((prefix, ref.match.get("backend")))
        if name and ref.kind == "ddp" and ref.metric == "step_time":
            out.setdefault(name, []).append((int(ref.conditions.get("gpus")), float(ref.value)))
    return {k: sorted(v) for k, v in out.items()}


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plotting ddp results needs matplotlib for this python3: apt-get install "
                         "python3-matplotlib (or run scripts/setup-deps)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _model_of_paper(name):
    """The ddp_bench model a paper series belongs to ("paper VGG16 HFReduce (R9)" -> "vgg16")."""
    low = name.lower()
    return next((m for m in ("vgg16", "gpt2-medium", "llama-13b", "deepseekmoe-16b") if m in low),
                "")


def plot_step_time_vs_gpus(rows, paper_points, path):
    """Step time (s) against GPUs (ranks) for every series of `rows` (weak_scaling output), one
    row of axes per model with that model's paper points overlaid as dashed reference lines; the
    right-hand axes show the weak-scaling efficiency. Emulated-compute series are drawn hollow
    and say so in the legend, which sits right of the axes (it covers no data). Writes a PNG."""
    plt = _plt()
    from matplotlib.ticker import FuncFormatter
    series = {}
    for r in rows:
        series.setdefault(r.get("series") or series_name(r), []).append(r)
    models = sorted({str(pts[0].get("model", "")) for pts in series.values()})
    paper = {}
    for name, pts in sorted((paper_points or {}).items()):
        m = _model_of_paper(name)
        if m in models:
            paper.setdefault(m, []).append((name, pts))
    fig, axes = plt.subplots(len(models) or 1, 2, figsize=(13.5, 4.2 * max(1, len(models))),
                             squeeze=False, layout="constrained")
    for (ax, ax2), model in zip(axes, models):
        for name, pts in sorted(series.items()):
            if str(pts[0].get("model", "")) != model:
                continue
            pts = sorted(pts, key=lambda r: int(r["ranks"]))
            xs = [int(r["ranks"]) for r in pts]
            emulated = any(r.get("emulated") for r in pts)
            style = dict(marker="o", ms=4, mfc="none" if emulated else None)
            short = name[len(model):].strip() if name.startswith(model) else name
            label = f"{short}: measured" + ("" if "emulated" in short or not emulated
                                            else ", emulated compute")
            ax.plot(xs, [float(r["step_time"]) for r in pts], label=label, **style)
            ax2.plot(xs, [float(r["weak_scaling_efficiency"]) for r in pts], label=label, **style)
        for name, pts in paper.get(model, []):
            base = pts[0][1]
            for a, ys in ((ax, [p[1] for p in pts]), (ax2, [base / p[1] for p in pts])):
                a.plot([p[0] for p in pts], ys, ls="--", marker="s", ms=4,
                       label=f"{name} (reference)")
        for a in (ax, ax2):
            a.set_xscale("log", base=2)
            a.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            a.set_xlabel("GPUs (ranks; emulated compute: ranks on this host)")
            a.grid(True, alpha=0.3)

        ax.set_ylabel("step time (s)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_title(f"{model}: DDP step time vs GPUs", fontsize=10)
        ax2.set_ylabel("weak-scaling efficiency (smallest scale / this scale)")
        ax2.set_ylim(0, 1.1)
        ax2.set_title(f"{model}: weak-scaling efficiency", fontsize=10)
        ax2.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- R11 / R12: strong scaling as MODEL output -------------------------------------------------

# DeepSeekMoE-16B is not in fire-flyer.md beyond its step times (R12): these sizes are an
# ASSUMPTION taken from the DeepSeekMoE paper (16.4 B parameters, 2.8 B activated per token).
DEEPSEEKMOE_16B = {"params": 16.4e9, "activated_params": 2.8e9, "source":
                   "assumption: DeepSeekMoE paper (16.4 B total, 2.8 B activated per token)"}


def _model_file(name):
    path = paths.shipped("models", f"{name}.yaml")
    data = load_yaml(path, UsageError, "model file")
    params = fwd = bwd = 0.0

    def walk(layers, _i=None):
        nonlocal params, fwd, bwd
        for layer in layers:
            if "repeat" in layer:
                for i in range(int(layer["repeat"])):
                    walk(layer["layers"], i)
                continue
            params += float(layer["params"])
            f = layer.get("fwd_flops")
            if f is None:
                f = 0.0
                g = layer["gemm"]
                shapes = g if isinstance(g[0], (list, dict)) else [g]
                for s in shapes:
                    if isinstance(s, dict):
                        m, n, k, c = s["m"], s["n"], s["k"], s.get("count", 1)
                    else:
                        m, n, k = s[:3]
                        c = s[3] if len(s) > 3 else 1
                    f += 2.0 * m * n * k * c
            f = float(f)
            fwd += f
            bwd += float(layer.get("bwd_flops", 2 * f))
    walk(data["layers"])
    return {"params": params, "flops_per_sample": fwd + bwd, "source": path}


def _allreduce_seconds(gpus, size_bytes, cluster_name, allreduce_gbs):
    if allreduce_gbs:
        return size_bytes / (allreduce_gbs * 1e9), f"{allreduce_gbs:g} GB/s algbw (given)"
    try:
        from ffbench.models import allreduce as models_allreduce
        from ffbench.models import cluster as models_cluster
        cluster = models_cluster.load_cluster(models_cluster.resolve_cluster_path(cluster_name))
        p = models_allreduce.predict(cluster, "hfreduce", gpus, size=int(size_bytes))
        return p["time_s"], f"ffbench hfreduce model on {cluster_name} ({p['algbw']:.2f} GB/s algbw)"
    except Exception as exc:  # the allreduce model is optional here: say what was used instead
        gbs = 4.0
        return size_bytes / (gbs * 1e9), f"{gbs:g} GB/s algbw (allreduce model unavailable: {exc})"


def strong_scaling_model(paper, flops_per_sequence, params, global_batch, pp, tflops=220.0,
                         micro_batch=1, grad_bytes_per_param=2, overlap=0.0,
                         cluster="fire-flyer-2", allreduce_gbs=None):
    """MODEL of a pipeline + data parallel strong-scaling series, fitted at its smallest point.

    paper: [(gpus, step seconds)]. Per step at g GPUs (dp = g / pp data-parallel groups):
        compute  = flops_per_sequence x global_batch / (g x tflops x e)
        bubble   = (pp - 1) / m, m = global_batch / (dp x micro_batch) micro-batches (1F1B)
        allreduce= (params / pp) x grad_bytes_per_param at the HFReduce model's algbw for g GPUs
        step     = compute x (1 + bubble) + (1 - overlap) x allreduce
    e (the achieved fraction of tflops) is the one fitted parameter: chosen so the model equals
    the paper at the smallest GPU count; every other point is a prediction. Rows are labelled
    MODEL; MoE all-to-all and pipeline send/recv are not modelled.
    """
    g0, t0 = sorted(paper)[0]

    def parts(g):
        dp = g / pp
        m = global_batch / (dp * micro_batch)
        bubble = (pp - 1) / m
        ar, ar_how = _allreduce_seconds(g, params / pp * grad_bytes_per_param, cluster,
                                        allreduce_gbs)
        return bubble, ar, ar_how

    b0, ar0, _ = parts(g0)
    raw0 = flops_per_sequence * global_batch / (g0 * tflops * 1e12)
    denom = t0 - (1 - overlap) * ar0
    eff = raw0 * (1 + b0) / denom if denom > 0 else float("nan")
    rows = []
    for g, t_paper in sorted(paper):
        bubble, ar, ar_how = parts(g)
        compute = flops_per_sequence * global_batch / (g * tflops * 1e12 * eff)
        step = compute * (1 + bubble) + (1 - overlap) * ar
        rows.append({"label": "MODEL", "gpus": g, "paper_step_time": t_paper, "model_step_time": step,
                     "rel_error": step / t_paper - 1, "compute_s": compute,
                     "bubble_fraction": bubble, "allreduce_s": ar, "allreduce_how": ar_how,
                     "fitted_efficiency": eff, "fitted_at_gpus": g0, "tflops": tflops,
                     "pp": pp, "global_batch": global_batch})
    return rows


def paper_strong_scaling_model(reference=None, tflops=220.0, cluster="fire-flyer-2", overlap=0.0):
    """R11 (LLaMA-13B, configs/models/llama-13b.yaml) and R12 (DeepSeekMoE-16B, sizes assumed,
    see DEEPSEEKMOE_16B) through strong_scaling_model at the paper's conditions (bf16: R7's
    220 TFLOPS FP16 rate). Every row: label "MODEL", reference "R11"/"R12", model name."""
    from ffbench.analysis import compare
    path = reference or paths.config_path(DEFAULT_REFERENCE)
    _data, refs = compare.load_reference(path)
    series = {}
    for ref in refs:
        prefix = ref.id.split(".")[0]
        if prefix in ("R11", "R12") and ref.kind == "ddp":
            series.setdefault(prefix, {"conditions": ref.conditions, "points": []})
            series[prefix]["points"].append((int(ref.conditions["gpus"]), float(ref.value)))
    out = []
    if "R11" in series:
        c = series["R11"]["conditions"]
        llama = _model_file("llama-13b")
        seq_scale = float(c.get("seq_len", 2048)) / 2048.0  # the file is written for 2048 tokens
        for r in strong_scaling_model(series["R11"]["points"], llama["flops_per_sample"] * seq_scale,
                                      llama["params"], int(c["global_batch"]), int(c["pp"]),
                                      tflops=tflops, cluster=cluster, overlap=overlap):
            r.update(reference="R11", model="llama-13b", sizes_from=llama["source"])
            out.append(r)
    if "R12" in series:
        c = series["R12"]["conditions"]
        seq = int(c.get("seq_len", 4096))
        flops = 6.0 * DEEPSEEKMOE_16B["activated_params"] * seq  # fwd + bwd per sequence
        for r in strong_scaling_model(series["R12"]["points"], flops, DEEPSEEKMOE_16B["params"],
                                      int(c["global_batch"]), int(c["pp"]), tflops=tflops,
                                      cluster=cluster, overlap=overlap):
            r.update(reference="R12", model="deepseekmoe-16b", sizes_from=DEEPSEEKMOE_16B["source"])
            out.append(r)
    return out


def format_rows(rows):
    """Plain-text table of weak_scaling rows (what a report prints)."""
    head = (f"{'series':<58} {'ranks':>5} {'step s':>9} {'p99 s':>9} {'exposed s':>10} "
            f"{'overlap':>7} {'weak eff':>8}")
    lines = [head]
    for r in rows:
        ov = _num(r.get("overlap"))
        lines.append(f"{r['series'][:58]:<58} {int(r['ranks']):>5} {r['step_time']:>9.4f} "
                     f"{(_num(r.get('step_time_p99')) or float('nan')):>9.4f} "
                     f"{(_num(r.get('exposed_comm')) or 0.0):>10.4f} "
                     f"{'-' if ov is None else f'{ov:.2f}':>7} "
                     f"{r['weak_scaling_efficiency']:>8.3f}")
    return "\n".join(lines)
