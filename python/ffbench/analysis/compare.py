"""`ffbench compare RESULTS... [--reference REF]`: measured values against reference values.

REF is a reference file (configs/reference/*.yaml; format in configs/reference/README.md) or
another results file (a new cluster against an old run). For every reference the results cover
there is one row: reference value, measured value, ratio, the tolerance as ReFrame writes it
(value, lower, upper, unit; lower/upper are fractions, None = unbounded) and PASS, FAIL or
"not comparable" with the reason (different GPU count, message size, file system, ...).
Exit status 1 when any row FAILs, 0 otherwise, 2 for bad input.
"""
import math
import os
import re

import numpy as np

from ffbench.analysis.twins import gpu_model_of, pcie_link_efficiency
from ffbench.data import paths
from ffbench.data import results as resmod
from ffbench.data.reference import Reference, as_number, load_reference

PASS, FAIL, NC = "PASS", "FAIL", "not comparable"
MODEL_KINDS = ("model", "ceiling")  # their "measured" column is model output, and says so


# ---- rows the references are matched against -------------------------------------------------

def _scalar_attrs(run):
    out = {}
    for k, v in run.attrs.items():
        if isinstance(v, (str, int, float, bool)):
            out[k] = v
    return out


def _uniform_int(text):
    try:
        parts = {int(p) for p in str(text).split(",") if p.strip()}
    except ValueError:
        return text
    return parts.pop() if len(parts) == 1 else text


def collective_rows(runs):
    rows = []
    for r in resmod.collective_rows(runs):
        r = dict(r)
        r["ranks_per_node"] = _uniform_int(r["ranks_per_node"])
        r["_date"] = r.get("date", "")
        rows.append(r)
    return rows


def storage_rows(runs):
    rows = []
    for r in resmod.storage_rows(runs):
        r = dict(r)
        run = r["run"]
        for k, v in (r.get("options") or {}).items():
            if isinstance(v, (str, int, float, bool)) and k not in r:
                r[k] = v
        r["filesystem"] = r.get("fs_type", "")
        r["clients"] = r["ranks"]
        nodes = max(int(r.get("nodes", 1) or 1), 1)
        bw = r.get("bw")
        r["bw_per_node"] = bw / nodes if isinstance(bw, float) else bw
        ops = run.tables.get("storage_ops")
        if ops is not None and "phase_index" in ops and "op" in ops:
            for j in range(len(ops["op"])):
                if int(ops["phase_index"][j]) == r["_pos"]:
                    op = str(ops["op"][j])
                    if "bw" in ops:
                        r[f"bw_{op}"] = float(ops["bw"][j])
                        r[f"bw_{op}_per_node"] = float(ops["bw"][j]) / nodes
                    if "ops_rate" in ops:
                        r[f"ops_rate_{op}"] = float(ops["ops_rate"][j])
        r["_date"] = run.attrs.get("date", "")
        rows.append(r)
    return rows


def ceiling_rows(runs):
    membw = resmod.host_memory_bandwidth(runs)
    if not membw:
        return []
    bw, where = membw
    return [{"host_membw": bw, "membw_source": where,
             "hfreduce_memory_ceiling": bw / 24.0,
             "hfreduce_memory_ceiling_nvlink": bw / 16.0,
             "hfreduce_memory_ceiling_memcpy": bw / 30.0,
             "_date": ""}]


def generic_rows(runs, kind, table=None):
    rows = []
    for run in runs:
        if run.attrs.get("kind") != kind:
            continue
        base = _scalar_attrs(run)
        for k, v in resmod.options(run).items():
            if isinstance(v, (str, int, float, bool)) and k not in base:
                base[k] = v
        base["run"] = run
        base["source"] = getattr(run, "source", "")
        gpu = resmod.uses_gpu(run)
        base.setdefault("gpus", int(run.attrs.get("nranks", 0)) if gpu else 0)
        base.setdefault("nodes", run.attrs.get("nnodes", 1))
        base["_date"] = run.attrs.get("date", "")
        for tname, t in run.tables.items():
            if table and tname != table:
                continue
            if tname == "ranks":
                continue
            cols = {c: v for c, v in t.items() if getattr(v, "ndim", 1) == 1}
            n = len(next(iter(cols.values()))) if cols else 0
            for i in range(n):
                row = dict(base)
                row["table"] = tname
                for c, v in cols.items():
                    x = v[i]
                    row[c] = x.item() if isinstance(x, np.generic) else x
                rows.append(row)
    return rows


def gemm_rows(runs):
    """gemm_bench rows (type, n, tflops, device) with gpu_model = the device's model name."""
    rows = [r for r in generic_rows(runs, "probe", "gemm") if r["run"].attrs.get("program")
            == "gemm_bench"]
    for r in rows:
        r["gpu_model"] = gpu_model_of(r.get("device", ""))
    return rows


def pcie_rows(runs):
    """pcie_bench rows joined with their GPUs' links: direction, memory, scenario (alone, root
    port, all), gpus_on_port, pcie_gen, lanes, bandwidth (GB/s), gpu_model, cpu."""
    rows = []
    for e in pcie_link_efficiency(runs)[0]:
        run = e.extra["run"]
        r = dict(e.fields)
        r.update(bandwidth=e.extra["bandwidth"], link_gbps=e.extra["link_gbps"], run=run,
                 cpu=run.attrs.get("cpu_model", ""), _date=run.attrs.get("date", ""))
        rows.append(r)
    return rows


def rows_for(kind, runs, cache, table=None):
    key = (kind, table)
    if key not in cache:
        if kind in ("collective", "collective_ratio"):
            cache[key] = collective_rows(runs)
        elif kind == "storage":
            cache[key] = storage_rows(runs)
        elif kind == "ceiling":
            cache[key] = ceiling_rows(runs)
        elif kind == "gemm":
            cache[key] = gemm_rows(runs)
        elif kind == "pcie":
            cache[key] = pcie_rows(runs)
        else:
            cache[key] = generic_rows(runs, kind, table)
    return cache[key]


# ---- condition matching -------------------------------------------------------------------------

def cond_ok(expected, got):
    if got is None:
        return False
    if isinstance(expected, list):
        return any(cond_ok(e, got) for e in expected)
    if isinstance(expected, dict):
        if "contains" in expected:
            return str(expected["contains"]).lower() in str(got).lower()
        g = as_number(got)
        if g is None:
            return False
        if "min" in expected and g < float(expected["min"]):
            return False
        if "max" in expected and g > float(expected["max"]):
            return False
        return True
    e, g = as_number(expected), as_number(got)
    if isinstance(expected, bool):
        return bool(got) == expected
    if e is not None and g is not None:
        return abs(e - g) <= 1e-9 * max(abs(e), 1.0)
    return str(expected).lower() == str(got).lower()


def _fmt_value(key, v):
    if v is None:
        return "not recorded"
    if key in ("size",) and as_number(v) is not None:
        n = int(v)
        for suffix, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if n >= mult:
                x = n / mult
                return f"{x:g} {suffix}" if x == int(x) else f"{x:.1f} {suffix}"
        return f"{n} B"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _fmt_expected(key, e):
    if isinstance(e, list):
        return " or ".join(_fmt_expected(key, x) for x in e)
    if isinstance(e, dict):
        if "contains" in e:
            return f"'{e['contains']}'"
        parts = []
        if "min" in e:
            parts.append(f">= {_fmt_value(key, e['min'])}")
        if "max" in e:
            parts.append(f"<= {_fmt_value(key, e['max'])}")
        return " and ".join(parts)
    return _fmt_value(key, e)


def mismatches(conditions, row):
    out = []
    for k, e in conditions.items():
        g = row.get(k)
        if not cond_ok(e, g):
            what = _fmt_value(k, g)
            if k == "gpus" and row.get("device") == "host":
                what = f"0 (host buffers, {row.get('ranks')} ranks)"
            out.append((k, f"{k} {what} vs {_fmt_expected(k, e)}", _distance(e, g)))
    return out


def _distance(e, g):
    e0 = as_number(e) if not isinstance(e, (dict, list)) else None
    g0 = as_number(g)
    if e0 and g0 and e0 > 0 and g0 > 0:
        return abs(math.log(g0 / e0))
    return 10.0


def metric_of(row, metric):
    v = row.get(metric)
    v = as_number(v)
    if v is None or not math.isfinite(v):
        return None
    return v


class Row:
    def __init__(self, ref, status, measured=None, detail="", where=""):
        self.ref = ref
        self.status = status
        self.measured = measured
        self.detail = detail
        self.where = where
        self.pair = None   # (old row, new row) in results-file mode
        self.shows = ""    # what a difference shows: hardware, software, undetermined

    @property
    def ratio(self):
        if self.measured is None or self.status == NC or not self.ref.value:
            return None
        return self.measured / self.ref.value


def _latest(rows):
    return sorted(rows, key=lambda r: str(r.get("_date", "")))[-1]


def _judge(ref, measured):
    lo, hi = ref.bounds()
    return PASS if lo <= measured <= hi else FAIL


def _where(row):
    run = row.get("run")
    if run is None:
        return row.get("membw_source", "")
    return f"{os.path.basename(getattr(run, 'source', ''))}:/runs/{run.id}"


def evaluate(ref, runs, cache):
    """Row for one reference, or None when the results do not cover it."""
    rows = rows_for(ref.kind, runs, cache, ref.table)
    covered = [r for r in rows if not mismatches(ref.match, r)]
    if ref.kind == "collective_ratio":
        return _evaluate_ratio(ref, covered, rows)
    if not covered:
        return None
    ok = [r for r in covered if not mismatches(ref.conditions, r)
          and metric_of(r, ref.metric) is not None]
    if ok:
        row = _latest(ok)
        measured = metric_of(row, ref.metric)
        status = _judge(ref, measured)
        notes = _also(ref, row, True)
        if len(ok) > 1:
            notes.append(f"{len(ok)} matching rows, the latest used")
        return Row(ref, status, measured, "; ".join(notes), _where(row))
    best = min(covered, key=lambda r: (len(mismatches(ref.conditions, r)),
                                       sum(m[2] for m in mismatches(ref.conditions, r))))
    reasons = [m[1] for m in mismatches(ref.conditions, best)]
    if not reasons:
        reasons = [f"metric '{ref.metric}' not recorded in the results"]
    return Row(ref, NC, metric_of(best, ref.metric),
               "; ".join(reasons + _also(ref, best, False) + _twin_hint(ref)), _where(best))


def _twin_hint(ref):
    """A raw row that is not comparable names the twin that carries it across hardware."""
    return [f"across hardware see twin {', '.join(ref.twins)}"] if ref.twins else []


def _also(ref, row, comparable):
    """Other readings of the same reference value (e.g. algbw when the figure may show it)."""
    out = []
    for metric in ref.also:
        v = metric_of(row, metric)
        if v is None:
            continue
        if comparable:
            out.append(f"{metric} {v:.3g} (ratio {v / ref.value:.2f} if the paper's value is "
                       f"{metric})")
        else:
            out.append(f"{metric} ({v:.3g})")
    return out


def _evaluate_ratio(ref, covered_num, all_rows):
    den_match = dict(ref.match)
    den_match.update(ref.denominator)
    covered_den = [r for r in all_rows if not mismatches(den_match, r)]
    if not covered_num or not covered_den:
        return None
    num_ok = [r for r in covered_num if not mismatches(ref.conditions, r)]
    den_ok = [r for r in covered_den if not mismatches(ref.conditions, r)]
    if num_ok and den_ok:
        n, d = _latest(num_ok), _latest(den_ok)
        a, b = metric_of(n, ref.metric), metric_of(d, ref.metric)
        if a is not None and b:
            return Row(ref, _judge(ref, a / b), a / b, f"{a:.3g} / {b:.3g} {ref.metric}",
                       f"{_where(n)} / {_where(d)}")
    reasons = []
    for side, rows in (("numerator", covered_num), ("denominator", covered_den)):
        best = min(rows, key=lambda r: len(mismatches(ref.conditions, r)))
        mm = [m[1] for m in mismatches(ref.conditions, best)]
        if mm:
            reasons.append(f"{side}: " + "; ".join(mm))
    detail = " | ".join(reasons) or "no pair of rows with equal conditions"
    return Row(ref, NC, None, "; ".join([detail] + _twin_hint(ref)))


def compare_reference(runs, refs):
    """Rows of the raw (not normalised) references; twins are verdict.verdicts' job."""
    cache = {}
    rows, uncovered = [], []
    for ref in refs:
        if ref.is_twin:
            continue
        row = evaluate(ref, runs, cache)
        if row is None:
            uncovered.append(ref)
        else:
            rows.append(row)
    return rows, uncovered


# ---- results file against results file ---------------------------------------------------------

def _identity_collective(r):
    return ("collective", r["program"], r["backend"], r["series"], r["ranks"], r["nodes"],
            str(r["ranks_per_node"]), r.get("type"), r.get("redop"), r.get("placement"),
            int(r.get("size", 0)))


def _identity_storage(r):
    return ("storage", r["series"], r.get("workload"), r.get("phase"), r["ranks"], r["nodes"],
            int(r.get("rep", 0) or 0))


class PseudoRef:
    """A row of the old results file playing the reference."""

    def __init__(self, ident, value, unit, metric, lower, upper, quantity, source):
        self.id = quantity
        self.quantity = quantity
        self.kind = ident[0]
        self.metric = metric
        self.value = value
        self.unit = unit
        self.lower = lower
        self.upper = upper
        self.source = source
        self.note = ""

    bounds = Reference.bounds
    tolerance_text = Reference.tolerance_text


def compare_files(new_runs, old_runs, lower, upper, min_size, placement):
    def index(runs):
        out = {}
        for r in collective_rows(runs):
            if int(r.get("size", 0)) < min_size or (placement and r.get("placement") != placement):
                continue
            v = metric_of(r, "busbw")
            if v is not None:
                out.setdefault(_identity_collective(r), []).append((r, v, "busbw", "GB/s"))
        for r in storage_rows(runs):
            for metric, unit in (("bw", "GB/s"), ("ops_rate", "ops/s")):
                v = metric_of(r, metric)
                if v is not None and v > 0:
                    out.setdefault(_identity_storage(r), []).append((r, v, metric, unit))
                    break
        return {k: sorted(v, key=lambda x: str(x[0].get("_date", x[0].get("date", ""))))[-1]
                for k, v in out.items()}

    new, old = index(new_runs), index(old_runs)
    rows, uncovered = [], []
    for ident, (orow, oval, metric, unit) in sorted(old.items(), key=lambda x: str(x[0])):
        if ident[0] == "collective":
            q = (f"{ident[3]} r{ident[4]} n{ident[5]} {_fmt_value('size', ident[10])} "
                 f"{ident[7]} {ident[8]} {metric}")
        else:
            q = f"{ident[1]} {ident[3]} r{ident[4]} n{ident[5]} {metric}"
        ref = PseudoRef(ident, oval, unit, metric, lower, upper, q, _where(orow))
        ref.id = f"run {orow['run'].id}"
        if ident in new:
            nrow, nval, _, _ = new[ident]
            row = Row(ref, _judge(ref, nval), nval, "", _where(nrow))
            row.pair = (orow, nrow)   # verdict.diagnose tells hardware from software with them
            rows.append(row)
            continue
        # Same quantity measured under other conditions?
        related = [k for k in new if k[0] == ident[0] and k[1:4] == ident[1:4]]
        if related:
            names = (["ranks", "nodes", "ranks_per_node", "type", "redop", "placement", "size"]
                     if ident[0] == "collective" else ["ranks", "nodes", "rep"])

            def diffs(k):
                return [f"{n} {_fmt_value(n, k[4 + i])} vs {_fmt_value(n, ident[4 + i])}"
                        for i, n in enumerate(names) if 4 + i < len(ident)
                        and k[4 + i] != ident[4 + i]]
            def distance(k):
                return sum(_distance(ident[4 + i], k[4 + i]) for i in range(len(names))
                           if 4 + i < len(ident) and k[4 + i] != ident[4 + i])
            best = min(related, key=lambda k: (len(diffs(k)), distance(k)))
            rows.append(Row(ref, NC, None, "; ".join(diffs(best)) or "different conditions"))
        else:
            uncovered.append(ref)
    return rows, uncovered


# ---- output -----------------------------------------------------------------------------------

def _fmtas_number(v):
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"


def table_lines(rows, markdown=False):
    shows = any(getattr(r, "shows", "") for r in rows)
    head = ["ref", "quantity", "reference", "measured", "ratio",
            "tolerance (value, lower, upper, unit)", "status"] + (["shows"] if shows else []) + \
        ["detail"]
    body = []
    for r in rows:
        measured = _fmtas_number(r.measured)
        model = r.measured is not None and getattr(r.ref, "kind", "") in MODEL_KINDS
        if r.status == NC and r.measured is not None:
            measured = f"({measured}, model)" if model else f"({measured})"
        elif model:
            measured += " (model)"
        body.append([r.ref.id, r.ref.quantity, f"{_fmtas_number(r.ref.value)} {r.ref.unit}".strip(),
                     measured, "-" if r.ratio is None else f"{r.ratio:.2f}",
                     r.ref.tolerance_text(), r.status] + ([r.shows or "-"] if shows else []) +
                    [r.detail])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for b in body:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
        return lines
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    widths[-1] = 0
    fmt = lambda cells: "  ".join(c.ljust(w) if w else c for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [fmt(head), fmt(["-" * w if w else "-" * 6 for w in widths])] + [fmt(b) for b in body]


def summary_line(rows, uncovered):
    n = {s: sum(1 for r in rows if r.status == s) for s in (PASS, FAIL, NC)}
    return (f"{n[PASS]} PASS, {n[FAIL]} FAIL, {n[NC]} not comparable; "
            f"{len(uncovered)} reference(s) not covered by these results")


def uncovered_text(uncovered):
    groups = {}
    for ref in uncovered:
        prefix = re.match(r"[A-Za-z]+\d*", ref.id)
        groups.setdefault(prefix.group(0) if prefix else ref.id, []).append(ref)
    parts = []
    for g, refs in groups.items():
        q = re.sub(r",? \d+ GPUs$", "", refs[0].quantity)
        parts.append(f"{g} {q}" + (f" (x{len(refs)})" if len(refs) > 1 else ""))
    return "; ".join(parts)


def compare_and_print(result_paths, reference, lower=-0.2, upper=None, min_size=1 << 20,
                      placement="out-of-place", markdown=False, show_all=False):
    """Print the comparison; exit status 1 when a verdict or a row FAILs for a reason other than
    hardware (see configs/reference/README.md), else 0."""
    runs = resmod.load_runs(result_paths)
    if reference.endswith((".h5", ".hdf5")):
        return _compare_files_and_print(runs, result_paths, reference, lower, upper, min_size,
                                        placement, markdown)
    from ffbench.analysis import verdict
    data, refs = load_reference(reference)
    print(f"ffbench compare: {', '.join(result_paths)} against {data.get('name', reference)} "
          f"({sum(r.is_twin for r in refs)} normalised of {len(refs)} references)")
    failed = False
    show_all = show_all or not any(r.is_twin for r in refs)  # nothing else to show
    for machine, vrows in verdict.machine_verdicts(runs, refs) or [(None, [])]:
        mruns = machine.runs if machine else runs
        rows, uncovered = compare_reference(mruns, refs)
        if machine:
            print(f"\n== {machine.name}")
        if vrows:
            for line in verdict.verdict_lines(vrows, markdown):
                print(line)
            print(f"verdict: {verdict.summary(vrows)}")
        _annotate_raw(rows, vrows)
        if show_all and vrows:
            print("\nevery twin, with its tolerance and numbers:")
            for line in verdict.detail_lines(vrows, markdown):
                print(line)
        if show_all:
            print("\nrow by row, raw references (identical hardware only):")
            for line in table_lines(rows, markdown) if rows else ["(none covered)"]:
                print(line)
            if uncovered:
                print(f"not covered (nothing in the results measures them): "
                      f"{uncovered_text(uncovered)}")
        n = {s: sum(1 for r in rows if r.status == s) for s in (PASS, FAIL, NC)}
        print(f"raw references: {n[PASS]} PASS, {n[FAIL]} FAIL, {n[NC]} not comparable, "
              f"{len(uncovered)} not covered" + ("" if show_all else " (--all lists them)"))
        failed |= any(r.status == FAIL for r in rows) or any(v.status == FAIL for v in vrows)
    return 1 if failed else 0


def _annotate_raw(rows, vrows):
    """A raw row that is not comparable, or FAILs, says what its decided twin shows."""
    by_id = {v.ref_id: v for v in vrows}
    for r in rows:
        # only where the hardware differs: a FAIL under the paper's own conditions is a FAIL
        if r.status != NC or not getattr(r.ref, "twins", None):
            continue
        decided = [by_id[t] for t in r.ref.twins if t in by_id and by_id[t].status != "not measured"]
        if not decided:
            continue
        if all(v.status == PASS for v in decided):
            r.shows = f"hardware ({', '.join(v.ref_id for v in decided)} PASS)"
        else:
            bad = [v.ref_id for v in decided if v.status == FAIL]
            r.shows = f"efficiency shortfall ({', '.join(bad)} FAIL)"


def _compare_files_and_print(runs, result_paths, reference, lower, upper, min_size, placement,
                             markdown):
    from ffbench.analysis import verdict
    old = resmod.load_runs([reference])
    rows, uncovered = compare_files(runs, old, lower, upper, min_size, placement)
    verdict.diagnose(rows, runs, old, lower, upper)
    print(f"ffbench compare: {', '.join(result_paths)} against results file {reference}")
    for line in table_lines(rows, markdown) if rows else ["(no row of the reference results is "
                                                          "measured in these results)"]:
        print(line)
    print(summary_line(rows, uncovered))
    print(verdict.diagnosis_summary(rows))
    _, refs = load_reference(paths.shipped("reference", "fire-flyer-2.yaml"))
    vrows = verdict.verdicts_against(runs, old, refs, lower, upper)
    if vrows:
        print("normalised twins, the reference run's machine playing the paper:")
        for line in verdict.verdict_lines(vrows, markdown):
            print(line)
        print(f"verdict: {verdict.summary(vrows)}")
    bad = any(r.status == FAIL and not r.shows.startswith(verdict.HARDWARE) for r in rows)
    return 1 if bad or any(v.status == FAIL for v in vrows) else 0


