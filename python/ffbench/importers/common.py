"""Shared pieces of the importers: the input file, one-line parse errors, the run being built.

Every parser gets a Source (the file's text split into numbered lines) and returns a list of
Imported runs; nothing is written until every file of the command has parsed (see __init__.py).
"""
import datetime
import json
import math
import os
import re

from ffbench.errors import ParseError

# The importing host's local zone is assumed for the tools' own local-time stamps (IOR's
# "Began", nccl-tests' "start_time"): they print no zone.
LOCAL_TIME_NOTE = "local time of the importing host assumed (the file gives no zone)"


class Source:
    """One input file: its text and its lines (1-based numbers through err())."""

    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()  # the text ended with a newline: no empty last line
        self.ends_with_newline = text.endswith("\n")

    def err(self, line, what):
        return ParseError(self.path, line, what)

    def numbered(self):
        """(line number, line) for every line, trailing whitespace removed."""
        return [(i + 1, line.rstrip()) for i, line in enumerate(self.lines)]

    def first_content_line(self):
        for n, line in self.numbered():
            if line.strip():
                return n, line
        return 1, ""

    def line_of_offset(self, offset):
        return self.text.count("\n", 0, max(0, offset)) + 1

    def json_key_line(self, key, nth=0, start=0):
        """The line of the nth occurrence of "key": in the text (1 when not found): JSON errors
        found after decoding point at the key they concern."""
        pattern = re.compile(r'"' + re.escape(key) + r'"\s*:')
        for i, m in enumerate(pattern.finditer(self.text, start)):
            if i == nth:
                return self.line_of_offset(m.start())
        return 1


def read_source(path):
    """Source of `path`; ParseError for a missing, unreadable, binary or empty file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ParseError(path, 0, "an existing file (no such file)") from None
    except IsADirectoryError:
        raise ParseError(path, 0, "a file, not a directory") from None
    except OSError as exc:
        raise ParseError(path, 0, f"a readable file ({exc.strerror})") from None
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise ParseError(path, line, "text output, got binary data (a NUL byte)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(path, line, "UTF-8 text") from None
    if not text.strip():
        raise ParseError(path, 1, "the tool's output, got an empty file")
    return Source(path, text)


def load_json(src, what, kind=""):
    """The JSON document of a Source (text before the first line starting with '{' and after the
    document is skipped: fio prints notes around it); ParseError with the decoder's line."""
    m = re.search(r"^\s*\{", src.text, re.M)
    if m is None:
        n, _ = src.first_content_line()
        raise src.err(n, f"{what} (a JSON object), got no line starting with '{{'"
                      + (wrong_kind_hint(src, kind) if kind else ""))
    pos = m.end() - 1
    try:
        doc, _end = json.JSONDecoder().raw_decode(src.text[pos:])
    except json.JSONDecodeError as exc:
        at = pos + exc.pos
        truncated = at >= len(src.text.rstrip()) or exc.msg.startswith("Unterminated string")
        msg = exc.msg.replace(" starting at", "")
        reason = (f"the file ends inside the JSON document ({msg}; truncated)" if truncated
                  else f"{msg} (column {exc.colno})")
        line = src.line_of_offset(len(src.text.rstrip()) if truncated else at)
        raise src.err(line, f"valid JSON: {reason}") from None
    if not isinstance(doc, dict):
        raise src.err(src.line_of_offset(pos), f"{what} (a JSON object)")
    return doc


class Imported:
    """One run as a parser found it, before the common provenance is added."""

    def __init__(self, program, kind, tool, tool_version, fmt):
        self.program = program          # attr program, e.g. "nccl-tests all_reduce_perf"
        self.kind = kind                # "collective" | "storage"
        self.tool = tool                # "nccl-tests", "OSU Micro-Benchmarks", "IOR", "fio"
        self.tool_version = tool_version or "unknown"
        self.format = fmt               # "nccl-tests text", "ior json", ...
        self.command_line = ""          # the tool's, when the file has it
        self.command_line_note = ""     # why not, when it has none
        self.date = ""                  # ISO 8601 with zone, from the file
        self.date_source = ""
        self.hosts = []                 # one per rank, from the file ([] = not in the file)
        self.hosts_note = ""
        self.nranks = 0                 # 0 = the file does not say
        self.nnodes = 0                 # 0 = derive from hosts
        self.ranks_per_node = ""
        self.environment = {}           # the file's environment (nccl-tests JSON), filtered
        self.options = {}               # the tool's options as the file gives them
        self.attrs = {}                 # kind- and tool-specific attrs
        self.tables = {}                # {table: {column: (values, units)}}
        self.ranks_table = None         # {column: (values, units)} when the file lists ranks
        self.status = "complete"
        self.notes = []                 # one-line remarks printed after the import

    def rows(self):
        main = "collective" if self.kind == "collective" else "storage_phases"
        t = self.tables.get(main) or {}
        return len(next(iter(t.values()))[0]) if t else 0


def iso_local(dt):
    """A naive local datetime as ISO 8601 with the importing host's zone."""
    return dt.astimezone().isoformat(timespec="seconds")


def iso_epoch(seconds):
    return datetime.datetime.fromtimestamp(float(seconds), datetime.timezone.utc).astimezone() \
        .isoformat(timespec="seconds")


def file_mtime_iso(path):
    try:
        return iso_epoch(os.stat(path).st_mtime)
    except OSError:
        return ""


def parse_ctime(text):
    """IOR's and fio's "Tue Dec  1 19:45:35 2026" (ctime, local time) as ISO, or ""."""
    try:
        return iso_local(datetime.datetime.strptime(" ".join(str(text).split()),
                                                    "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return ""


_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_binary_size(text):
    """ "1M", "4k", "16 MiB", "65536 bytes", "1048576" -> bytes (K/M/G binary, as fio and IOR
    read them); None when it is not a size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtTpP]?)(?:i?[bB]|bytes?)?\s*", str(text))
    if not m:
        return None
    return int(round(float(m.group(1)) * _BINARY[m.group(2).lower()]))


def number(text):
    """float of a table cell; NaN for NA/N/A/-nan/"nan"; ValueError otherwise."""
    t = str(text).strip()
    if t.lower() in ("na", "n/a", "nan", "-nan", "-"):
        return math.nan
    return float(t)


def busbw_factor(collective, nranks):
    """nccl-tests' busbw factor (docs/interop.md; /work anchors): allreduce 2(n-1)/n;
    reduce_scatter, allgather, alltoall (n-1)/n; broadcast, reduce, sendrecv 1; NaN otherwise
    or when the rank count is unknown."""
    n = int(nranks or 0)
    if n <= 0:
        return math.nan
    c = collective.replace("_block", "")
    if c == "allreduce":
        return 2.0 * (n - 1) / n
    if c in ("reduce_scatter", "allgather", "alltoall", "allgatherv", "alltoallv", "alltoallw",
             "gather", "scatter", "gatherv", "scatterv"):
        return (n - 1) / n
    if c in ("broadcast", "reduce", "sendrecv"):
        return 1.0
    return math.nan


def json_text(value):
    return json.dumps(value, sort_keys=True, default=str)


# Environment variables worth keeping from a tool's recorded environment (nccl-tests -J records
# every variable of the process): what changes what a collective measures, and the job ids.
KEEP_ENV = re.compile(r"(NCCL_|OMPI_MCA_|UCX_|FI_|HFREDUCE_|FFB_|CUDA_VISIBLE_DEVICES$|"
                      r"SLURM_JOB_ID$|SLURM_STEP_ID$|SLURM_NNODES$|SLURM_NTASKS$|"
                      r"OMPI_COMM_WORLD_SIZE$|PMIX_RANK$)")


def sniff(text):
    """Which peer tool's output this text looks like ("" when none): for the wrong-KIND hint."""
    head = text[:20000]
    if re.search(r"^\s*\{", head, re.M):
        if '"fio version"' in head:
            return "fio"
        if '"tests"' in head and ('"Version"' in head or '"summary"' in head):
            return "ior"
        if '"results"' in head and ('"nccl_version"' in head or '"bus_bw"' in head):
            return "nccl-tests"
    if re.search(r"^IOR-\S+: MPI Coordinated Test", head, re.M):
        return "ior"
    if re.search(r"^# OSU .*Test", head, re.M):
        return "osu"
    if re.search(r"^#\s*nThread \d+ nGpus \d+|^# nccl-tests version|^# Collective test starting",
                 head, re.M):
        return "nccl-tests"
    if re.search(r"^fio-\d|^\S+: \(groupid=\d+, jobs=\d+\)", head, re.M):
        return "fio (its normal text output; import needs --output-format=json)"
    return ""


def wrong_kind_hint(src, kind):
    other = sniff(src.text)
    if other and not other.startswith(kind):
        return f"; this looks like {other} output (ffbench import {other.split()[0]} ...)"
    return ""
