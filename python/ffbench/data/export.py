"""`ffbench export RESULTS... --csv|--json [--table NAME] [--out FILE]`: results for other tools.

CSV: one line per row of one table (default: collective when present), prefixed with the run's
provenance columns (file, run, program, kind, label, backend, nranks, nnodes, ranks_per_node,
date, status). 2-D columns (per-iteration times) are left out of CSV; use JSON for them.
JSON: every run with its attrs and every table as {column: {units, values}}, 2-D columns included.
"""
import csv
import io
import json
import math

import numpy as np

from ffbench.errors import UsageError

RUN_COLUMNS = ("file", "run", "program", "kind", "label", "backend", "nranks", "nnodes",
               "ranks_per_node", "date", "status")


def _plain(v):
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf
    return v


def to_json(runs):
    out = []
    for r in runs:
        attrs = {}
        for k, v in r.attrs.items():
            if k in ("environment", "options", "mpi_coll_settings") and isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            attrs[k] = _plain(v)
        tables = {t: {c: {"units": r.units.get(t, {}).get(c, ""), "values": _plain(vals)}
                      for c, vals in cols.items()} for t, cols in r.tables.items()}
        out.append({"file": getattr(r, "source", ""), "run": r.id, "attrs": attrs,
                    "tables": tables})
    return {"format": "ffbench-export", "schema_version": 1, "runs": out}


def pick_table(runs, table):
    names = {t for r in runs for t in r.tables}
    if table:
        if table not in names:
            raise UsageError(f"--table {table}: no run has it; tables in these files: "
                             f"{', '.join(sorted(names)) or 'none'}")
        return table
    for pref in ("collective", "storage_phases"):
        if pref in names:
            return pref
    others = sorted(n for n in names if n != "ranks")
    if others:
        return others[0]
    if names:
        return "ranks"
    raise UsageError("no tables in these results files")


def to_csv(runs, table):
    columns, units = [], {}
    for r in runs:
        t = r.tables.get(table)
        if not t:
            continue
        for c, vals in t.items():
            if getattr(vals, "ndim", 1) == 1 and c not in columns:
                columns.append(c)
                units[c] = r.units.get(table, {}).get(c, "")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(RUN_COLUMNS) + [f"{c} ({units[c]})" if units[c] and units[c] != "1" else c
                                    for c in columns])
    for r in runs:
        t = r.tables.get(table)
        if not t:
            continue
        n = len(next(iter(t.values())))
        a = r.attrs
        prov = [getattr(r, "source", ""), r.id] + [a.get(k, "") for k in RUN_COLUMNS[2:]]
        for i in range(n):
            row = []
            for c in columns:
                vals = t.get(c)
                row.append("" if vals is None or getattr(vals, "ndim", 1) != 1
                           else _csv_cell(vals[i]))
            w.writerow([_csv_cell(x) for x in prov] + row)
    return buf.getvalue()


def _csv_cell(v):
    v = _plain(v)
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


