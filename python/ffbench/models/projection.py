"""The allreduce projections behind `ffbench model` (usage and what each option does:
ffbench.commands.model): model output, never measurements."""
from ffbench.errors import ClusterError, UsageError
from ffbench.models.allreduce import HFREDUCE_BASES, PAPER_SIZE, predict
from ffbench.models.calibrate import (MIN_SIZE, _rate_gbit, collective_points, emu_comparable,
                                      emu_predict, model_algorithm, read_measurements, rule_check)
from ffbench.models.inter_node import split_algorithm

DEFAULT_GPUS = (16, 32, 64, 128, 256, 512, 1024)
PROJECT_GPUS = (2048, 4096, 8192, 10000)
EMU_DEFAULT_ALGS = ("hfreduce_emu", "mpi_ring")
CHECK_MAX_GPUS = 512       # check (1) covers 16-512 GPUs (issue 7)
TOLERANCE = 0.15
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
# --inter-node-map columns: 256 KiB..1 GiB with the paper's 184 MiB
MAP_SIZES = (256 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB, PAPER_SIZE, 256 * MIB, GIB)
MAP_DISAGREE = 0.02        # "!" when the model finds the other algorithm this much faster


# ---- model tables -----------------------------------------------------------------------------

def model_rows(cluster, gpus_list, algorithms, size, simulate=False):
    rows, notes = [], []
    for alg in algorithms:
        for gpus in gpus_list:
            rows.append(predict(cluster, alg, gpus, size,
                                simulate=simulate and split_algorithm(alg, HFREDUCE_BASES) is not None))
    return rows, notes


def _bw(x, width=7):
    """GB/s with enough digits for both a 10,000-GPU cluster and a 1 Gb/s emulated link."""
    if x >= 10:
        return f"{x:>{width}.2f}"
    if x >= 1:
        return f"{x:>{width}.3f}"
    return f"{x:>{width}.4f}"


def format_model_table(cluster, rows, size, simulate):
    lines = [f"# ffbench model allreduce: MODEL OUTPUT (not measured). cluster: {cluster.name} "
             f"({cluster.path}), per-GPU size {size:,} B",
             "# algbw = size / time, busbw = algbw x 2(n-1)/n with n = GPUs (GB = 1e9 B); "
             "ceiling = the bottleneck's algbw before efficiency, fill and latency"]
    lines.append("# inter = what HFReduce ran between nodes (hfreduce = the library's auto rule, "
                 "_tree / _ring forced); rule = the rule's T_tree / T_ring for the call (ms)")
    head = (f"{'GPUs':>6} {'nodes':>5}  {'algorithm':<16} {'inter':<10} {'time ms':>9} {'algbw':>7} "
            f"{'busbw':>7} {'ceiling':>7} {'fill ms':>7} {'lat ms':>6}")
    if simulate:
        head += f" {'DES algbw':>9} {'DES-CF':>7} {'DES s':>6}"
    head += "  bottleneck"
    lines.append(head)
    for r in rows:
        line = (f"{r['gpus']:>6} {r['nodes']:>5}  {r['algorithm']:<16} {r.get('inter_node', '-'):<10} "
                f"{r['time_s'] * 1e3:>9.3f} "
                f"{_bw(r['algbw'])} {_bw(r['busbw'])} {_bw(r['ceiling_algbw'])} "
                f"{r['t_fill_s'] * 1e3:>7.3f} {r['t_latency_s'] * 1e3:>6.3f}")
        if simulate:
            s = r.get("simulated")
            if s:
                line += f" {_bw(s['algbw'], 9)} {r['algbw'] / s['algbw'] - 1:>+7.1%} {s['wall_s']:>6.2f}"
            else:
                line += f" {'':>9} {'':>7} {'':>6}"
        line += f"  {r['bottleneck']}" + (f" ({r['chosen']})" if "chosen" in r else "")
        rule = r.get("inter_node_rule")
        if rule:
            line += f"; rule: tree {rule['t_tree_us'] / 1e3:.3f} / ring {rule['t_ring_us'] / 1e3:.3f} ms"
        lines.append(line)
    return "\n".join(lines)


def paper_comparison(cluster, rows, tolerance=TOLERANCE):
    """Model vs R1/R2/R4 and the checks of issue 7; None when the description has no paper data."""
    ref = cluster.paper.get("allreduce") if isinstance(cluster.paper.get("allreduce"), dict) else None
    if not ref:
        return None
    by = {(r["algorithm"], r["gpus"]): r for r in rows}
    comp = []
    # the paper's HFReduce is a double binary tree: R1 / R3 / R4 are held to the forced tree
    series = (("R1", "hfreduce_tree", ref.get("gpus"), ref.get("R1_hfreduce")),
              ("R2", "nccl", ref.get("gpus"), ref.get("R2_nccl")),
              ("R4", "hfreduce_nvlink_tree", ref.get("R4_gpus"), ref.get("R4_hfreduce_nvlink")))
    for name, alg, gpus, values in series:
        if not gpus or not values:
            continue
        for g, v in zip(gpus, values):
            r = by.get((alg, g))
            if r is None:
                continue
            comp.append({"reference": name, "algorithm": alg, "gpus": g, "paper": float(v),
                         "model_algbw": r["algbw"], "model_busbw": r["busbw"],
                         "rel_error": r["algbw"] / v - 1,
                         "rel_error_busbw": r["busbw"] / v - 1,
                         "in_check": g <= CHECK_MAX_GPUS and name in ("R1", "R2"),
                         "within": abs(r["algbw"] / v - 1) <= tolerance})
    checks = []
    for name in ("R1", "R2"):
        pts = [c for c in comp if c["reference"] == name and c["in_check"]]
        if pts:
            worst = max(pts, key=lambda c: abs(c["rel_error"]))
            ok = sum(c["within"] for c in pts)
            checks.append({"name": f"{name} within {tolerance:.0%} at 16-{CHECK_MAX_GPUS} GPUs",
                           "passed": ok == len(pts),
                           "detail": f"{ok}/{len(pts)} points; worst {worst['rel_error']:+.1%} at "
                                     f"{worst['gpus']} GPUs"})
    ratio_band = ref.get("R3_ratio_up_to_512")
    ratios = []
    for g in ref.get("gpus", []):
        h, n = by.get(("hfreduce_tree", g)), by.get(("nccl", g))
        if h and n:
            ratios.append((g, h["algbw"] / n["algbw"]))
    if ratio_band and ratios:
        lo, hi = ratio_band
        inside = [r for g, r in ratios if g <= CHECK_MAX_GPUS]
        if inside:
            ok = all(lo <= r <= hi for r in inside)
            checks.append({"name": f"R3 ratio HFReduce/NCCL at 16-{CHECK_MAX_GPUS} GPUs inside the "
                                   f"paper's {lo}-{hi}x",
                           "passed": ok,
                           "detail": f"model {min(inside):.2f}-{max(inside):.2f}x"})
    big = ref.get("R3_ratio_1024_up")
    if big and ratios:
        above = [r for g, r in ratios if g >= 1024]
        if above:
            lo, hi = big
            ok = all(lo <= r <= hi for r in above)
            checks.append({"name": f"R3 ratio at 1024+ GPUs, paper {lo}-{hi}x (not a required check)",
                           "passed": ok, "informational": True,
                           "detail": f"model {min(above):.2f}-{max(above):.2f}x: "
                                     + ("reproduced" if ok else "NOT reproduced: the paper's NCCL "
                                        "drop to ~1.6 GB/s at 1,024+ GPUs is outside this model "
                                        "(docs/models.md discusses it)")})
    return {"rows": comp, "ratios": ratios, "checks": checks}


def format_paper_comparison(cmp):
    lines = ["# model vs paper (paper values from the description's `paper:` section; compared with "
             "model algbw, the reading under which the paper's own ceilings (13.3, ~12, 'near 4') "
             "are consistent; model busbw shown too; docs/models.md)",
             f"{'ref':<4} {'algorithm':<16} {'GPUs':>6} {'paper':>7} {'model':>7} {'error':>8} "
             f"{'model busbw':>11} {'err busbw':>9}  check"]
    for c in cmp["rows"]:
        flag = ("ok" if c["within"] else "OUTSIDE") if c["in_check"] else \
            ("(info, within)" if c["within"] else "(info, outside)")
        lines.append(f"{c['reference']:<4} {c['algorithm']:<16} {c['gpus']:>6} {c['paper']:>7.2f} "
                     f"{c['model_algbw']:>7.2f} {c['rel_error']:>+8.1%} {c['model_busbw']:>11.2f} "
                     f"{c['rel_error_busbw']:>+9.1%}  {flag}")
    if cmp["ratios"]:
        lines.append("R3 model HFReduce/NCCL ratio: " + ", ".join(f"{g}: {r:.2f}x" for g, r in cmp["ratios"]))
    for ch in cmp["checks"]:
        status = "PASS" if ch["passed"] else ("NOT REPRODUCED" if ch.get("informational") else "FAIL")
        lines.append(f"check: {ch['name']}: {ch['detail']} -> {status}")
    return "\n".join(lines)


# ---- which algorithm the rule picks (--inter-node-map) -------------------------------------------

def _hfreduce_name(cluster):
    return "hfreduce_emu" if cluster.get("emulation") is not None else "hfreduce"


def inter_node_map(cluster, gpus_list, sizes=MAP_SIZES):
    """[{gpus, nodes, size, choice, algbw, other, other_algbw, model_disagrees}] for HFReduce's
    auto rule on this description: what auto runs per GPU count and size, the model's algbw of
    it, and the other algorithm forced (model output)."""
    base = _hfreduce_name(cluster)
    cells = []
    for gpus in gpus_list:
        for size in sizes:
            auto = predict(cluster, base, gpus, size)
            cell = {"gpus": gpus, "nodes": auto["nodes"], "size": size, "choice": auto["inter_node"],
                    "algbw": auto["algbw"], "other": None, "other_algbw": None,
                    "model_disagrees": False}
            if auto["inter_node"] in ("tree", "ring"):
                other = "ring" if auto["inter_node"] == "tree" else "tree"
                alt = predict(cluster, f"{base}_{other}", gpus, size)
                cell.update({"other": other, "other_algbw": alt["algbw"],
                             "model_disagrees": alt["algbw"] > (1 + MAP_DISAGREE) * auto["algbw"]})
            cells.append(cell)
    return cells


def _size_label(size):
    if size == PAPER_SIZE:
        return "184M(paper)"
    for unit, scale in (("G", GIB), ("M", MIB), ("K", KIB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def format_inter_node_map(cluster, cells):
    sizes = list(dict.fromkeys(c["size"] for c in cells))
    lines = [f"# which inter-node algorithm HFReduce's auto rule picks: MODEL OUTPUT (not measured). "
             f"cluster: {cluster.name}; each cell: what `{_hfreduce_name(cluster)}` runs and the "
             f"model's algbw in GB/s; ! = the model finds the other algorithm more than "
             f"{MAP_DISAGREE:.0%} faster",
             f"{'GPUs':>6} {'nodes':>5}  " + " ".join(f"{_size_label(s):>12}" for s in sizes)]
    by = {(c["gpus"], c["size"]): c for c in cells}
    for gpus in dict.fromkeys(c["gpus"] for c in cells):
        row = [by[(gpus, s)] for s in sizes]
        text = [f"{c['choice']} {c['algbw']:.3g}{' !' if c['model_disagrees'] else ''}" for c in row]
        lines.append(f"{gpus:>6} {row[0]['nodes']:>5}  " + " ".join(f"{t:>12}" for t in text))
    return "\n".join(lines)


# ---- measured comparison (the emulated cluster, check 2) -------------------------------------------

def format_rate(gbit):
    """1.0 -> "1gbit", 0.5 -> "500mbit" (the FFB_EMU_LINK_RATE spelling)."""
    if gbit is None:
        return "unrecorded"
    if gbit >= 1:
        return f"{gbit:g}gbit"
    return f"{gbit * 1e3:g}mbit"


def parse_rates(texts):
    """--compare-rate values ("1gbit", "500mbit", or Gb/s as a number) -> [Gb/s]."""
    rates = []
    for text in texts or ():
        value = _rate_gbit(text.strip())
        if value is None:
            try:
                value = float(text)
            except ValueError:
                value = None
        if value is None or value <= 0:
            raise UsageError(f"--compare-rate {text!r}: give a shaped link rate, e.g. 1gbit or "
                             f"500mbit")
        rates.append(value)
    return rates


def _rate_skip(point, rates):
    """Why --compare-rate leaves this point out, or None when it is kept (or no filter)."""
    if not rates:
        return None
    if point.link_gbit is not None and any(abs(point.link_gbit - r) <= 1e-9 * r for r in rates):
        return None
    keeps = ", ".join(format_rate(r) for r in rates)
    if point.link_gbit is None:
        return f"no shaped link rate recorded (--compare-rate keeps {keeps})"
    return f"shaped at {format_rate(point.link_gbit)} (--compare-rate keeps {keeps})"


def compare_measured(cluster, paths, tolerance=TOLERANCE, min_size=MIN_SIZE, skipped=None,
                     rates=None):
    """Measured vs model rows. On an emulated cluster only the points the model describes are
    compared (emu_comparable); the others are counted in `skipped` ({reason: count}). HFReduce
    rows are modelled with the algorithm they say they ran; `rule` is what the Python rule picks
    with the run's recorded link figures (auto runs), `rule_agrees` whether the library did too.
    `rates` (Gb/s, --compare-rate): keep only emulated runs shaped at one of these rates."""
    found = read_measurements(paths)
    if not found["collective"]:
        raise ClusterError(f"{', '.join(paths)}: no `collective` table to compare with (expected runs "
                           f"of mpi_allreduce_bench / hfreduce_bench)")
    points = collective_points(found["collective"], min_size)
    out = []
    emulated = cluster.get("emulation") is not None
    skipped = {} if skipped is None else skipped
    for pt in points:
        if emulated:
            why = _rate_skip(pt, rates) or emu_comparable(pt)
            if why is not None:
                skipped[why] = skipped.get(why, 0) + 1
                continue
            pred = emu_predict(cluster, pt)
        else:
            alg = model_algorithm(pt)
            if alg is None or pt.nranks % cluster.gpus_per_node:
                continue
            pred = predict(cluster, alg, pt.nranks, pt.size)
        meas = pt.size / pt.time_s / 1e9
        rule = rule_check(pt)
        out.append({"backend": pt.backend, "nnodes": pt.nnodes, "nranks": pt.nranks, "size": pt.size,
                    "algorithm": pred.get("inter_node", "ring" if pt.backend == "mpi" else "-"),
                    "measured_algbw": meas, "model_algbw": pred["algbw"],
                    "rel_error": pred["algbw"] / meas - 1,
                    "within": abs(pred["algbw"] / meas - 1) <= tolerance,
                    "bottleneck": pred["bottleneck"],
                    "rule": rule[0] if rule else "", "rule_agrees": rule[1] if rule else None})
    return out


def format_measured(rows, tolerance, skipped=None):
    lines = [f"# measured (results files) vs model; within +-{tolerance:.0%}; alg = what the row "
             f"ran (HFReduce: its `algorithm` column; older runs: tree); rule = the Python rule "
             f"with the run's recorded link figures (--inter-node auto runs)"]
    for why, count in sorted((skipped or {}).items()):
        lines.append(f"# not compared: {count} point(s): {why}")
    lines.append(f"{'backend':<9} {'alg':<5} {'nodes':>5} {'ranks':>5} {'size B':>12} {'measured':>9} "
                 f"{'model':>8} {'error':>8}  check  {'rule':<5} bottleneck")
    for r in rows:
        rule = r.get("rule") or "-"
        if r.get("rule_agrees") is False:
            rule += "!"
        lines.append(f"{r['backend']:<9} {r.get('algorithm', '-'):<5} {r['nnodes']:>5} {r['nranks']:>5} "
                     f"{int(r['size']):>12,} {_bw(r['measured_algbw'], 9)} {_bw(r['model_algbw'], 8)} "
                     f"{r['rel_error']:>+8.1%}  {'ok' if r['within'] else 'OUTSIDE':<5}  {rule:<5} "
                     f"{r['bottleneck']}")
    ok = sum(r["within"] for r in rows)
    lines.append(f"check (2): {ok}/{len(rows)} points within {tolerance:.0%} -> "
                 f"{'PASS' if ok == len(rows) and rows else 'FAIL'}")
    ruled = [r for r in rows if r.get("rule_agrees") is not None]
    if ruled:
        agree = sum(bool(r["rule_agrees"]) for r in ruled)
        lines.append(f"check (rule): {agree}/{len(ruled)} auto rows ran what the Python rule picks with "
                     f"the run's link figures -> {'PASS' if agree == len(ruled) else 'FAIL'}")
    return "\n".join(lines)


def measured_passed(rows):
    """check (2) and, where the runs recorded their rule inputs, the rule check."""
    return bool(rows) and all(r["within"] for r in rows) and \
        all(r.get("rule_agrees") is not False for r in rows)


# ---- plot ---------------------------------------------------------------------------------------

def plot(path, results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib (apt-get install python3-matplotlib)") from None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    styles = {"hfreduce": "-", "hfreduce_tree": "-", "hfreduce_ring": "--",
              "hfreduce_nvlink": "--", "nccl_ring": ":", "nccl_tree": "-.", "nccl": "-",
              "hfreduce_emu": "-", "mpi_ring": ":"}
    for cluster, rows, cmp in results:
        algs = []
        for r in rows:
            if r["algorithm"] not in algs:
                algs.append(r["algorithm"])
        for alg in algs:
            pts = [(r["gpus"], r["algbw"]) for r in rows if r["algorithm"] == alg]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], styles.get(alg, "-"), marker=".",
                    label=f"model: {cluster.name} {alg}")
        if cmp:
            for ref, marker in (("R1", "o"), ("R2", "s"), ("R4", "^")):
                pts = [(c["gpus"], c["paper"]) for c in cmp["rows"] if c["reference"] == ref]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, linestyle="none",
                            markerfacecolor="none", label=f"paper {ref} (measured by the authors)")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["gpus"] for _c, rows, _p in results for r in rows})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:,}" for t in ticks], rotation=45, fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("GPUs")
    ax.set_ylabel("allreduce algbw (GB/s)")
    ax.set_title("ffbench model allreduce: MODEL OUTPUT (not measured)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- HDF5 ---------------------------------------------------------------------------------------

def h5_tables(results, measured, calib_reports):
    nan = float("nan")
    m = {k: [] for k in ("cluster", "algorithm", "gpus", "nodes", "size", "time", "algbw", "busbw",
                         "t_bandwidth", "t_fill", "t_latency", "ceiling_algbw", "bottleneck",
                         "sim_time", "sim_algbw", "sim_wall", "inter_node", "chunk_bytes",
                         "rule_t_tree", "rule_t_ring")}
    for cluster, rows, _cmp in results:
        for r in rows:
            s = r.get("simulated") or {}
            m["cluster"].append(cluster.name)
            m["algorithm"].append(r["algorithm"])
            m["gpus"].append(r["gpus"])
            m["nodes"].append(r["nodes"])
            m["size"].append(int(r["size"]))
            m["time"].append(r["time_s"] * 1e6)
            m["algbw"].append(r["algbw"])
            m["busbw"].append(r["busbw"])
            m["t_bandwidth"].append(r["t_bandwidth_s"] * 1e6)
            m["t_fill"].append(r["t_fill_s"] * 1e6)
            m["t_latency"].append(r["t_latency_s"] * 1e6)
            m["ceiling_algbw"].append(r["ceiling_algbw"])
            m["bottleneck"].append(r["bottleneck"])
            m["sim_time"].append(s.get("time_s", nan) * 1e6 if s else nan)
            m["sim_algbw"].append(s.get("algbw", nan))
            m["sim_wall"].append(s.get("wall_s", nan))
            rule = r.get("inter_node_rule") or {}
            m["inter_node"].append(r.get("inter_node", ""))
            m["chunk_bytes"].append(int(r.get("chunk_bytes", 0) or 0))
            m["rule_t_tree"].append(rule.get("t_tree_us", nan))
            m["rule_t_ring"].append(rule.get("t_ring_us", nan))
    units = {"gpus": "count", "nodes": "count", "size": "B", "time": "us", "algbw": "GB/s",
             "busbw": "GB/s", "t_bandwidth": "us", "t_fill": "us", "t_latency": "us",
             "ceiling_algbw": "GB/s", "sim_time": "us", "sim_algbw": "GB/s", "sim_wall": "s",
             "chunk_bytes": "B", "rule_t_tree": "us", "rule_t_ring": "us"}
    tables = {"allreduce_model": {k: (v, units.get(k, "1")) for k, v in m.items()}} if m["cluster"] else {}
    p = {k: [] for k in ("cluster", "reference", "algorithm", "gpus", "paper", "model_algbw",
                         "model_busbw", "rel_error", "in_check", "within_tolerance")}
    for cluster, _rows, cmp in results:
        for c in (cmp or {}).get("rows", []):
            p["cluster"].append(cluster.name)
            p["reference"].append(c["reference"])
            p["algorithm"].append(c["algorithm"])
            p["gpus"].append(c["gpus"])
            p["paper"].append(c["paper"])
            p["model_algbw"].append(c["model_algbw"])
            p["model_busbw"].append(c["model_busbw"])
            p["rel_error"].append(c["rel_error"])
            p["in_check"].append(int(c["in_check"]))
            p["within_tolerance"].append(int(c["within"]))
    if p["cluster"]:
        pu = {"gpus": "count", "paper": "GB/s", "model_algbw": "GB/s", "model_busbw": "GB/s"}
        tables["allreduce_vs_paper"] = {k: (v, pu.get(k, "1")) for k, v in p.items()}
    if measured:
        mu = {"nnodes": "count", "nranks": "count", "size": "B", "measured_algbw": "GB/s",
              "model_algbw": "GB/s"}
        cols = ("backend", "algorithm", "nnodes", "nranks", "size", "measured_algbw", "model_algbw",
                "rel_error", "within", "bottleneck", "rule")
        tables["allreduce_vs_measured"] = {
            ("within_tolerance" if k == "within" else k):
            ([int(r[k]) if k == "within" else r[k] for r in measured], mu.get(k, "1")) for k in cols}
    if calib_reports:
        tables["calibration"] = {
            "cluster": ([c for c, _k, _v, _s in calib_reports], "1"),
            "key": ([k for _c, k, _v, _s in calib_reports], "1"),
            "value": ([float(v) for _c, _k, v, _s in calib_reports], "1"),
            "source": ([s for _c, _k, _v, s in calib_reports], "1"),
        }
    return tables


# ---- the command ----------------------------------------------------------------------------------

