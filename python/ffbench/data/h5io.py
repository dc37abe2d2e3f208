"""Append and read run groups in an ffbench results file (layout: results/SCHEMA.md).

The Python side writes the same layout as the C++ writer (common/include/ffb/results.h):

    /                      attrs format = "ffbench-results", schema_version = 1
    /runs/<NNNNNN>/        one group per run, six-digit ids in append order, attrs = provenance
    /runs/<NNNNNN>/<table>/<column>   1-D (rows) or 2-D (rows x width) datasets, attr `units`

A results file is either *single* (every run group inside it) or an *index* (root attr layout =
"index"): then /runs/<id> are HDF5 external links into segment files FILE.runs-<8 hex>/<ids>.h5
beside it (root attr `segments` names that directory), each an ordinary results file holding the
runs it was appended with. HDF5 follows the links, so h5py and h5dump read an index like a single
file. The first run makes a single file; each later append writes only its own segment and a new
copy of the index (links only), so an append costs the size of the run, not of the file:

    under an exclusive flock on FILE's directory (the C++ writer takes the same lock)
    1. remove leftovers of killed writers (see leftovers()), reported on stderr in one line
    2. check FILE in a forked child (structure, every segment there, FILE's seal): a damaged
       FILE is refused before any write
    3. write the run(s) to a temporary (FILE.tmp.<pid> for a new FILE, else
       FILE.runs-<hex>/segment.tmp.<pid>), seal, fsync, rename into place;
       a single FILE becomes an index first: FILE is hard-linked into the new segment directory
    4. copy the index (or write it, for a single FILE) to FILE.tmp.<pid>, add the links, seal,
       fsync, rename over FILE (the commit), fsync the directory.
A kill at any moment leaves FILE as it was or as it is after the append; what a killed writer
left (temporaries, a segment no index refers to) is removed by the next writer. compact() folds
an index back into one single file (ffbench merge --compact).

Every file written here is sealed: its 512-byte HDF5 user block holds the CRC-32 of the rest
(_seal), so any changed byte is found (HDF5 1.10 has no checksum over string values). Readers
verify the seals and read a file first in a forked child, so a file that makes HDF5 crash or
hang is reported as damaged instead of killing the reader.

Fault points (FFB_FAULT=<name>[@0], common/include/ffb/fault.h): results.append.locked,
.converted, .table (inside the HDF5 write), .written, .synced, .segment, .indexed, .renamed;
results.compact.written, .renamed. The C++ writer fires the same names at the same moments.

API
    append_run(path, attrs, tables) -> run id ("000003")
        attrs:  {name: int | float | bool | str | list[str] | dict | list}   (dict/other lists -> JSON text)
        tables: {table name: {column name: (values, units)}}; values: 1-D or 2-D array-like of
                numbers or strings; all columns of a table must have the same number of rows.
    read_runs(path, program=None, kind=None) -> list[Run]
        Run.id, Run.attrs (str attrs decoded), Run.tables {table: {column: numpy array}},
        Run.units {table: {column: units}}; Run.table(name) raises KeyError naming what exists.
    open_runs(path): context manager yielding (run id, h5py.Group, source file) for every run.
    check_results(path, data=True): seals, then everything read back (metadata and data
        checksums), in a forked child; ResultsFileError naming the file and what is wrong.
    appending(path): context manager for writers that copy groups (merge); see _Appender.
    leftovers(path) / leftovers_line(path, items, removed): what killed writers left, and one
        line about it.
    compact(path), remove_results(path).
    provenance(program, kind, argv=None, options=None, label="") -> dict of the common attrs for a
        run produced by a Python command (model output, merges, ...).
Every read error is a ResultsFileError with one line naming the file and what is wrong.
"""
import contextlib
import datetime
import fcntl
import json
import os
import platform
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib

import h5py
import numpy as np

from ffbench.data import paths
from ffbench.errors import ResultsFileError

FORMAT = "ffbench-results"
SCHEMA_VERSION = 1
LAYOUT_INDEX = "index"
LIBVER = ("v110", "v110")  # object headers and B-trees carry checksums
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
USERBLOCK = 512  # bytes before the HDF5 superblock; holds the file's checksum (_seal)
_SEAL_MAGIC = b"ffbench-results-checksum v1\n"
_TMP_RE = re.compile(r"\.tmp\.(\d+)$")


def _suite_version():
    """The version in CMakeLists.txt's project() line: one source of truth for C++ and Python (an
    installed tree has no CMakeLists.txt: the installed package's version, else unknown)."""
    root = paths.checkout_root()
    try:
        with open(os.path.join(root or "", "CMakeLists.txt"), encoding="utf-8") as f:
            m = re.search(r"project\(ffbench\s+VERSION\s+([0-9.]+)", f.read())
        return m.group(1) if m else "unknown"
    except OSError:
        pass
    try:
        from importlib import metadata
        return metadata.version("ffbench")
    except Exception:  # noqa: BLE001 - not installed by pip either
        return "unknown"


SUITE_VERSION = _suite_version()


def fault_point(name):
    """SIGKILL this process when env FFB_FAULT is `name` or `name@0` (Python writers are rank 0)."""
    spec = os.environ.get("FFB_FAULT", "")
    if not spec:
        return
    point, at, rank = spec.partition("@")
    if point == name and (not at or rank.strip() == "0"):
        os.kill(os.getpid(), signal.SIGKILL)


def one_line(exc):
    return " ".join((str(exc) or type(exc).__name__).split())


def _damaged(path, what):
    return ResultsFileError(f"{path}: damaged results file ({what})")


def _looks_hdf5(path):
    try:
        with open(path, "rb") as fh:
            for offset in (0, 512, 1024, 2048):
                fh.seek(offset)
                if fh.read(8) == _HDF5_SIGNATURE:
                    return True
    except OSError:
        pass
    return False


def _crc32(fh, start):
    fh.seek(start)
    crc = 0
    while True:
        chunk = fh.read(1 << 20)
        if not chunk:
            return crc
        crc = zlib.crc32(chunk, crc)


def _seal(path):
    """Write the CRC-32 (zlib's) of bytes [USERBLOCK, EOF) and the size into the user block of a
    file this writer just closed: every later change of its bytes is then detected (HDF5 1.10
    has no checksum over string values). The C++ writer seals the same way."""
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        crc = _crc32(fh, USERBLOCK)
        block = _SEAL_MAGIC + f"crc32 {crc:08x}\nbytes {size}\n".encode()
        fh.seek(0)
        fh.write(block.ljust(USERBLOCK, b"\0"))


def _verify_seal(path):
    """ResultsFileError when a sealed file's bytes changed; True when it is sealed and intact.
    Files without a seal (written before seals, or by other tools) rely on HDF5's checksums."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(USERBLOCK)
            if not head.startswith(_SEAL_MAGIC):
                fh.seek(USERBLOCK)
                if not head.startswith(_HDF5_SIGNATURE) and fh.read(8) == _HDF5_SIGNATURE:
                    raise _damaged(path, "its checksum block is unreadable")
                return False
            fields = dict(line.split(" ", 1) for line in
                          head[len(_SEAL_MAGIC):].split(b"\0", 1)[0].decode("ascii").splitlines())
            want_crc, want_size = int(fields["crc32"], 16), int(fields["bytes"])
            size = os.fstat(fh.fileno()).st_size
            if size != want_size:
                raise _damaged(path, f"{size} bytes, written as {want_size}: truncated or extended")
            if _crc32(fh, USERBLOCK) != want_crc:
                raise _damaged(path, "checksum mismatch: its bytes changed after it was written")
            return True
    except (ValueError, KeyError, UnicodeError):
        raise _damaged(path, "its checksum block is unreadable") from None
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read it ({one_line(exc)})") from None


def _open_file(path):
    """`path` opened read-only, format attr and /runs checked; ResultsFileError otherwise."""
    if not os.path.lexists(path):
        raise ResultsFileError(f"{path}: no such results file")
    if os.path.isdir(path):
        raise ResultsFileError(f"{path}: is a directory, not a results file")
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, sometimes others
        what = "damaged HDF5 file" if _looks_hdf5(path) else "not an HDF5 file"
        raise ResultsFileError(f"{path}: {what} ({one_line(exc)})") from None
    try:
        fmt = _decode(f.attrs.get("format"))
        if fmt != FORMAT:
            raise ResultsFileError(f"{path}: not an ffbench results file (format attr {fmt!r}, "
                                   f"expected {FORMAT!r})")
        runs = f["runs"] if "runs" in f else None  # get() would hide a damaged /runs as absent
        if runs is not None and not isinstance(runs, h5py.Group):
            raise _damaged(path, f"/runs is a {type(runs).__name__.lower()}, not a group")
    except ResultsFileError:
        f.close()
        raise
    except Exception as exc:  # noqa: BLE001
        f.close()
        raise _damaged(path, one_line(exc)) from None
    return f


def _entries(f, path):
    """[(run id, segment file relative to FILE's directory or None, object path)], sorted."""
    if "runs" not in f:
        return []
    runs = f["runs"]
    out = []
    for name in sorted(runs.keys()):
        link = runs.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            out.append((name, link.filename, link.path))
        elif isinstance(link, h5py.HardLink):
            out.append((name, None, f"/runs/{name}"))
        else:
            raise _damaged(path, f"/runs/{name} is a soft link")
    return out


class _SetReader:
    """A results file and, for an index, the segment files its runs live in (one open at a time)."""

    def __init__(self, path, verify=False):
        self.path = path
        self.dir = os.path.dirname(os.path.abspath(path))
        self.verify = verify  # check the seal of every file before HDF5 reads it
        self.sealed = set()   # the files whose seal was verified: their bytes are as written
        if verify and os.path.isfile(path) and _verify_seal(path):
            self.sealed.add(path)
        self.f = _open_file(path)
        self._seg_name, self._seg = None, None
        try:
            self.layout = _decode(self.f.attrs.get("layout", "")) or "single"
            self.segments = _decode(self.f.attrs.get("segments", "")) or ""
            self.compacted_from = _decode(self.f.attrs.get("compacted_from", "")) or ""
            self.entries = _entries(self.f, path)
            self._check_entries()
        except ResultsFileError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise _damaged(path, one_line(exc)) from None

    def _check_entries(self):
        if self.layout not in ("single", LAYOUT_INDEX):
            raise _damaged(self.path, f"unknown layout attr {self.layout!r}")
        for rid, fname, _ in self.entries:
            if self.layout == "single" and fname is not None:
                raise _damaged(self.path, f"run {rid} is an external link in a single file")
            if self.layout == LAYOUT_INDEX:
                parts = (fname or "").split("/")
                if (fname is None or len(parts) != 2 or parts[0] != self.segments
                        or parts[1] in ("", ".", "..")):
                    raise _damaged(self.path, f"run {rid} is not a link into {self.segments or '?'}/")

    def referenced(self):
        return {fname.split("/")[1] for _, fname, _ in self.entries if fname}

    def close(self):
        if self._seg is not None:
            self._seg.close()
            self._seg = None
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def group(self, entry):
        """(h5py.Group, the file that holds it) of one entry."""
        rid, fname, opath = entry
        holder, src = self.f, self.path
        if fname is not None:
            src = os.path.join(self.dir, fname)
            if fname != self._seg_name:
                if self._seg is not None:
                    self._seg.close()
                    self._seg, self._seg_name = None, None
                if not os.path.lexists(src):
                    raise ResultsFileError(
                        f"{self.path}: run {rid} is stored in {src}, which is missing (keep "
                        f"{self.segments}/ beside the file, or fold it in: ffbench merge --compact)")
                if self.verify and _verify_seal(src):
                    self.sealed.add(src)
                self._seg, self._seg_name = _open_file(src), fname
            holder = self._seg
        try:
            group = holder[opath] if opath in holder else None
        except Exception as exc:  # noqa: BLE001
            raise _damaged(src, f"run {rid}: {one_line(exc)}") from None
        if not isinstance(group, h5py.Group):
            raise _damaged(src, f"run {rid}: {opath} is {'missing' if group is None else 'not a group'}")
        return group, src

    def __iter__(self):
        for entry in self.entries:
            group, src = self.group(entry)
            yield entry[0], group, src


@contextlib.contextmanager
def open_runs(path, check="data"):
    """Yields an iterator of (run id, h5py.Group, source file) over every run of `path` (a single
    file or an index). A group is valid until the iterator moves on. check: what was verified in
    a child process first: "data" (everything, check_results) or "structure" (every run group
    and its attributes, not the tables)."""
    _ensure(path, check)
    with _SetReader(path) as reader:
        yield iter(reader)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _visit(group):
    """Load every object header below `group` (H5Ovisit verifies their checksums; plain access
    by name does not always)."""
    h5py.h5o.visit(group.id, lambda *_: None, info=True)


def _read_group(run_id, group, program, kind):
    _visit(group)
    attrs = {k: _decode(v) for k, v in group.attrs.items()}
    if program is not None and attrs.get("program") != program:
        return None
    if kind is not None and attrs.get("kind") != kind:
        return None
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
            units[tname][cname] = _decode(ds.attrs["units"]) if "units" in ds.attrs else ""
    return Run(run_id, attrs, tables, units)


def _read_here(path, program=None, kind=None, verify=True):
    out = []
    with _SetReader(path, verify=verify) as reader:
        for run_id, group, src in reader:
            try:
                run = _read_group(run_id, group, program, kind)
            except Exception as exc:  # noqa: BLE001 - h5py raises many kinds on damaged data
                raise _damaged(src, f"run {run_id}: {one_line(exc)}") from None
            if run is not None:
                out.append(run)
    return out


def _check_data_here(path):
    """Every seal verified; then HDF5 reads the runs of unsealed files completely (a sealed
    file's bytes are exactly what the writer wrote: HDF5 reads it in the parent without risk)."""
    with _SetReader(path, verify=True) as reader:
        for run_id, group, src in reader:
            if src in reader.sealed:
                continue
            try:
                _read_group(run_id, group, None, None)
            except Exception as exc:  # noqa: BLE001 - h5py raises many kinds on damaged data
                raise _damaged(src, f"run {run_id}: {one_line(exc)}") from None


def _structure_here(path):
    with _SetReader(path) as reader:
        for run_id, group, src in reader:
            try:
                _visit(group)
                for value in group.attrs.values():
                    _decode(value)
            except Exception as exc:  # noqa: BLE001
                raise _damaged(src, f"run {run_id}: {one_line(exc)}") from None


def _inspect_here(path):
    """What a writer checks before it appends: the structure and the seal of FILE (an index
    holds links only; a single file is checked once, by the append that makes it an index)."""
    with _SetReader(path) as reader:
        for rid, fname, _ in reader.entries:  # a stat per segment, no reading
            if fname and not os.path.lexists(os.path.join(reader.dir, fname)):
                raise ResultsFileError(f"{path}: run {rid} is stored in "
                                       f"{os.path.join(reader.dir, fname)}, which is missing")
    _verify_seal(path)


# HDF5 1.10 can crash or loop forever on damaged metadata it has no checksum for (the global
# heap of variable-length strings): a file is first read in a forked child, and this process
# opens it only once that child came back. _CHECKED: signature -> level already passed.
_LEVELS = {"inspect": (1, _inspect_here), "structure": (2, _structure_here),
           "data": (3, _check_data_here)}
_CHECKED = {}


def _signature(path):
    path = os.path.abspath(path)
    out = []
    for p in [path] + _segment_dirs(path):
        try:
            st = os.stat(p)
        except OSError:
            return None
        out.append((p, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _timeout(path):
    total = _size(path) + sum(_size(d) for d in _segment_dirs(path))
    return 60.0 + 30.0 * total / 1e9


def _in_child(fn, path, timeout):
    """Run fn(path) in a forked child; returns (status, message): "ok", "error" (message of the
    ResultsFileError it raised), "crash" (signal name) or "hang"."""
    try:
        if os.environ.get("FFB_RESULTS_NO_FORK", "0") not in ("", "0"):
            raise OSError("FFB_RESULTS_NO_FORK")
        r, w = os.pipe()
        pid = os.fork()
    except OSError:  # no fork here (or not wanted): check in this process
        try:
            fn(path)
        except ResultsFileError as exc:
            return "error", str(exc)
        return "ok", ""
    if pid == 0:  # the child: read, report, leave without any cleanup of the parent's state
        os.close(r)
        code, msg = 0, b""
        try:
            fn(path)
        except ResultsFileError as exc:
            code, msg = 2, str(exc).encode()
        except BaseException as exc:  # noqa: BLE001
            code, msg = 2, str(_damaged(path, one_line(exc))).encode()
        try:
            os.write(w, msg[:60000])
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline, hung = [], time.monotonic() + timeout, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                hung = True
                os.kill(pid, signal.SIGKILL)
                break
            data = os.read(r, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if hung:
        return "hang", ""
    if os.WIFSIGNALED(status):
        return "crash", signal.Signals(os.WTERMSIG(status)).name
    return ("ok" if os.WEXITSTATUS(status) == 0 else "error"), b"".join(chunks).decode("utf-8", "replace")


def _ensure(path, level):
    """Raise ResultsFileError unless `path` passed the check of `level` (see _LEVELS)."""
    rank, fn = _LEVELS[level]
    sig = _signature(path)
    if sig is not None and _CHECKED.get(sig, 0) >= rank:
        return
    if not os.path.lexists(path):
        raise ResultsFileError(f"{path}: no such results file")
    timeout = _timeout(path)
    status, msg = _in_child(fn, path, timeout)
    if status == "error":
        raise ResultsFileError(msg or f"{path}: damaged results file")
    if status == "crash":
        raise _damaged(path, f"HDF5 crashed reading it ({msg})")
    if status == "hang":
        raise _damaged(path, f"reading it did not finish in {timeout:.0f} s")
    if sig is not None:
        _CHECKED[sig] = max(rank, _CHECKED.get(sig, 0))


def read_runs(path, program=None, kind=None):
    """Read every run (optionally only those with attrs program/kind equal to the given values)."""
    _ensure(path, "data")
    return _read_here(path, program, kind, verify=False)  # the child verified the seals


def check_results(path, data=True):
    """Check a results set: every run group resolves and opens; with data, every attribute and
    dataset is read back (HDF5 verifies metadata checksums and Fletcher32 data checksums). Runs
    in a forked child, so a file that makes HDF5 crash or hang is reported, not fatal."""
    _ensure(path, "data" if data else "structure")


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _size(path):
    if os.path.isdir(path):
        return sum(_size(os.path.join(path, n)) for n in os.listdir(path))
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _dead_temporaries(directory, prefix=""):
    out = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        m = _TMP_RE.search(name)
        if m and name.startswith(prefix) and not _pid_alive(int(m.group(1))):
            out.append(os.path.join(directory, name))
    return out


def _segment_dirs(path):
    directory, base = os.path.split(path)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names
            if n.startswith(base + ".runs-") and os.path.isdir(os.path.join(directory, n))]


def _holds_link_of(directory, path):
    for name in os.listdir(directory):
        with contextlib.suppress(OSError):
            if os.path.samefile(os.path.join(directory, name), path):
                return True
    return False


def _leftovers(path, layout, segments="", referenced=(), compacted_from=""):
    """What killed writers left beside `path`: paths (files or directories) safe to remove."""
    path = os.path.abspath(path)
    directory, base = os.path.split(path)
    out = _dead_temporaries(directory, base + ".tmp.")
    own = os.path.join(directory, segments) if layout == LAYOUT_INDEX else None
    for seg_dir in _segment_dirs(path):
        if seg_dir == own:
            out += _dead_temporaries(seg_dir)
            out += [os.path.join(seg_dir, n) for n in sorted(os.listdir(seg_dir))
                    if n.endswith(".h5") and n not in referenced]
        elif layout == "single" and (_holds_link_of(seg_dir, path) or
                                     os.path.basename(seg_dir) == compacted_from):
            out.append(seg_dir)  # a conversion killed before its index, or a compacted index
        else:
            temps = _dead_temporaries(seg_dir)
            out += temps
            if len(temps) == len(os.listdir(seg_dir)):
                out.append(seg_dir)  # empty once its temporaries are gone
    return out


def leftovers(path):
    """Leftovers of killed writers beside results file `path` (see _leftovers)."""
    if not os.path.lexists(path):
        return _leftovers(path, "missing")
    _ensure(path, "inspect")
    with _SetReader(path) as r:
        return _leftovers(path, r.layout, r.segments, r.referenced(), r.compacted_from)


def _mb(nbytes):
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 100_000 else f"{nbytes / 1e3:.0f} kB"


def leftovers_line(path, items, removed):
    """One line about `items` (leftovers of `path`), or "" when there are none."""
    if not items:
        return ""
    sizes = [(os.path.relpath(p, os.path.dirname(os.path.abspath(path))), _size(p)) for p in items]
    shown = ", ".join(f"{name} ({_mb(n)})" for name, n in sizes[:3])
    more = f" and {len(sizes) - 3} more" if len(sizes) > 3 else ""
    total = _mb(sum(n for _, n in sizes))
    if removed:
        return (f"results: {path}: removed {len(items)} leftover(s) of killed writers, {total}: "
                f"{shown}{more}")
    return (f"results: {path}: {len(items)} leftover(s) of killed writers, {total}: {shown}{more}; "
            f"the next append to it removes them")


def _remove(p):
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


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
def _locked(directory):
    """Exclusive flock on `directory` (the C++ writer takes the same one; no lock file)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _create_group(parent, name):
    """A group whose attributes stay in its object header: HDF5 1.10.8's H5Ocopy (merge, compact)
    crashes on groups with dense attribute storage, which v110 files switch to past 8 attrs."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_attr_phase_change(65535, 0)
    h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
    return parent[name]


def _new_file(path):
    f = h5py.File(path, "w", libver=LIBVER, userblock_size=USERBLOCK)
    f.attrs["format"] = FORMAT
    f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    f.create_group("runs")
    return f


def _segment_name(ids):
    return f"{ids[0]}.h5" if len(ids) == 1 else f"{ids[0]}-{ids[-1]}.h5"


class _Appender:
    """One append under the lock: new run groups go to a temporary file; commit() publishes them.

    ids: the run ids FILE already has. new_run(prefer) / copy_run(group, prefer) add a run (the
    preferred id when it is free and after every id so far, else the next one)."""

    def __init__(self, path):
        self.path = path
        self.dir = os.path.dirname(path)
        self.tmp = f"{path}.tmp.{os.getpid()}"
        self.layout, self.segments, self.entries = "missing", "", []
        self._referenced, self._compacted_from = set(), ""
        if os.path.lexists(path):
            _ensure(path, "inspect")
            with _SetReader(path) as r:
                self.layout, self.segments, self.entries = r.layout, r.segments, r.entries
                self._referenced, self._compacted_from = r.referenced(), r.compacted_from
        self.ids = [e[0] for e in self.entries]
        self._next = max((int(i) for i in self.ids if i.isdigit()), default=-1) + 1
        self.h5, self.h5_path, self.new = None, None, []
        self._made_dir, self._base_segment = None, None

    def remove_leftovers(self):
        items = _leftovers(self.path, self.layout, self.segments, self._referenced,
                           self._compacted_from)
        line = leftovers_line(self.path, items, removed=True)
        for p in items:
            _remove(p)
        if line:
            print(line, file=sys.stderr)

    def _allocate(self, prefer):
        taken = set(self.ids) | set(self.new)
        if prefer and prefer.isdigit() and prefer not in taken and int(prefer) >= self._next:
            rid = prefer
        else:
            rid = f"{self._next:06d}"
        self._next = int(rid) + 1
        return rid

    def _runs_group(self):
        if self.h5 is None:
            if self.layout == "missing":
                self.h5_path = self.tmp
            else:
                self.h5_path = os.path.join(self._segment_dir(), f"segment.tmp.{os.getpid()}")
            self.h5 = _new_file(self.h5_path)
        return self.h5["runs"]

    def _segment_dir(self):
        """The index's segment directory; for a single FILE a new one holding a hard link of it."""
        if self.layout == LAYOUT_INDEX:
            return os.path.join(self.dir, self.segments)
        name = f"{os.path.basename(self.path)}.runs-{secrets.token_hex(4)}"
        seg_dir = os.path.join(self.dir, name)
        os.mkdir(seg_dir)
        self._made_dir, self.segments = seg_dir, name
        ids = self.ids or ["base"]
        self._base_segment = _segment_name(ids)
        target = os.path.join(seg_dir, self._base_segment)
        try:
            os.link(self.path, target)
        except OSError:
            shutil.copyfile(self.path, target)  # a file system without hard links: copy once
            _fsync_path(target)
        _fsync_path(seg_dir, directory=True)
        _fsync_path(self.dir, directory=True)
        fault_point("results.append.converted")
        return seg_dir

    def new_run(self, prefer=None):
        """(run id, empty h5py.Group) for a new run."""
        rid = self._allocate(prefer)
        group = _create_group(self._runs_group(), rid)
        self.new.append(rid)
        return rid, group

    def copy_run(self, group, prefer=None):
        """Copy run group `group` (of any open file) whole; returns its id here."""
        rid = self._allocate(prefer)
        runs = self._runs_group()
        group.file.copy(group, runs, name=rid)
        self.new.append(rid)
        return rid

    def group(self, rid):
        return self.h5["runs"][rid]

    def commit(self):
        if not self.new:
            self.abort()
            return
        self.h5.close()
        self.h5 = None
        _seal(self.h5_path)
        fault_point("results.append.written")
        _fsync_path(self.h5_path)
        fault_point("results.append.synced")
        if self.layout == "missing":
            os.replace(self.h5_path, self.path)
        else:
            seg_dir = os.path.join(self.dir, self.segments)
            name = _segment_name(self.new)
            os.replace(self.h5_path, os.path.join(seg_dir, name))
            _fsync_path(seg_dir, directory=True)
            fault_point("results.append.segment")
            self._write_index(name)
            _seal(self.tmp)
            _fsync_path(self.tmp)
            fault_point("results.append.indexed")
            os.replace(self.tmp, self.path)
        self.h5_path, self._made_dir = None, None  # published: nothing to undo any more
        fault_point("results.append.renamed")
        _fsync_path(self.dir, directory=True)

    def _write_index(self, segment):
        if self.layout == LAYOUT_INDEX:
            shutil.copyfile(self.path, self.tmp)
            f = h5py.File(self.tmp, "r+", libver=LIBVER)
        else:
            f = _new_file(self.tmp)
            f.attrs["layout"] = LAYOUT_INDEX
            f.attrs["segments"] = self.segments
            for rid in self.ids:
                f["runs"][rid] = h5py.ExternalLink(f"{self.segments}/{self._base_segment}",
                                                   f"/runs/{rid}")
        with f:
            for rid in self.new:
                f["runs"][rid] = h5py.ExternalLink(f"{self.segments}/{segment}", f"/runs/{rid}")

    def abort(self):
        if self.h5 is not None:
            with contextlib.suppress(Exception):
                self.h5.close()
            self.h5 = None
        for p in (self.h5_path, self.tmp):
            if p:
                _remove(p)
        if self._made_dir:
            _remove(self._made_dir)


@contextlib.contextmanager
def appending(path):
    """Yield an _Appender for results file `path` (created when missing) under the directory
    lock; on a clean exit its runs are published (commit), else nothing changes."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with _locked(directory):
        fault_point("results.append.locked")
        app = _inspect_for_writing(path)
        try:
            yield app
            app.commit()
        except BaseException:
            app.abort()
            raise


def _write_run(group, attrs, tables):
    for key, value in attrs.items():
        group.attrs[key] = _attr_value(value)
    for n, (tname, columns) in enumerate(tables.items()):
        tgroup = group.create_group(tname)
        for cname, (values, units) in columns.items():
            data, dtype = _column_array(cname, values)
            # Numbers get Fletcher32 checksums (HDF5 refuses filters on variable-length strings).
            numeric = dtype is np.int64 or dtype is np.float64
            kwargs = {"chunks": True, "fletcher32": True} if numeric and data.size else {}
            ds = tgroup.create_dataset(cname, data=data, dtype=dtype, **kwargs)
            ds.attrs["units"] = units
        if n == 0:
            fault_point("results.append.table")


def _inspect_for_writing(path):
    """_Appender for `path` with the leftovers of killed writers removed (a damaged FILE raises,
    before anything is written; its dead temporaries are removed all the same)."""
    try:
        app = _Appender(path)
    except ResultsFileError:
        directory, base = os.path.split(path)
        items = _dead_temporaries(directory, base + ".tmp.")
        line = leftovers_line(path, items, removed=True)
        for p in items:
            _remove(p)
        if line:
            print(line, file=sys.stderr)
        raise
    app.remove_leftovers()
    return app


def append_run(path, attrs, tables=None):
    """Append one run group to `path` (created when missing); return its six-digit id."""
    tables = tables or {}
    _check_tables(tables)
    with appending(path) as app:
        run_id, group = app.new_run()
        _write_run(group, attrs, tables)
    return run_id


def compact(path):
    """Fold an index and its segments into one single file with the same run ids (copies every
    run: the cost of the whole file). Returns the number of runs, 0 when `path` is already single."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    with _locked(directory):
        app = _inspect_for_writing(path)
        if app.layout != LAYOUT_INDEX:
            return 0
        _ensure(path, "data")
        try:
            with _SetReader(path) as reader, _new_file(app.tmp) as out:
                out.attrs["compacted_from"] = reader.segments
                for rid, group, _ in reader:
                    group.file.copy(group, out["runs"], name=rid)
            _seal(app.tmp)
            fault_point("results.compact.written")
            _fsync_path(app.tmp)
            os.replace(app.tmp, path)
        except BaseException:
            _remove(app.tmp)
            raise
        fault_point("results.compact.renamed")
        _fsync_path(directory, directory=True)
        _remove(os.path.join(directory, app.segments))
        return len(app.ids)


def remove_results(path):
    """Remove results file `path`, its segments and its leftovers (under the lock)."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        return
    with _locked(directory):
        seg_dir = ""
        if os.path.lexists(path):
            with contextlib.suppress(ResultsFileError):
                _ensure(path, "inspect")
                with _SetReader(path) as r:
                    seg_dir = os.path.join(directory, r.segments) if r.segments else ""
            os.unlink(path)
        for p in _leftovers(path, "missing") + ([seg_dir] if seg_dir else []):
            _remove(p)
        _fsync_path(directory, directory=True)


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


def _git_commit():
    root = paths.checkout_root() or paths.PACKAGE_DIR
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
