"""`ffbench merge OUT.h5 IN.h5...`: copy the runs of several results files into one, atomically;
`ffbench merge --compact FILE.h5`: fold an index file's segments back into one single file.

Run groups are copied whole (HDF5 object copy: attrs, tables, units, dtypes and checksums as the
programs wrote them). OUT is changed the way h5io.append_run changes it (h5io.appending: under an
exclusive flock on OUT's directory the new runs go to one temporary, fsync'd and renamed into
place; see results/SCHEMA.md), so a kill leaves the old OUT or the new one, and the cost is the
size of what is added, not of OUT. Runs already in OUT (same label, date, command line, hosts and
process ids) are skipped, so merging twice adds nothing.

Run ids: a run keeps its id when that id is free in OUT and after every id OUT has (merging into
a new or an older file keeps them all); otherwise it gets the next free id. Every reference to
a run id inside the copied runs (attrs and string columns whose name ends in `run_ids` or
`run_id`, comma-separated, e.g. crosscheck.storage_bench_run_ids) is rewritten to the ids in
OUT; a reference to a run that was not copied (filtered out) is dropped.
"""
import os

import numpy as np

from ffbench.data import h5io
from ffbench.errors import UsageError

REFERENCE_SUFFIXES = ("run_ids", "run_id")


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return tuple(_decode(x) for x in v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def run_identity(group):
    """What makes two run groups the same run: provenance attrs plus the ranks' process ids."""
    a = group.attrs
    ident = tuple(_decode(a.get(k, "")) for k in ("program", "label", "date", "command_line", "hosts"))
    pids = group.get("ranks/pid")
    return ident + ((tuple(int(x) for x in pids[()]),) if pids is not None else ())


def _map_ids(text, mapping):
    ids = [s.strip() for s in str(text).split(",") if s.strip()]
    return ",".join(mapping[i] for i in ids if i in mapping)


def _is_reference(name):
    return name.endswith(REFERENCE_SUFFIXES)


def rewrite_references(group, mapping):
    """Rewrite run-id references in run group `group` (attrs and string datasets named *run_ids
    or *run_id, at any depth) through mapping {old id: new id}."""
    objects = [group]
    group.visit(lambda name: objects.append(group[name]))
    for obj in objects:
        for key in [k for k in obj.attrs.keys() if _is_reference(k)]:
            value = _decode(obj.attrs[key])
            if isinstance(value, str):
                new = _map_ids(value, mapping)
                if new != value:
                    obj.attrs[key] = new
        if not (hasattr(obj, "dtype") and _is_reference(obj.name.rsplit("/", 1)[-1])):
            continue
        if obj.dtype.kind != "O" or obj.size == 0:
            continue
        old = [_decode(v) for v in obj[()].reshape(-1)]
        new = [_map_ids(v, mapping) for v in old]
        if new != old:
            obj[...] = np.array(new, dtype=object).reshape(obj.shape)


def _identities(app):
    """{identity: run id} of the runs OUT already has."""
    if app.layout == "missing":
        return {}
    seen = {}
    with h5io.open_runs(app.path, check="structure") as runs:
        for rid, group, src in runs:
            try:
                seen.setdefault(run_identity(group), rid)
            except Exception as exc:  # noqa: BLE001 - damaged data inside a run
                raise UsageError(f"{src}: damaged results file (run {rid}: {h5io.one_line(exc)})")
    return seen


def _merge_one(app, path, seen, select, dedup):
    """Copy the runs of one input into app; returns (added, skipped)."""
    added = skipped = 0
    mapping, copied = {}, []
    with h5io.open_runs(path) as runs:
        for rid, group, src in runs:
            try:
                if select is not None and not select(group):
                    continue
                ident = run_identity(group)
            except Exception as exc:  # noqa: BLE001 - damaged data inside a run
                raise UsageError(f"{src}: damaged results file (run {rid}: "
                                 f"{h5io.one_line(exc)})") from None
            if dedup and ident in seen:
                mapping[rid] = seen[ident]
                skipped += 1
                continue
            try:
                new_id = app.copy_run(group, prefer=rid)
            except Exception as exc:  # noqa: BLE001 - HDF5 stops on damaged objects
                raise UsageError(f"{src}: cannot copy run {rid} ({h5io.one_line(exc)})") from None
            mapping[rid] = new_id
            seen[ident] = new_id
            copied.append(new_id)
            added += 1
    for new_id in copied:
        rewrite_references(app.group(new_id), mapping)
    return added, skipped


def merge_files(out, inputs, select=None, dedup=True):
    """Copy the runs of `inputs` into `out` (created when missing) in one atomic step.

    select(run_group) -> bool may filter runs; dedup=False copies runs already in `out` again
    (for fresh per-point files). Returns (added, skipped_duplicates).
    """
    out = os.path.abspath(out)
    for path in inputs:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such results file")
        if os.path.abspath(path) == out or (os.path.exists(out) and os.path.samefile(path, out)):
            raise UsageError(f"{path}: is the output file itself; name it once, as OUT")
    added = skipped = 0
    try:
        with h5io.appending(out) as app:
            seen = _identities(app) if dedup else {}
            for path in inputs:
                a, s = _merge_one(app, path, seen, select, dedup)
                added, skipped = added + a, skipped + s
    except h5io.ResultsFileError as exc:
        raise UsageError(str(exc)) from None
    return added, skipped


