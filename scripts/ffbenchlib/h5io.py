"""Append and read run groups in an ffbench results file (layout: results/SCHEMA.md).

The Python side writes the same layout as the C++ writer (common/include/ffb/results.h):

    /                      attrs format = "ffbench-results", schema_version = 1
    /runs/<NNNNNN>/        one group per run, six-digit ids in append order, attrs = provenance
    /runs/<NNNNNN>/<table>/<column>   1-D (rows) or 2-D (rows x width) datasets, attr `units`

Appending is atomic: under an exclusive flock on the file's directory (the lock the C++ writer
takes too) the file is copied to FILE.tmp.<pid>,
the run is added to the copy, the copy is flushed and fsync'd and renamed over FILE (then the
directory is fsync'd). A crash leaves the old file or the new one, never a half-written one; two
writers on one host serialise on the lock.

API
    append_run(path, attrs, tables) -> run id ("000003")
        attrs:  {name: int | float | bool | str | list[str] | dict | list}   (dict/other lists -> JSON text)
        tables: {table name: {column name: (values, units)}}; values: 1-D or 2-D array-like of
                numbers or strings; all columns of a table must have the same number of rows.
    read_runs(path, program=None, kind=None) -> list[Run]
        Run.id, Run.attrs (str attrs decoded), Run.tables {table: {column: numpy array}},
        Run.units {table: {column: units}}; Run.table(name) raises KeyError naming what exists.
    provenance(program, kind, argv=None, options=None, label="") -> dict of the common attrs for a
        run produced by a Python command (model output, merges, ...).
"""
import contextlib
import datetime
import fcntl
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess

import h5py
import numpy as np

FORMAT = "ffbench-results"
SCHEMA_VERSION = 1
def _suite_version():
    """The version in CMakeLists.txt's project() line: one source of truth for C++ and Python."""
    import re
    cmake = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "CMakeLists.txt")
    try:
        with open(cmake, encoding="utf-8") as f:
            m = re.search(r"project\(ffbench\s+VERSION\s+([0-9.]+)", f.read())
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


SUITE_VERSION = _suite_version()


class ResultsFileError(Exception):
    """A results file that is not in the ffbench layout, or a table/column that is missing."""


class Run:
    """One /runs/<id> group read into memory."""

    def __init__(self, run_id, attrs, tables, units):
        self.id = run_id
        self.attrs = attrs
        self.tables = tables
        self.units = units

    def table(self, name):
        if name not in self.tables:
            have = ", ".join(sorted(self.tables)) or "none"
            raise KeyError(f"run {self.id} (program {self.attrs.get('program', '?')}) has no table "
                           f"'{name}' (tables: {have})")
        return self.tables[name]

    def __repr__(self):
        return f"Run({self.id}, program={self.attrs.get('program')!r}, tables={sorted(self.tables)})"


def _attr_value(value):
    if isinstance(value, (bool, np.bool_)):
        return np.int64(int(value))
    if isinstance(value, (int, np.integer)):
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value) and value:
        return np.array(list(value), dtype=h5py.string_dtype("utf-8"))
    return json.dumps(value, sort_keys=True, default=str)


def _column_array(name, values):
    arr = np.asarray(values)
    if arr.dtype.kind in "USO":
        flat = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
        return np.array(flat, dtype=object).reshape(arr.shape), h5py.string_dtype("utf-8")
    if arr.dtype.kind == "b":
        return arr.astype(np.int64), np.int64
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64), np.int64
    if arr.dtype.kind == "f":
        return arr.astype(np.float64), np.float64
    raise ValueError(f"column '{name}': unsupported values of dtype {arr.dtype}")


def _check_tables(tables):
    for tname, columns in tables.items():
        if not columns:
            raise ValueError(f"table '{tname}' has no columns")
        rows = None
        for cname, spec in columns.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str)):
                raise ValueError(f"table '{tname}' column '{cname}': give (values, units), e.g. "
                                 f"([1.0, 2.0], 'GB/s')")
            arr = np.asarray(spec[0])
            if arr.ndim not in (1, 2):
                raise ValueError(f"table '{tname}' column '{cname}': 1-D or 2-D values only")
            if rows is None:
                rows = arr.shape[0]
            elif arr.shape[0] != rows:
                raise ValueError(f"table '{tname}': column '{cname}' has {arr.shape[0]} rows, "
                                 f"the first column has {rows}")


def _next_run_id(runs_group):
    ids = [int(k) for k in runs_group.keys() if k.isdigit()]
    return f"{(max(ids) + 1) if ids else 0:06d}"


def _fsync_path(path, directory=False):
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_update(path):
    """Open a copy of results file `path` (created when missing) for writing; on a clean exit
    fsync it and rename it over `path`, else remove it. Yields (h5py.File, runs group).

    The lock is an exclusive flock on the file's directory, the same one the C++ writer
    (common/src/results.cpp) takes, so Python and C++ appends to one file serialise and no lock
    file is left behind."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        try:
            if os.path.exists(path):
                shutil.copyfile(path, tmp)
                mode = "r+"
            else:
                mode = "w"
            with h5py.File(tmp, mode) as f:
                if mode == "w":
                    f.attrs["format"] = FORMAT
                    f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
                else:
                    fmt = f.attrs.get("format")
                    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
                    if fmt != FORMAT:
                        raise ResultsFileError(f"{path}: not an ffbench results file (format attr "
                                               f"{fmt!r}, expected {FORMAT!r})")
                yield f, f.require_group("runs")
                f.flush()
            _fsync_path(tmp)
            os.replace(tmp, path)
            _fsync_path(directory, directory=True)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    finally:
        os.close(dir_fd)  # closing releases the lock


def append_run(path, attrs, tables=None):
    """Append one run group to `path` (created when missing); return its six-digit id."""
    tables = tables or {}
    _check_tables(tables)
    with atomic_update(path) as (_f, runs):
        run_id = _next_run_id(runs)
        group = runs.create_group(run_id)
        for key, value in attrs.items():
            group.attrs[key] = _attr_value(value)
        for tname, columns in tables.items():
            tgroup = group.create_group(tname)
            for cname, (values, units) in columns.items():
                data, dtype = _column_array(cname, values)
                ds = tgroup.create_dataset(cname, data=data, dtype=dtype)
                ds.attrs["units"] = units
    return run_id


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_runs(path, program=None, kind=None):
    """Read every run (optionally only those with attrs program/kind equal to the given values)."""
    if not os.path.exists(path):
        raise ResultsFileError(f"{path}: no such results file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ResultsFileError(f"{path}: not an HDF5 file ({exc})") from None
    with f:
        fmt = _decode(f.attrs.get("format"))
        if fmt != FORMAT:
            raise ResultsFileError(f"{path}: not an ffbench results file (format attr {fmt!r}, "
                                   f"expected {FORMAT!r})")
        out = []
        runs = f.get("runs")
        if runs is None:
            return out
        for run_id in sorted(runs.keys()):
            group = runs[run_id]
            attrs = {k: _decode(v) for k, v in group.attrs.items()}
            if program is not None and attrs.get("program") != program:
                continue
            if kind is not None and attrs.get("kind") != kind:
                continue
            tables, units = {}, {}
            for tname, tgroup in group.items():
                if not isinstance(tgroup, h5py.Group):
                    continue
                tables[tname], units[tname] = {}, {}
                for cname, ds in tgroup.items():
                    data = ds[()]
                    if data.dtype.kind in "OS":
                        data = np.array([_decode(v) for v in data.reshape(-1)],
                                        dtype=object).reshape(data.shape)
                    tables[tname][cname] = data
                    units[tname][cname] = _decode(ds.attrs.get("units", ""))
            out.append(Run(run_id, attrs, tables, units))
        return out


def _git_commit():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        res = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance(program, kind, argv=None, options=None, label=""):
    """The common run attrs of results/SCHEMA.md for a run produced by a Python command."""
    argv = list(argv) if argv is not None else []
    env = {k: v for k, v in sorted(os.environ.items())
           if k.startswith(("FFB_", "SLURM_JOB_ID", "SLURM_STEP_ID"))}
    return {
        "program": program,
        "kind": kind,
        "label": label,
        "suite_version": SUITE_VERSION,
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "command_line": " ".join(shlex.quote(a) for a in argv),
        "hosts": [socket.gethostname()],
        "nranks": 1,
        "nnodes": 1,
        "ranks_per_node": "1",
        "mpi_library_version": "n/a (python)",
        "cpu_model": _cpu_model(),
        "simd_level": "n/a",
        "environment": json.dumps(env, sort_keys=True),
        "options": json.dumps(options or {}, sort_keys=True, default=str),
        "status": "complete",
    }
