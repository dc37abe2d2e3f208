"""OSU Micro-Benchmarks collective latency tables (osu_allreduce, osu_allgather, osu_bcast,
osu_alltoall, osu_reduce_scatter, osu_barrier, ... and their non-blocking / persistent forms).

The first line is `# OSU MPI Allreduce Latency Test v7.4`; `# Datatype: MPI_FLOAT.` (7.x) sets
the type of the rows below it (`-T all` prints one block per type); the column header
(`# Size  Avg Latency(us)  Min Latency(us)  Max Latency(us)  Iterations`, more with -z / -c) is
split on runs of two or more spaces and read by name, so columns a newer version adds are
located and skipped. OSU prints no footer: a row cut short (fewer cells than the header names)
or a last line without its newline is reported as truncated; a file cut exactly at a line end
cannot be told from a shorter sweep. OSU prints neither the rank count nor the hosts: busbw
needs `--ranks N` (NaN without it).
"""
import re

from ffbench.importers.common import Imported, busbw_factor, file_mtime_iso, number, wrong_kind_hint

_TITLE = re.compile(r"^#\s*OSU\s+(.*?)\s+Test(?:\s+v(\S+))?\s*$")
_DATATYPE = re.compile(r"^#\s*Datatype:\s*(\S+?)\.?\s*$")
NAMES = {
    "allreduce": "allreduce", "allgather": "allgather", "allgatherv": "allgatherv",
    "all-to-all": "alltoall", "all-to-allv": "alltoallv", "all-to-allw": "alltoallw",
    "alltoall": "alltoall", "alltoallv": "alltoallv", "alltoallw": "alltoallw",
    "broadcast": "broadcast", "bcast": "broadcast", "reduce": "reduce",
    "reduce_scatter": "reduce_scatter", "reduce_scatter_block": "reduce_scatter_block",
    "gather": "gather", "gatherv": "gatherv", "scatter": "scatter", "scatterv": "scatterv",
    "barrier": "barrier",
}
PROGRAM_STEM = {"broadcast": "bcast"}
REDUCING = ("allreduce", "reduce", "reduce_scatter", "reduce_scatter_block")
TYPES = {"MPI_CHAR": ("char", 1), "MPI_SIGNED_CHAR": ("int8", 1), "MPI_INT": ("int32", 4),
         "MPI_FLOAT": ("float", 4), "MPI_DOUBLE": ("double", 8), "MPI_LONG": ("int64", 8)}
# header name -> (column, units, cell kind)
COLUMNS = {
    "Size": ("size", "B", "int"),
    "Avg Latency(us)": ("time", "us", "float"),
    "Min Latency(us)": ("time_min", "us", "float"),
    "Max Latency(us)": ("time_max", "us", "float"),
    "Iterations": ("iterations", "count", "int"),
    "Validation": ("wrong", "count", "validation"),
    "Pure Comm.(us)": ("time", "us", "float"),     # non-blocking: the communication alone
    "Overall(us)": ("time_overall", "us", "float"),
    "Compute(us)": ("time_compute", "us", "float"),
    "Overlap(%)": ("overlap", "%", "float"),
}
_TAIL = re.compile(r"P(\d+(?:\.\d+)?) Tail Lat\(us\)$")


def _column(name):
    if name in COLUMNS:
        return COLUMNS[name]
    m = _TAIL.match(name)
    if m:
        p = m.group(1).replace(".", "")
        return (f"time_p{p}", "us", "float")
    return None


def _title(src, n, title):
    """(collective, program, backend, flags) from the title between 'OSU' and 'Test'."""
    m = re.match(r"(MPI|NCCL|RCCL|HCCL|XCCL|OpenSHMEM|UPC\+\+|UPC)(-[A-Za-z]+)?\s+(.*)$", title)
    if not m or not m.group(3).endswith("Latency"):
        raise src.err(n, f"an OSU collective latency test (osu_allreduce, osu_allgather, "
                         f"osu_bcast, ...), got 'OSU {title} Test'")
    lib, accel, rest = m.group(1), (m.group(2) or "")[1:], m.group(3)[:-len("Latency")].strip()
    nonblocking = bool(re.match(r"Non-[Bb]locking\s+", rest))
    rest = re.sub(r"^Non-[Bb]locking\s+", "", rest)
    persistent = rest.endswith(" Persistent")
    rest = re.sub(r"\s+Persistent$", "", rest)
    rest = re.sub(r"\s+Personalized Exchange$", "", rest).strip()
    coll = NAMES.get(rest.lower())
    if coll is None:
        raise src.err(n, f"an OSU collective latency test, got 'OSU {title} Test' (no collective "
                         f"named {rest!r})")
    backend = "mpi" if lib == "MPI" else lib.lower()
    stem = PROGRAM_STEM.get(coll, coll)
    program = ("osu_" + ("" if backend == "mpi" else backend + "_") + ("i" if nonblocking else "")
               + stem + ("_persistent" if persistent else ""))
    return coll, program, backend, {"nonblocking": nonblocking, "persistent": persistent,
                                    "accelerator": accel}


def _cell(src, n, name, kind, tok):
    try:
        if kind == "int":
            return int(tok)
        if kind == "float":
            return number(tok)
        if kind == "validation":
            t = tok.lower()
            if t in ("pass", "fail"):
                return 0 if t == "pass" else 1
            raise ValueError
    except ValueError:
        what = {"int": "an integer", "float": "a number", "validation": "Pass or Fail"}[kind]
        raise src.err(n, f"{what} in column '{name}', got {tok!r}") from None
    return tok


def parse(src, opts):
    title_line, title = src.first_content_line()
    m = _TITLE.match(title.strip())
    if not m:
        raise src.err(title_line, "an OSU header line '# OSU MPI <Collective> Latency Test vX.Y'"
                      + wrong_kind_hint(src, "osu"))
    coll, program, backend, flags = _title(src, title_line, m.group(1))
    version = m.group(2)
    dtype, header, hline = None, None, None
    rows, skipped = [], 0
    for n, line in src.numbered()[title_line:]:
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            body = s[1:].strip()
            if dm := _DATATYPE.match(s):
                dtype = dm.group(1)
            elif body.startswith("Size") or "Latency(us)" in body or "(us)" in body:
                names = re.split(r"\s{2,}", body)
                cols = [_column(x) for x in names]
                if not any(c and c[0] == "time" for c in cols):
                    raise src.err(n, "an 'Avg Latency(us)' column in the OSU header")
                header, hline = (names, cols), n
            elif _TITLE.match(s):
                raise src.err(n, "one OSU benchmark per file (a second '# OSU ... Test' line)")
            continue
        if not s[0].isdigit() and s[0] not in ".-":
            skipped += 1  # MPI warnings and other noise between the rows
            continue
        if header is None:
            raise src.err(n, "the OSU column header ('# Size  Avg Latency(us) ...') before the "
                             "first row")
        names, cols = header
        toks = s.split()
        if len(toks) != len(names):
            short = " (the row is cut short: truncated?)" if len(toks) < len(names) else ""
            raise src.err(n, f"{len(names)} columns as the header on line {hline} names "
                             f"({', '.join(names)}), got {len(toks)}{short}")
        row = {"_type": dtype}
        for name, col, tok in zip(names, cols, toks):
            if col is not None:
                row[col[0]] = _cell(src, n, name, col[2], tok)
        rows.append(row)
    last = len(src.lines)
    if header is None:
        raise src.err(last, "the OSU column header ('# Size  Avg Latency(us) ...'); truncated: "
                            "the file ends before the table")
    if not rows:
        raise src.err(last, f"at least one row after the header on line {hline}; truncated: no "
                            f"rows")
    if not src.ends_with_newline:
        raise src.err(last, f"a newline at the end of line {last}; truncated: the file ends "
                            f"inside its last row")
    imp = Imported(program, "collective", "OSU Micro-Benchmarks", version, "osu text")
    imp.command_line_note = "not in the file (OSU prints no command line)"
    imp.date, imp.date_source = file_mtime_iso(src.path), \
        "the file's modification time (OSU prints no date)"
    nranks = int(getattr(opts, "ranks", None) or 0)
    imp.nranks = nranks
    factor = busbw_factor(coll, nranks)
    if not nranks:
        imp.notes.append(f"{src.path}: OSU does not print the rank count: busbw left NaN, nranks "
                         f"0 (give --ranks N)")
    placement = getattr(opts, "placement", None) or "out-of-place"
    out = {k: [] for k in ("size", "count", "type", "redop", "placement", "time", "algbw",
                           "busbw", "wrong")}
    extra = []
    for r in rows:
        for k in r:
            if k not in out and k != "_type" and k not in extra:
                extra.append(k)
    units = {"size": "B", "count": "count", "type": "1", "redop": "1", "placement": "1",
             "time": "us", "algbw": "GB/s", "busbw": "GB/s", "wrong": "count"}
    for k in extra:
        c = next((c for c in COLUMNS.values() if c[0] == k), None)
        units[k] = c[1] if c else "us"
        out[k] = []
    for r in rows:
        tname, esize = TYPES.get(r["_type"] or "", ((r["_type"] or "unknown").lower()
                                                    .replace("mpi_", ""), 0))
        size = int(r.get("size", 0))
        t = r["time"]
        algbw = size / t / 1e3 if t and t > 0 else (0.0 if size == 0 else float("nan"))
        out["size"].append(size)
        out["count"].append(size // esize if esize else -1)
        out["type"].append(tname)
        out["redop"].append("sum" if coll in REDUCING else "none")
        out["placement"].append(placement)
        out["time"].append(t)
        out["algbw"].append(algbw)
        out["busbw"].append(algbw * factor)
        out["wrong"].append(r.get("wrong", -1))
        for k in extra:
            out[k].append(r.get(k, -1 if units[k] == "count" else float("nan")))
    imp.tables["collective"] = {k: (v, units[k]) for k, v in out.items()}
    imp.attrs.update(backend=backend, collective=coll, busbw_factor=factor, average_mode="avg",
                     osu_benchmark=f"OSU {m.group(1)} Test", osu_nonblocking=int(flags["nonblocking"]),
                     osu_persistent=int(flags["persistent"]),
                     buffers=(f"device ({flags['accelerator']})" if flags["accelerator"] else "host"),
                     time_note="time = OSU's Avg Latency (mean over ranks of each rank's mean "
                               "latency per call); time_min / time_max = its Min / Max Latency "
                               "(the fastest and the slowest rank's mean)")
    if skipped:
        imp.attrs["skipped_lines"] = skipped
    if any(w > 0 for w in out["wrong"]):
        imp.status = "failed"
    imp.options = {"ranks": nranks, "placement": placement}
    return [imp]
