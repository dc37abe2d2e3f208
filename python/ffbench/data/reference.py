"""The reference files (configs/reference/*.yaml; format in configs/reference/README.md): read with
the one YAML loader (data/yamlfile.py) and validated into Reference entries, every mistake one line
naming the key."""
import math
import os
import re

import numpy as np

from ffbench.analysis import twins
from ffbench.data.config import parse_size
from ffbench.data.yamlfile import load_yaml
from ffbench.errors import ConfigError, UsageError


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
    data = load_yaml(path, UsageError, "reference file")
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
    if not isinstance(paper, dict) or as_number(paper.get("value")) is None \
            or as_number(paper.get("limit")) is None or not paper.get("limit"):
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


def as_number(x):
    """x as a float when it is a number (bools are not), else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    return None


def _link_twins(path, refs):
    by_id = {r.id: r for r in refs}
    for r in refs:
        for raw in r.twin_of:
            if raw not in by_id:
                raise UsageError(f"{path}: key '{r.id}.twin_of': no reference with id {raw!r}")
            by_id[raw].twins.append(r.id)
