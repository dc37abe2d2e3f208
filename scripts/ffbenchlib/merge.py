"""`ffbench merge OUT.h5 IN.h5...`: copy the runs of several results files into one, atomically.

Run groups are copied whole (h5py copy: attrs, tables, units and dtypes as the programs wrote
them) under new six-digit ids in OUT. OUT is changed the way h5io.append_run changes it: under an
exclusive flock on OUT's directory (h5io.atomic_update), OUT is copied to OUT.tmp.<pid>, the runs are added to the copy, the
copy is fsync'd and renamed over OUT. A kill leaves the old OUT or the new one. Runs already in
OUT (same label, date, command line and hosts) are skipped, so merging twice adds nothing.
"""
import os

import h5py
import numpy as np

from . import h5io
from .cli import UsageError


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


def _check_format(f, path):
    fmt = _decode(f.attrs.get("format"))
    if fmt != h5io.FORMAT:
        raise UsageError(f"{path}: not an ffbench results file (format attr {fmt!r}, expected "
                         f"{h5io.FORMAT!r})")


def merge_files(out, inputs, select=None, dedup=True):
    """Copy the runs of `inputs` into `out` (created when missing) in one atomic replace.

    select(run_group) -> bool may filter runs; dedup=False copies runs already in `out` again
    (for fresh per-point files). Returns (added, skipped_duplicates).
    """
    out = os.path.abspath(out)
    for path in inputs:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such results file")
        if os.path.abspath(path) == out:
            raise UsageError(f"{path}: is the output file itself; name it once, as OUT")
    added = skipped = 0
    with h5io.atomic_update(out) as (_dst, runs):
        seen = {run_identity(runs[k]) for k in runs.keys()}
        next_id = max([int(k) for k in runs.keys() if k.isdigit()], default=-1) + 1
        for path in inputs:
            try:
                src = h5py.File(path, "r")
            except OSError as exc:
                raise UsageError(f"{path}: not an HDF5 file ({exc})") from None
            with src:
                _check_format(src, path)
                src_runs = src.get("runs")
                if src_runs is None:
                    continue
                for rid in sorted(src_runs.keys()):
                    group = src_runs[rid]
                    if select is not None and not select(group):
                        continue
                    ident = run_identity(group)
                    if dedup and ident in seen:
                        skipped += 1
                        continue
                    src.copy(group, runs, name=f"{next_id:06d}")
                    next_id += 1
                    seen.add(ident)
                    added += 1
    return added, skipped


def cmd_merge(args):
    inputs = []
    for path in args.inputs:
        if os.path.isdir(path):
            inputs += sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".h5"))
        else:
            inputs.append(path)
    if not inputs:
        raise UsageError("no input files: give one or more results files (or folders of .h5 files)")
    added, skipped = merge_files(args.out, inputs)
    print(f"ffbench merge: {added} run(s) from {len(inputs)} file(s) added to {args.out}"
          + (f"; {skipped} already there, skipped" if skipped else ""))
    return 0


def register(sub):
    p = sub.add_parser("merge", help="copy the runs of several results files into one",
                       description=__doc__.split("\n")[0])
    p.add_argument("out", metavar="OUT.h5", help="results file to add to (created when missing)")
    p.add_argument("inputs", metavar="IN.h5", nargs="+",
                   help="results files (or folders: every .h5 inside)")
    p.set_defaults(func=cmd_merge)
