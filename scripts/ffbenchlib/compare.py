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

REFERENCE_KINDS = ("collective", "collective_ratio", "storage", "ceiling", "gemm", "pcie", "ddp",
                   "model", "graysort", "fleet", "normalised")
REF_KEYS = ("id", "quantity", "kind", "metric", "value", "unit", "lower", "upper", "match",
            "conditions", "denominator", "source", "note", "table", "also",
            # twins (kind: normalised)
            "capability", "paper", "tolerance", "denominator_source", "twin_of", "needs", "proxy")
# What each raw kind can compare, with the unit of the results column (results/SCHEMA.md).
# Storage also offers bw_<op>, bw_<op>_per_node (GB/s) and ops_rate_<op> (ops/s).
RAW_METRICS = {
    "collective": {"busbw": "GB/s", "algbw": "GB/s", "time": "us", "time_p50": "us",
                   "time_p99": "us"},
    "collective_ratio": {"busbw": "x", "algbw": "x", "time": "x"},
    "storage": {"bw": "GB/s", "bw_per_node": "GB/s", "bw_data": "GB/s", "bw_first_done": "GB/s",
                "bw_last_done": "GB/s", "ops_rate": "ops/s", "lat_p50": "us", "lat_p99": "us",
                "lat_p999": "us", "lat_mean": "us"},
    "ceiling": {"host_membw": "GB/s", "hfreduce_memory_ceiling": "GB/s",
                "hfreduce_memory_ceiling_nvlink": "GB/s", "hfreduce_memory_ceiling_memcpy": "GB/s"},
    "gemm": {"tflops": "TFLOPS", "time": "us"},
    "pcie": {"bandwidth": "GB/s", "bandwidth_min_transfer": "GB/s",
             "bandwidth_max_transfer": "GB/s"},
    "ddp": {"step_time": "s", "step_time_p50": "s", "step_time_p99": "s", "samples_per_s":
            "samples/s", "overlap": "1", "exposed_comm": "s", "weak_scaling_efficiency": "1"},
    "model": {"switches": "count", "node_power": "W", "total_price": "rel", "network_price": "rel",
              "server_price": "rel", "node_price_ratio": "1", "relative_performance": "1",
              "cost_performance": "1", "total_price_ratio": "1", "busbw": "GB/s",
              "algbw": "GB/s"},
    "graysort": {"throughput": "TiB/min"},
    "fleet": {"share": "%", "count": "1/year", "interval": "s"},
}
_STORAGE_OP_METRIC = re.compile(r"(bw_[a-z]+(_per_node)?|ops_rate_[a-z]+)$")
_DIMENSIONLESS = {"1", "x"}
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
        self.capability = d.get("capability") or self.quantity
        self.paper = d.get("paper") or {}
        self.tolerance = d.get("tolerance", "")
        self.denominator_source = d.get("denominator_source")
        self.twin_of = list(d.get("twin_of") or [])
        self.needs = list(d.get("needs") or [self.match])
        self.proxy = d.get("proxy", "")
        self.twins = []   # ids of the twins that carry this raw reference across hardware

    @property
    def is_twin(self):
        return self.kind == "normalised"

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
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{path}: not valid YAML" + (f" at line {mark.line + 1}" if mark else "")
                         ) from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; save the reference file as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict) or not isinstance(data.get("references"), list):
        raise UsageError(f"{path}: key 'references': expected a list of references (see "
                         f"configs/reference/README.md)")
    refs, seen = [], set()
    for i, d in enumerate(data["references"]):
        where = f"{path}: key 'references[{i}]"
        _check_entry(d, where)
        if d["id"] in seen:
            raise UsageError(f"{where}.id': duplicate id {d['id']!r}")
        seen.add(d["id"])
        refs.append(Reference(d))
    _link_twins(path, refs)
    return data, refs


def _check_entry(d, where):
    """One line naming the key for anything a reference entry gets wrong."""
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
        if isinstance(d.get(k), dict):
            d[k] = {c: _condition_value(v, f"{where}.{k}.{c}'") for c, v in d[k].items()}
    if d["kind"] == "normalised":
        _check_twin(d, where)
    else:
        _check_raw_metric(d, where)


SIZE_KEYS = ("size", "transfer", "block", "bytes", "chunk", "block_size", "ckpt_size")


def _condition_value(v, where):
    """Sizes with K/M/G suffixes anywhere a number is expected ({min: 1K}, size: 4M); non-numbers
    refused."""
    from .config import ConfigError, parse_size
    if isinstance(v, list):
        return [_condition_value(x, where) for x in v]
    if not isinstance(v, dict):
        key = where.rstrip("'").rsplit(".", 1)[-1]
        if isinstance(v, str) and key in SIZE_KEYS:
            try:
                return parse_size(v, "")
            except ConfigError:
                raise UsageError(f"{where[:-1]}': expected a size such as 4096, 4K or 184M, got "
                                 f"{v!r}") from None
        return v
    out = dict(v)
    for k in ("min", "max"):
        if k not in v:
            continue
        x = v[k]
        if isinstance(x, bool) or not isinstance(x, (int, float, str)):
            raise UsageError(f"{where[:-1]}.{k}': expected a number or a size such as 1K or 64M, "
                             f"got {x!r}")
        if isinstance(x, str):
            try:
                out[k] = parse_size(x, "")
            except ConfigError:
                raise UsageError(f"{where[:-1]}.{k}': expected a number or a size such as 1K or "
                                 f"64M, got {x!r}") from None
    unknown = [k for k in v if k not in ("min", "max", "contains")]
    if unknown:
        raise UsageError(f"{where[:-1]}.{unknown[0]}': expected min, max or contains")
    return out


def _check_raw_metric(d, where):
    known = RAW_METRICS.get(d["kind"], {})
    metric, unit = d["metric"], str(d["unit"])
    if d["kind"] == "storage" and _STORAGE_OP_METRIC.match(str(metric)):
        want = "ops/s" if str(metric).startswith("ops_rate") else "GB/s"
    elif metric in known:
        want = known[metric]
    else:
        raise UsageError(f"{where}.metric': {metric!r} is not a {d['kind']} metric; expected one "
                         f"of {', '.join(known) or '(none)'}")
    if unit != want and not (unit in _DIMENSIONLESS and want in _DIMENSIONLESS):
        raise UsageError(f"{where}.unit': {unit!r} does not match the results column "
                         f"{metric!r} ({want!r}); write unit: {want}")


def _check_twin(d, where):
    from . import twins
    metric = d["metric"]
    if metric not in twins.METRICS:
        raise UsageError(f"{where}.metric': {metric!r} is not a normalised metric; expected one of "
                         f"{', '.join(twins.METRICS)}")
    unit, source, _ = twins.METRICS[metric]
    if str(d["unit"]) != unit:
        raise UsageError(f"{where}.unit': {d['unit']!r} does not match {metric} ({unit!r}); write "
                         f"unit: {unit!r}")
    if not d.get("denominator_source"):
        raise UsageError(f"{where}.denominator_source': missing; a twin names where our "
                         f"denominator comes from ({source} for {metric})")
    if d["denominator_source"] != source:
        raise UsageError(f"{where}.denominator_source': {d['denominator_source']!r} is not how "
                         f"{metric} is normalised; write denominator_source: {source}")
    paper = d.get("paper")
    if not isinstance(paper, dict) or _num(paper.get("value")) is None \
            or _num(paper.get("limit")) is None or not paper.get("limit"):
        raise UsageError(f"{where}.paper': expected {{value: N, limit: N, text: ...}}: the paper's "
                         f"value and the limit of its own hardware it is divided by")
    expect = paper["value"] / paper["limit"]
    if abs(d["value"] - expect) > 0.01 * abs(expect) + 1e-9:
        raise UsageError(f"{where}.value': {d['value']!r} is not paper.value / paper.limit = "
                         f"{expect:.4g}")
    for k in ("twin_of", "needs"):
        if k in d and not isinstance(d[k], list):
            raise UsageError(f"{where}.{k}': expected a list")
    for i, n in enumerate(d.get("needs") or []):
        if not isinstance(n, dict):
            raise UsageError(f"{where}.needs[{i}]': expected a mapping such as "
                             f"{{program: membw_bench}}")


def _link_twins(path, refs):
    by_id = {r.id: r for r in refs}
    for r in refs:
        for raw in r.twin_of:
            if raw not in by_id:
                raise UsageError(f"{path}: key '{r.id}.twin_of': no reference with id {raw!r}")
            by_id[raw].twins.append(r.id)


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
    from .twins import gpu_model_of
    rows = [r for r in generic_rows(runs, "probe", "gemm") if r["run"].attrs.get("program")
            == "gemm_bench"]
    for r in rows:
        r["gpu_model"] = gpu_model_of(r.get("device", ""))
    return rows


def pcie_rows(runs):
    """pcie_bench rows joined with their GPUs' links: direction, memory, scenario (alone, root
    port, all), gpus_on_port, pcie_gen, lanes, bandwidth (GB/s), gpu_model, cpu."""
    from .twins import pcie_link_efficiency
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

def _fmt_num(v):
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
        measured = _fmt_num(r.measured)
        model = r.measured is not None and getattr(r.ref, "kind", "") in MODEL_KINDS
        if r.status == NC and r.measured is not None:
            measured = f"({measured}, model)" if model else f"({measured})"
        elif model:
            measured += " (model)"
        body.append([r.ref.id, r.ref.quantity, f"{_fmt_num(r.ref.value)} {r.ref.unit}".strip(),
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
    from . import verdict
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
    from . import verdict
    old = resmod.load_runs([reference])
    rows, uncovered = compare_files(runs, old, lower, upper, min_size, placement)
    verdict.diagnose(rows, runs, old, lower, upper)
    print(f"ffbench compare: {', '.join(result_paths)} against results file {reference}")
    for line in table_lines(rows, markdown) if rows else ["(no row of the reference results is "
                                                          "measured in these results)"]:
        print(line)
    print(summary_line(rows, uncovered))
    print(verdict.diagnosis_summary(rows))
    _, refs = load_reference(os.path.join(resmod.repo_root(), "configs", "reference",
                                          "fire-flyer-2.yaml"))
    vrows = verdict.verdicts_against(runs, old, refs, lower, upper)
    if vrows:
        print("normalised twins, the reference run's machine playing the paper:")
        for line in verdict.verdict_lines(vrows, markdown):
            print(line)
        print(f"verdict: {verdict.summary(vrows)}")
    bad = any(r.status == FAIL and not r.shows.startswith(verdict.HARDWARE) for r in rows)
    return 1 if bad or any(v.status == FAIL for v in vrows) else 0


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
                             None if args.placement == "both" else args.placement, args.markdown,
                             args.all)


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
    p.add_argument("--all", action="store_true",
                   help="also list every raw reference row by row (reference-file mode)")
    p.set_defaults(func=cmd_compare)
