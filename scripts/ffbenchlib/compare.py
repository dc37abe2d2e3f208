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
import yaml

from . import results as resmod
from .cli import UsageError

REFERENCE_KINDS = ("collective", "collective_ratio", "storage", "ceiling", "probe", "gemm", "pcie",
                   "ddp", "model", "graysort", "fleet")
REF_KEYS = ("id", "quantity", "kind", "metric", "value", "unit", "lower", "upper", "match",
            "conditions", "denominator", "source", "note", "table", "also")
PASS, FAIL, NC = "PASS", "FAIL", "not comparable"
MODEL_KINDS = ("model", "ceiling")  # their "measured" column is model output, and says so


class Reference:
    def __init__(self, d):
        self.id = d["id"]
        self.quantity = d.get("quantity", "")
        self.kind = d["kind"]
        self.metric = d["metric"]
        self.value = float(d["value"])
        self.unit = d.get("unit", "")
        self.lower = d.get("lower")
        self.upper = d.get("upper")
        self.match = d.get("match") or {}
        self.conditions = d.get("conditions") or {}
        self.denominator = d.get("denominator") or {}
        self.source = d.get("source", "")
        self.note = d.get("note", "")
        self.table = d.get("table")
        also = d.get("also") or []
        self.also = [also] if isinstance(also, str) else list(also)

    def bounds(self):
        lo = self.value * (1 + self.lower) if self.lower is not None else -math.inf
        hi = self.value * (1 + self.upper) if self.upper is not None else math.inf
        return lo, hi

    def tolerance_text(self):
        def f(x):
            return "None" if x is None else f"{x:g}"
        return f"({self.value:g}, {f(self.lower)}, {f(self.upper)}, '{self.unit}')"


def load_reference(path):
    if not os.path.exists(path):
        raise UsageError(f"--reference {path}: no such file (references live in configs/reference/)")
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{path}: not valid YAML" + (f" at line {mark.line + 1}" if mark else "")
                         ) from None
    if not isinstance(data, dict) or not isinstance(data.get("references"), list):
        raise UsageError(f"{path}: key 'references': expected a list of references (see "
                         f"configs/reference/README.md)")
    refs, seen = [], set()
    for i, d in enumerate(data["references"]):
        where = f"{path}: key 'references[{i}]"
        if not isinstance(d, dict):
            raise UsageError(f"{where}': expected a mapping with id, kind, metric, value, unit")
        for k in d:
            if k not in REF_KEYS:
                raise UsageError(f"{where}.{k}': unknown key; expected one of {', '.join(REF_KEYS)}")
        for k in ("id", "kind", "metric", "value", "unit"):
            if k not in d:
                raise UsageError(f"{where}.{k}': missing; every reference needs id, kind, metric, "
                                 f"value and unit")
        if d["kind"] not in REFERENCE_KINDS:
            raise UsageError(f"{where}.kind': expected one of {', '.join(REFERENCE_KINDS)}, got "
                             f"{d['kind']!r}")
        if isinstance(d["value"], bool) or not isinstance(d["value"], (int, float)):
            raise UsageError(f"{where}.value': expected a number, got {d['value']!r}")
        for k in ("lower", "upper"):
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise UsageError(f"{where}.{k}': expected a fraction such as -0.2 or null, got {v!r}")
        if d.get("lower") is not None and d["lower"] > 0:
            raise UsageError(f"{where}.lower': expected a fraction <= 0 (ReFrame style), got "
                             f"{d['lower']!r}")
        if d.get("upper") is not None and d["upper"] < 0:
            raise UsageError(f"{where}.upper': expected a fraction >= 0 (ReFrame style), got "
                             f"{d['upper']!r}")
        for k in ("match", "conditions", "denominator"):
            if k in d and not isinstance(d[k], dict):
                raise UsageError(f"{where}.{k}': expected a mapping of condition: value")
        if d["id"] in seen:
            raise UsageError(f"{where}.id': duplicate id {d['id']!r}")
        seen.add(d["id"])
        refs.append(Reference(d))
    return data, refs


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


def rows_for(kind, runs, cache, table=None):
    key = (kind, table)
    if key not in cache:
        if kind in ("collective", "collective_ratio"):
            cache[key] = collective_rows(runs)
        elif kind == "storage":
            cache[key] = storage_rows(runs)
        elif kind == "ceiling":
            cache[key] = ceiling_rows(runs)
        else:
            cache[key] = generic_rows(runs, kind, table)
    return cache[key]


# ---- condition matching -------------------------------------------------------------------------

def _num(x):
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    return None


def cond_ok(expected, got):
    if got is None:
        return False
    if isinstance(expected, list):
        return any(cond_ok(e, got) for e in expected)
    if isinstance(expected, dict):
        if "contains" in expected:
            return str(expected["contains"]).lower() in str(got).lower()
        g = _num(got)
        if g is None:
            return False
        if "min" in expected and g < float(expected["min"]):
            return False
        if "max" in expected and g > float(expected["max"]):
            return False
        return True
    e, g = _num(expected), _num(got)
    if isinstance(expected, bool):
        return bool(got) == expected
    if e is not None and g is not None:
        return abs(e - g) <= 1e-9 * max(abs(e), 1.0)
    return str(expected).lower() == str(got).lower()


def _fmt_value(key, v):
    if v is None:
        return "not recorded"
    if key in ("size",) and _num(v) is not None:
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
    e0 = _num(e) if not isinstance(e, (dict, list)) else None
    g0 = _num(g)
    if e0 and g0 and e0 > 0 and g0 > 0:
        return abs(math.log(g0 / e0))
    return 10.0


def metric_of(row, metric):
    v = row.get(metric)
    v = _num(v)
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
    return Row(ref, NC, metric_of(best, ref.metric), "; ".join(reasons + _also(ref, best, False)),
               _where(best))


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
    return Row(ref, NC, None, " | ".join(reasons) or "no pair of rows with equal conditions")


def compare_reference(runs, refs):
    cache = {}
    rows, uncovered = [], []
    for ref in refs:
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
            rows.append(Row(ref, _judge(ref, nval), nval, "", _where(nrow)))
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

def _fmt_num(v):
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"


def table_lines(rows, markdown=False):
    head = ["ref", "quantity", "reference", "measured", "ratio", "tolerance (value, lower, upper, unit)",
            "status", "detail"]
    body = []
    for r in rows:
        status = r.status if r.status != NC else f"{NC}"
        measured = _fmt_num(r.measured)
        model = r.measured is not None and getattr(r.ref, "kind", "") in MODEL_KINDS
        if r.status == NC and r.measured is not None:
            measured = f"({measured}, model)" if model else f"({measured})"
        elif model:
            measured += " (model)"
        body.append([r.ref.id, r.ref.quantity, f"{_fmt_num(r.ref.value)} {r.ref.unit}".strip(),
                     measured,
                     "-" if r.ratio is None else f"{r.ratio:.2f}", r.ref.tolerance_text(), status,
                     r.detail])
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
                      placement="out-of-place", markdown=False):
    runs = resmod.load_runs(result_paths)
    if reference.endswith((".h5", ".hdf5")):
        old = resmod.load_runs([reference])
        rows, uncovered = compare_files(runs, old, lower, upper, min_size, placement)
        title = f"ffbench compare: {', '.join(result_paths)} against results file {reference}"
    else:
        data, refs = load_reference(reference)
        rows, uncovered = compare_reference(runs, refs)
        title = (f"ffbench compare: {', '.join(result_paths)} against {reference} "
                 f"({data.get('name', '')}: {len(refs)} references)")
    print(title)
    if rows:
        for line in table_lines(rows, markdown):
            print(line)
    else:
        print("(no reference is covered by these results)")
    print(summary_line(rows, uncovered))
    if uncovered and not reference.endswith((".h5", ".hdf5")):
        print(f"not covered (nothing in the results measures them): {uncovered_text(uncovered)}")
    return 1 if any(r.status == FAIL for r in rows) else 0


def _fraction(text, flag):
    if text is None or str(text).lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a fraction such as -0.2, or none") from None


def cmd_compare(args):
    from .config import parse_size
    lower = _fraction(args.lower, "--lower")
    upper = _fraction(args.upper, "--upper")
    if lower is not None and lower > 0:
        raise UsageError(f"--lower {args.lower}: expected a fraction <= 0, e.g. -0.2")
    if upper is not None and upper < 0:
        raise UsageError(f"--upper {args.upper}: expected a fraction >= 0, e.g. 0.2")
    try:
        min_size = parse_size(args.min_size, "--min-size")
    except UsageError as exc:
        raise UsageError(str(exc)) from None
    ref = args.reference
    if not os.path.exists(ref) and os.path.exists(os.path.join(resmod.repo_root(), ref)):
        ref = os.path.join(resmod.repo_root(), ref)
    return compare_and_print(args.results, ref, lower, upper, min_size,
                             None if args.placement == "both" else args.placement, args.markdown)


def register(sub):
    p = sub.add_parser("compare", help="compare results with the paper's numbers or another run",
                       description=__doc__.split("\n")[0])
    p.add_argument("results", metavar="RESULTS", nargs="+", help="results file(s)")
    p.add_argument("--reference", default="configs/reference/fire-flyer-2.yaml",
                   help="reference YAML, or an older results file (.h5) to compare against "
                        "(default configs/reference/fire-flyer-2.yaml)")
    p.add_argument("--lower", default="-0.2",
                   help="results-file mode: lower tolerance fraction (default -0.2)")
    p.add_argument("--upper", default="none",
                   help="results-file mode: upper tolerance fraction (default none)")
    p.add_argument("--min-size", default="1M",
                   help="results-file mode: smallest message size compared (default 1M)")
    p.add_argument("--placement", default="out-of-place",
                   choices=("out-of-place", "in-place", "both"),
                   help="results-file mode: which collective placement (default out-of-place)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.set_defaults(func=cmd_compare)
