"""Reading results files (results/SCHEMA.md) into flat rows for compare, report and export.

Writing is h5io.append_run (Python-made runs) and merge.merge_files (copying run groups); this
module only reads: the attrs-only index that `run` uses to skip complete points, and flat rows
of the collective / storage / probe tables with the run attrs they need.
"""
import json
import os
import re
import sys

import numpy as np

from ffbench.data import h5io
from ffbench.errors import UsageError
from ffbench.data.config import key_of_label, name_of_label

FORMAT = h5io.FORMAT


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


_REPORTED_LEFTOVERS = set()


def _report_leftovers(path):
    """One stderr line (once per file) about what killed writers left beside `path`."""
    key = os.path.abspath(path)
    if key in _REPORTED_LEFTOVERS:
        return
    _REPORTED_LEFTOVERS.add(key)
    try:
        line = h5io.leftovers_line(path, h5io.leftovers(path), removed=False)
    except (h5io.ResultsFileError, OSError):
        return
    if line:
        sys.stderr.write(f"ffbench: {line}\n")


def check_file(path, data=True):
    """One-line UsageError when `path` is not a readable ffbench results file (a single file or
    an index with its segments: every run must open, and with data every table must read back
    with its checksums); reports leftovers of killed writers on stderr."""
    try:
        h5io.check_results(path, data=data)
    except h5io.ResultsFileError as exc:
        raise UsageError(str(exc)) from None
    _report_leftovers(path)


def run_index(path):
    """[{id, label, key, status, program, kind, date, command_line}] without reading the tables."""
    if not os.path.exists(path):
        return []
    check_file(path, data=False)
    out = []
    try:
        with h5io.open_runs(path, check="structure") as runs:
            for rid, group, src in runs:
                try:
                    out.append(_index_row(rid, group.attrs))
                except Exception as exc:  # noqa: BLE001 - damaged attributes
                    raise UsageError(f"{src}: damaged results file (run {rid}: "
                                     f"{h5io.one_line(exc)})") from None
    except h5io.ResultsFileError as exc:
        raise UsageError(str(exc)) from None
    return out


def _index_row(rid, a):
    label = _decode(a.get("label", ""))
    return {"id": rid, "label": label, "key": key_of_label(label),
            "status": _decode(a.get("status", "")),
            "program": _decode(a.get("program", "")),
            "kind": _decode(a.get("kind", "")),
            "date": _decode(a.get("date", "")),
            "command_line": _decode(a.get("command_line", ""))}


def complete_keys(path):
    return {r["key"] for r in run_index(path) if r["key"] and r["status"] == "complete"}


def load_runs(paths):
    """Read every run of every file (h5io.read_runs); each Run gets .source = its file."""
    runs = []
    for path in paths:
        check_file(path)
        try:
            file_runs = h5io.read_runs(path)
        except h5io.ResultsFileError as exc:
            raise UsageError(str(exc)) from None
        for r in file_runs:
            r.source = path
            runs.append(r)
    return runs


def _json_attr(run, name):
    value = run.attrs.get(name)
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def environment(run):
    return _json_attr(run, "environment")


def options(run):
    return _json_attr(run, "options")


def devices(run):
    ranks = run.tables.get("ranks", {})
    dev = ranks.get("device")
    return [str(d) for d in dev] if dev is not None else []


def uses_gpu(run):
    return any(d and d != "-" and d.upper().startswith("GPU") for d in devices(run))


# Environment variables that change what a collective measures (pinned algorithms, NCCL tuning).
TUNING_PREFIXES = ("OMPI_MCA_coll", "NCCL_", "HFREDUCE_", "OMPI_MCA_btl")


def tuning_env(run):
    return {k: v for k, v in sorted(environment(run).items()) if k.startswith(TUNING_PREFIXES)}


def series_name(run):
    """Human name of what a run measured: the sweep point name without its shape, else backend."""
    if run.attrs.get("imported"):  # ffbench import: the other tool's own name, never merged with ours
        return str(run.attrs.get("program") or run.attrs.get("tool") or "imported")
    label = run.attrs.get("label", "")
    name = name_of_label(label) if key_of_label(label) else ""
    if name:
        parts = [p for p in name.split(".") if not _is_shape_tag(p)]
        return ".".join(parts)
    backend = run.attrs.get("backend") or run.attrs.get("program", "?")
    env = tuning_env(run)
    alg = env.get("OMPI_MCA_coll_tuned_allreduce_algorithm")
    if alg:
        backend += f".alg{alg}"
    if env.get("NCCL_ALGO"):
        backend += f".{env['NCCL_ALGO']}"
    return backend


def _is_shape_tag(part):
    return bool(re.fullmatch(r"r\d+|n\d+x\d+|\d+[KMG]?(-\d+[KMG]?)?", part))


def int_attr(run, name, default=0):
    try:
        return int(run.attrs.get(name, default))
    except (TypeError, ValueError):
        return default


def _table_rows(base, table, n, position=False):
    """One dict per row of `table` (its 1-D columns as Python scalars) on top of `base`."""
    rows = []
    for i in range(n):
        row = dict(base)
        if position:
            row["_pos"] = i  # storage_ops.phase_index refers to this row position
        for col, values in table.items():
            if getattr(values, "ndim", 1) == 1:
                v = values[i]
                row[col] = v.item() if isinstance(v, np.generic) else v
        rows.append(row)
    return rows


def _run_fields(run):
    """The run attrs every row of a table carries."""
    return {"run": run, "source": getattr(run, "source", ""), "run_id": run.id,
            "series": series_name(run), "label": run.attrs.get("label", ""),
            "status": run.attrs.get("status", ""), "ranks": int_attr(run, "nranks", 1),
            "nodes": int_attr(run, "nnodes", 1)}


def collective_rows(runs):
    """One dict per row of every `collective` table, with the run attrs compare/report need."""
    rows = []
    for run in runs:
        if run.attrs.get("kind") != "collective" or "collective" not in run.tables:
            continue
        t = run.tables["collective"]
        n = len(t.get("size", []))
        gpu = uses_gpu(run)
        nranks = int_attr(run, "nranks", 1)
        base = dict(_run_fields(run), **{
            "program": run.attrs.get("program", ""), "backend": run.attrs.get("backend", ""),
            "collective": run.attrs.get("collective", "allreduce"),
            "date": run.attrs.get("date", ""),
            "ranks_per_node": str(run.attrs.get("ranks_per_node", "")),
            "device": "gpu" if gpu else "host", "gpus": nranks if gpu else 0,
            "nvlink": bool(int_attr(run, "nvlink", 0)), "zones": int_attr(run, "zones", 1),
            "env": tuning_env(run),
        })
        rows += _table_rows(base, t, n)
    return rows


def storage_rows(runs):
    """One dict per row of every `storage_phases` table."""
    rows = []
    for run in runs:
        if run.attrs.get("kind") != "storage" or "storage_phases" not in run.tables:
            continue
        t = run.tables["storage_phases"]
        n = len(next(iter(t.values()))) if t else 0
        base = dict(_run_fields(run), fs_type=run.attrs.get("fs_type", ""),
                    engine=run.attrs.get("engine", ""), options=options(run))
        rows += _table_rows(base, t, n, position=True)
    return rows


MEMBW_COLUMN_PREFERENCE = ("bandwidth", "triad", "add", "copy", "read", "bw")


def host_memory_bandwidth(runs):
    """(GB/s, where it came from) of the host memory bandwidth these runs measured, or None.

    Only membw_bench measures it (one implementation and one size rule, shared with storage_bench's
    suspect-read probe and hfreduce_bench's ceiling): its STREAM-like `add` kernel (two reads and
    one write per element, the shape of a reduction), best over threads. Callers pass one
    machine's runs (machines.group): a ceiling never comes from another machine, and never from
    another probe's GB/s column (pcie_bench's are PCIe figures).
    """
    best = None
    for run in runs:
        if run.attrs.get("program") != "membw_bench" or run.attrs.get("status") != "complete":
            continue
        for tname, table in run.tables.items():
            units = run.units.get(tname, {})
            candidates = [c for c, u in units.items() if u == "GB/s" and c in table
                          and getattr(table[c], "ndim", 1) == 1 and len(table[c])]
            if not candidates:
                continue
            mask, what = None, ""
            if "kernel" in table:
                kernels = [k.decode() if isinstance(k, bytes) else str(k) for k in table["kernel"]]
                if "add" in kernels:
                    mask = np.array([k == "add" for k in kernels])
                    what = "kernel add, "
            for pref in MEMBW_COLUMN_PREFERENCE:
                picked = [c for c in candidates if pref == c.lower()] or \
                    [c for c in candidates if pref in c.lower() and "mean" not in c.lower()]
                if picked:
                    candidates = picked[:1]
                    break
            for c in candidates:
                values = np.asarray(table[c], dtype=float)
                if mask is not None:
                    values = values[mask]
                if not len(values):
                    continue
                v = float(np.nanmax(values))
                if np.isfinite(v) and (best is None or v > best[0]):
                    best = (v, f"{run.attrs.get('program')} (run {run.id}, table {tname}, "
                               f"{what}column {c}, best over threads)")
    return best
