"""ffbench cost: switch counts, prices, performance, power and operating cost of cluster descriptions.

    ffbench cost CLUSTER.yaml [--vs OTHER.yaml ...] [--baseline N] [--perf-metric M] [--output F.h5]

Every number printed is model output computed from the YAML inputs (see models/cost.py,
models/fattree.py of python/ffbench and docs/models.md). Where a description carries a `paper:`
section, the paper's value is printed beside the model's in brackets with the difference; the
paper values are never used as inputs.
"""
from ffbench.errors import ClusterError
from ffbench.models.cost import GEMM_MEAN_DTYPES, cluster_cost, compare, implied_switch_price

PERF_METRICS = ("gemm_mean", "tf32", "fp16", "bf16", "fp8", "fp64", "measured")


# ---- formatting --------------------------------------------------------------------------------

def _num(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def _pct(x, digits=1):
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _with_paper(text, model, paper, kind="num"):
    if paper is None or model is None:
        return text
    if kind == "pct":
        ptxt = f"{100 * paper:g}%"
    elif kind == "ratio":
        ptxt = f"{paper:g}"
    else:
        ptxt = f"{paper:,g}"
    diff = (model / paper - 1) if paper else None
    if diff is not None and abs(diff) < 5e-4:
        return f"{text} [paper {ptxt}, =]"
    return f"{text} [paper {ptxt}, {100 * diff:+.1f}%]" if diff is not None else f"{text} [paper {ptxt}]"


def compute(clusters, base_index, metric):
    """All numbers of the comparison: per-cluster costs, ratios against the baseline, paper rows."""
    costs = [cluster_cost(c) for c in clusters]
    base = costs[base_index]
    comps = []
    for c, cl in zip(costs, clusters):
        try:
            comps.append(compare(c, base, cl, clusters[base_index], metric))
        except ClusterError:
            if len(clusters) > 1:
                raise
            comps.append(None)
    return costs, comps


def _rows(clusters, costs, comps, base_index):
    base_name = clusters[base_index].name
    rows = []

    def add(label, cells):
        rows.append((label, cells))

    def paper(cl, section, key):
        sec = cl.paper.get(section) or {}
        return sec.get(key) if isinstance(sec, dict) else None

    add("GPUs (nodes x GPUs/node)", [f"{c['gpus']:,} ({c['nodes']:,} x {c['gpus_per_node']})"
                                      for c in costs])
    add("fabric", [f"{f['layers']}-layer, radix {f['radix']}, {f['zones']} zone"
                   f"{'s' if f['zones'] > 1 else ''}, {f['planes']} plane{'s' if f['planes'] > 1 else ''}"
                   for f in (c["fabric"] for c in costs)])
    add("endpoints computed / used", [f"{c['fabric']['endpoints_computed']:,} / "
                                      f"{c['fabric']['endpoints']:,}" for c in costs])
    add("leaves / spines / cores", [f"{c['fabric']['leaves']:,} / {c['fabric']['spines']:,} / "
                                    f"{c['fabric']['cores']:,}" for c in costs])
    add("fabric capacity (endpoints)", [_with_paper(f"{c['fabric']['capacity']:,}", c["fabric"]["capacity"],
                                                    paper(cl, "network", "capacity"))
                                        for c, cl in zip(costs, clusters)])
    add("switches, textbook formula", [
        f"{c['fabric']['switches_textbook']:,}" + ("" if c["fabric"]["textbook_feasible"]
                                                   else " (over capacity)") for c in costs])
    add("switches, with the inputs", [
        _with_paper(f"{c['fabric']['switches']:,}", c["fabric"]["switches"], paper(cl, "table3", "switches"))
        for c, cl in zip(costs, clusters)])
    cur = [f" {c['currency']}" if c["currency"] not in (None, "relative") else "" for c in costs]
    add("network price", [_with_paper(_num(c["network_price"]) + u, c["network_price"],
                                      paper(cl, "table3", "network_price"))
                          for c, cl, u in zip(costs, clusters, cur)])
    add("server price (nodes x node price)", [_with_paper(_num(c["server_price"]) + u, c["server_price"],
                                     paper(cl, "table3", "server_price"))
                         for c, cl, u in zip(costs, clusters, cur)])
    add("total price", [_with_paper(_num(c["total_price"]) + u, c["total_price"],
                                    paper(cl, "table3", "total_price"))
                        for c, cl, u in zip(costs, clusters, cur)])
    add("GEMM TFLOPS/node " + "/".join(GEMM_MEAN_DTYPES),
        [" / ".join(_num(c["tflops_per_node"].get(d)) for d in GEMM_MEAN_DTYPES) for c in costs])
    if any(comps):
        add(f"performance vs {base_name}", [
            "n/a" if cp is None else _with_paper(_pct(cp["relative_performance"]),
                                                 cp["relative_performance"],
                                                 paper(cl, "table2", "relative_performance"), "pct")
            for cp, cl in zip(comps, clusters)])
        add("node price ratio", [
            "n/a" if cp is None or cp["node_price_ratio"] is None else
            _with_paper(_pct(cp["node_price_ratio"]), cp["node_price_ratio"],
                        paper(cl, "table2", "node_price_ratio"), "pct")
            for cp, cl in zip(comps, clusters)])
        add("cost-performance (node)", [
            "n/a" if cp is None or cp["cost_performance"] is None else
            _with_paper(f"{cp['cost_performance']:.2f}", cp["cost_performance"],
                        paper(cl, "table2", "cost_performance"), "ratio")
            for cp, cl in zip(comps, clusters)])
        add("cluster price ratio", [
            "n/a" if cp is None or cp["total_price_ratio"] is None else
            _with_paper(_pct(cp["total_price_ratio"]), cp["total_price_ratio"],
                        paper(cl, "table2", "total_price_ratio"), "pct")
            for cp, cl in zip(comps, clusters)])
        add("cost-performance (cluster)", [
            "n/a" if cp is None or cp["cluster_cost_performance"] is None else
            f"{cp['cluster_cost_performance']:.2f}" for cp in comps])
    add("node power (input)", ["n/a" if c["node_w"] is None else
                               _with_paper(f"{_num(c['node_w'])} W", c["node_w"],
                                           paper(cl, "table2", "node_power_w"))
                               for c, cl in zip(costs, clusters)])
    add("power: nodes + switches", [
        "n/a" if c["power_w"] is None else
        _with_paper(f"{c['power_w'] / 1e6:.2f} MW (nodes {c['nodes_w'] / 1e6:.3f})", c["power_w"] / 1e6,
                    paper(cl, "table2", "cluster_power_mw"))
        for c, cl in zip(costs, clusters)])
    add("energy per year (x PUE)", [
        "n/a" if c["power_w"] is None else
        f"{c['energy_kwh_per_year'] / 1e6:,.1f} GWh (PUE {c['pue'] if c['pue'] else 'n/a'})"
        for c in costs])
    add("operating cost", [
        "n/a" if c["operating_cost"] is None else
        f"{c['operating_cost'] / 1e6:,.1f} M {c['energy_currency']} ({c['years']:g} y at "
        f"{c['energy_price_per_kwh']:g}/kWh)" for c in costs])
    return rows


def _notes(clusters, costs, comps, base_index):
    notes = []
    for c, cl in zip(costs, clusters):
        for n in c["fabric"]["notes"]:
            notes.append(f"{cl.name}: {n}")
        for m in c["missing"]:
            notes.append(f"{cl.name}: no '{m}' section, so its {m} rows are n/a")
    implied = []
    for c, cl in zip(costs, clusters):
        pn = (cl.paper.get("table3") or {}).get("network_price") if isinstance(cl.paper.get("table3"), dict) \
            else None
        if pn is not None and c["fabric"]["switches"]:
            implied.append(f"{cl.name} {implied_switch_price(pn, c['fabric']['switches']):.3f}")
    if implied:
        notes.append("all-in switch price that reproduces each paper network price exactly "
                      "(prices.switch): " + ", ".join(implied) +
                      "; the shipped files use one price for all")
    for cp, cl in zip(comps, clusters):
        t2 = cl.paper.get("table2") if isinstance(cl.paper.get("table2"), dict) else None
        if not cp or not t2 or "relative_performance" not in t2:
            continue
        if cp["perf_basis"].startswith("mean"):
            notes.append(f"{cl.name}: performance = {cp['perf_basis']} ({cp['relative_performance']:.4f}); "
                         f"the paper rounds to {t2['relative_performance']:g}")
        if "node_price_ratio" in t2 and "cost_performance" in t2 and cp["cost_performance"]:
            rounded = t2["relative_performance"] / t2["node_price_ratio"]
            notes.append(f"{cl.name}: the paper's cost-performance {t2['cost_performance']:g} is its "
                         f"rounded {t2['relative_performance']:g} / {t2['node_price_ratio']:g} = "
                         f"{rounded:.3f}; unrounded model values give {cp['cost_performance']:.3f}")
    return notes


def format_table(clusters, costs, comps, base_index):
    rows = _rows(clusters, costs, comps, base_index)
    notes = _notes(clusters, costs, comps, base_index)
    label_w = max(len(r[0]) for r in rows)
    col_w = [max(len(clusters[i].name), *(len(r[1][i]) for r in rows)) for i in range(len(clusters))]
    lines = ["# ffbench cost: MODEL OUTPUT from cluster descriptions (no measurement). "
             "[paper ...] = the paper's value, never an input."]
    head = "quantity".ljust(label_w) + " | " + " | ".join(c.name.ljust(w) for c, w in zip(clusters, col_w))
    lines.append(head)
    lines.append("-" * len(head))
    for label, cells in rows:
        lines.append(label.ljust(label_w) + " | " + " | ".join(x.ljust(w) for x, w in zip(cells, col_w)))
    if notes:
        lines.append("notes:")
        lines.extend(f"  - {n}" for n in notes)
    return "\n".join(lines)


def h5_tables(clusters, costs, comps):
    def col(values, units):
        return (values, units)
    nan = float("nan")

    def f(x):
        return nan if x is None else float(x)
    cost = {
        "cluster": col([c.name for c in clusters], "1"),
        "file": col([c.path for c in clusters], "1"),
        "nodes": col([c["nodes"] for c in costs], "count"),
        "gpus": col([c["gpus"] for c in costs], "count"),
        "endpoints_computed": col([c["fabric"]["endpoints_computed"] for c in costs], "count"),
        "endpoints": col([c["fabric"]["endpoints"] for c in costs], "count"),
        "leaves": col([c["fabric"]["leaves"] for c in costs], "count"),
        "spines": col([c["fabric"]["spines"] for c in costs], "count"),
        "cores": col([c["fabric"]["cores"] for c in costs], "count"),
        "switches_textbook": col([c["fabric"]["switches_textbook"] for c in costs], "count"),
        "switches": col([c["fabric"]["switches"] for c in costs], "count"),
        "currency": col([c["currency"] or "" for c in costs], "1"),
        "network_price": col([f(c["network_price"]) for c in costs], "currency"),
        "server_price": col([f(c["server_price"]) for c in costs], "currency"),
        "total_price": col([f(c["total_price"]) for c in costs], "currency"),
        "relative_performance": col([f(cp and cp["relative_performance"]) for cp in comps], "1"),
        "node_price_ratio": col([f(cp and cp["node_price_ratio"]) for cp in comps], "1"),
        "cost_performance": col([f(cp and cp["cost_performance"]) for cp in comps], "1"),
        "total_price_ratio": col([f(cp and cp["total_price_ratio"]) for cp in comps], "1"),
        "node_power": col([f(c["node_w"]) for c in costs], "W"),
        "cluster_power": col([f(c["power_w"]) for c in costs], "W"),
        "energy_per_year": col([f(c["energy_kwh_per_year"]) for c in costs], "kWh"),
        "operating_cost": col([f(c["operating_cost"]) for c in costs], "currency"),
    }
    ref = {"cluster": [], "quantity": [], "model": [], "paper": [], "rel_error": []}
    pairs = (("table3", "switches", lambda c, cp: c["fabric"]["switches"]),
             ("table3", "network_price", lambda c, cp: c["network_price"]),
             ("table3", "server_price", lambda c, cp: c["server_price"]),
             ("table3", "total_price", lambda c, cp: c["total_price"]),
             ("table2", "relative_performance", lambda c, cp: cp and cp["relative_performance"]),
             ("table2", "node_price_ratio", lambda c, cp: cp and cp["node_price_ratio"]),
             ("table2", "cost_performance", lambda c, cp: cp and cp["cost_performance"]),
             ("table2", "total_price_ratio", lambda c, cp: cp and cp["total_price_ratio"]),
             ("table2", "node_power_w", lambda c, cp: c["node_w"]),
             ("table2", "cluster_power_mw", lambda c, cp: c["power_w"] and c["power_w"] / 1e6))
    for cl, c, cp in zip(clusters, costs, comps):
        for section, key, get in pairs:
            sec = cl.paper.get(section)
            if not isinstance(sec, dict) or sec.get(key) is None:
                continue
            model = get(c, cp)
            if model is None:
                continue
            ref["cluster"].append(cl.name)
            ref["quantity"].append(f"{section}.{key}")
            ref["model"].append(float(model))
            ref["paper"].append(float(sec[key]))
            ref["rel_error"].append(float(model) / float(sec[key]) - 1 if sec[key] else nan)
    tables = {"cost": cost}
    if ref["cluster"]:
        tables["cost_vs_paper"] = {k: (v, "1") for k, v in ref.items()}
    return tables


