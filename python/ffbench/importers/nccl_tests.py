"""nccl-tests output (every *_perf program): the text table and the 2.19+ `-J FILE.json` document.

Text: the `# nThread N nGpus N minBytes ...` line identifies the output; `#  Rank ...` lines give
the ranks (host, pid, device); the column header line (`#  size  count  type  redop  root  time
algbw  busbw  #wrong  time ...`) is read by name, split into the out-of-place and in-place groups
at each `time` (or `cputime`) column, so newer columns (-I's i_min i_max i_p99 i_cv%, -T's
timestamp) are found where they are; the footer `# Avg bus bandwidth : X` must be there (without
it the output was cut short). NCCL_DEBUG lines (`host:pid:tid [d] NCCL INFO ...`) are skipped.
JSON: `results[]` entries with `out_of_place` / `in_place` objects (`time` or `cpu_time`,
`alg_bw`, `bus_bw`, `nwrong`) and `*_per_iter` statistics; `config.devices[]` gives the ranks;
`args` the command line; `env` the environment; `average_bus_bandwidth` must be there.
"""
import datetime
import os
import re
import shlex

from ffbench.importers.common import (KEEP_ENV, LOCAL_TIME_NOTE, Imported, busbw_factor, file_mtime_iso,
                     iso_local, load_json, number, wrong_kind_hint)

PERF_TO_COLLECTIVE = {
    "all_reduce_perf": "allreduce", "all_gather_perf": "allgather",
    "reduce_scatter_perf": "reduce_scatter", "alltoall_perf": "alltoall",
    "alltoallv_perf": "alltoallv", "broadcast_perf": "broadcast", "reduce_perf": "reduce",
    "sendrecv_perf": "sendrecv", "gather_perf": "gather", "scatter_perf": "scatter",
    "hypercube_perf": "hypercube",
}
COLLECTIVE_TO_PERF = {v: k for k, v in PERF_TO_COLLECTIVE.items()}

_NCCL_LOG = re.compile(r"\bNCCL (INFO|WARN|ERROR|TRACE|ABORT)\b")
_VERSION = re.compile(r"^#\s*nccl-tests version (\S+)(?:\s+nccl-headers=(\d+))?"
                      r"(?:\s+nccl-library=(\d+))?")
_STARTING = re.compile(r"^#\s*Collective test starting:\s*(\S+)")
_CONCLUDED = re.compile(r"^#\s*Collective test concluded:\s*(\S+)")
_CONFIG = re.compile(r"^#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)")
_RANK = re.compile(r"^#\s*Rank\s+(\d+)(?:\s+Group\s+(\d+))?\s+Pid\s+(\d+)\s+on\s+(\S+)\s+"
                   r"device\s+(\d+)\s+\[([^\]]*)\]\s*(.*)$")
_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s*(OK|FAILED)?")
_AVG = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)\s*(OK|FAILED)?")
_ERROR = re.compile(r"^#\s*error:\s*(.*)$")
_DATE_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}$")

# header name -> (our column, units, how to read the cell)
_GROUP_COLUMNS = {
    "time": ("time", "us", "float"), "cputime": ("time", "us", "float"),
    "algbw": ("algbw", "GB/s", "float"), "busbw": ("busbw", "GB/s", "float"),
    "#wrong": ("wrong", "count", "wrong"), "wrong": ("wrong", "count", "wrong"),
    "error": ("wrong", "count", "wrong"), "errors": ("wrong", "count", "wrong"),
    "i_min": ("time_min", "us", "float"), "i_max": ("time_max", "us", "float"),
    "i_p99": ("time_p99", "us", "float"), "i_cv%": ("time_cv", "%", "float"),
}
# the '# nThread ...' line's keys, named as the -J document names them
_CONFIG_KEYS = {"nThread": "nthreads", "nGpus": "ngpus", "minBytes": "minimum_bytes",
                "maxBytes": "maximum_bytes", "warmup iters": "warmup_iters", "iters": "iterations",
                "agg iters": "aggregated_iterations", "validation": "validation", "graph": "graph",
                "unalign": "unalign"}
_CONFIG_PAIR = re.compile(r"\s*([A-Za-z][A-Za-z ]*?):?\s+(-?\d+)(?:\((\w+)\))?")


def _config_pairs(body):
    """{"nthreads": 1, ..., "step_factor": 2} of the '# nThread 1 nGpus 1 minBytes 8 ... step:
    2(factor) warmup iters: 1 iters: 20 ...' line (keys it does not know keep their own name)."""
    out = {}
    for m in _CONFIG_PAIR.finditer(body):
        key, value, unit = m.group(1).strip(), int(m.group(2)), m.group(3)
        if key == "step":
            out["step_" + (unit or "factor")] = value
        else:
            out[_CONFIG_KEYS.get(key, key.replace(" ", "_"))] = value
    return out
PLACEMENTS = ("out-of-place", "in-place")


def nccl_version_text(code):
    """NCCL_VERSION_CODE (22803, or 2708 before 2.9) as "2.28.3"."""
    code = int(code)
    if code >= 10000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


def parse(src, opts):
    if src.text.lstrip().startswith("{"):
        return [parse_json(src, opts)]
    return [parse_text(src, opts)]


def _collective(src, program, opts, line=1):
    """(collective, perf program name) from the file, --collective, or the file name."""
    if program:
        name = os.path.basename(program)
        coll = PERF_TO_COLLECTIVE.get(name, name[:-5].replace("_", "") if name.endswith("_perf")
                                      else name)
        return coll, name
    if getattr(opts, "collective", None):
        coll = opts.collective
        return coll, COLLECTIVE_TO_PERF.get(coll, f"{coll}_perf")
    base = os.path.basename(src.path)
    for perf in sorted(PERF_TO_COLLECTIVE, key=len, reverse=True):
        if perf in base or perf[:-5] in base.replace("-", "_"):
            return PERF_TO_COLLECTIVE[perf], perf
    raise src.err(line, "the collective: a '# Collective test starting: NAME' line (nccl-tests "
                        "2.19+), a file name naming the program (all_reduce_perf.txt), or "
                        "--collective allreduce")


class _Header:
    def __init__(self, line, names, preamble, groups):
        self.line, self.names, self.preamble, self.groups = line, names, preamble, groups

    @staticmethod
    def width(name):
        return 2 if name == "timestamp" else 1  # "%Y-%m-%d %H:%M:%S": two tokens

    def group_width(self, g):
        return sum(self.width(n) for n in self.groups[g])

    def expected(self):
        return len(self.preamble) + sum(self.group_width(g) for g in range(len(self.groups)))


def _parse_header(src, n, body):
    names = body.split()
    starts = [i for i, t in enumerate(names) if t in ("time", "cputime")]
    if not starts:
        raise src.err(n, "a 'time' column in the table header")
    preamble = names[:starts[0]]
    cuts = starts + [len(names)]
    groups = [names[cuts[i]:cuts[i + 1]] for i in range(len(starts))]
    if len(groups) > 2:
        raise src.err(n, "at most two column groups (out-of-place, in-place) in the header, got "
                         f"{len(groups)} 'time' columns")
    for g in groups:
        for need in ("algbw", "busbw"):
            if need not in g:
                raise src.err(n, f"a '{need}' column in each placement group of the header")
    return _Header(n, names, preamble, groups)


def _cell(src, n, name, kind, tok):
    try:
        if kind == "wrong":
            return -1 if tok.upper() == "N/A" else int(float(tok))
        if kind == "int":
            return int(tok)
        if kind == "float":
            return number(tok)
    except ValueError:
        what = {"wrong": "a count or N/A", "int": "an integer", "float": "a number"}[kind]
        raise src.err(n, f"{what} in column '{name}', got {tok!r}") from None
    return tok


def _parse_row(src, n, line, h):
    toks = line.split()
    want = h.expected()
    groups = list(range(len(h.groups)))
    if len(toks) != want:
        if len(h.groups) == 2 and len(toks) == want - h.group_width(0):
            groups = [1]  # trace replay: only the in-place group is printed
        else:
            short = " (the row is cut short: truncated?)" if len(toks) < want else ""
            raise src.err(n, f"{want} columns as the header on line {h.line} names "
                             f"({' '.join(h.names)}), got {len(toks)}{short}")
    base = {}
    for name, tok in zip(h.preamble, toks):
        if name == "size":
            base["size"] = _cell(src, n, name, "int", tok)
        elif name == "count":
            base["count"] = _cell(src, n, name, "int", tok)
        elif name == "root":
            base["root"] = _cell(src, n, name, "int", tok)
        elif name in ("type", "redop"):
            base[name] = tok
    pos = len(h.preamble)
    out = []
    for g in groups:
        row = dict(base)
        row["placement"] = PLACEMENTS[g] if len(h.groups) == 2 else PLACEMENTS[0]
        for name in h.groups[g]:
            w = h.width(name)
            cell = toks[pos:pos + w]
            pos += w
            if name in _GROUP_COLUMNS:
                col, _units, kind = _GROUP_COLUMNS[name]
                row[col] = _cell(src, n, name, kind, cell[0])
            # other columns (timestamp, newer ones) are located and skipped
        out.append(row)
    return out


def parse_text(src, opts):
    version = headers = library = program = concluded = None
    config, config_line, ranks, header = {}, None, [], None
    rows, oob, oob_failed, avg_bw, avg_failed, errors = [], None, False, None, False, []
    last_row_line = None
    for n, line in src.numbered():
        s = line.strip()
        if not s or _NCCL_LOG.search(s):
            continue
        if s.startswith("#"):
            body = s[1:].strip()
            if m := _VERSION.match(s):
                version, headers, library = m.groups()
            elif m := _STARTING.match(s):
                program = m.group(1)
            elif m := _CONCLUDED.match(s):
                concluded = m.group(1)
            elif m := _CONFIG.match(s):
                config_line = n
                config.update(_config_pairs(body))
            elif m := _RANK.match(s):
                rank, group, pid, host, dev, bus, name = m.groups()
                ranks.append({"rank": int(rank), "group": int(group or 0), "pid": int(pid),
                              "host": host, "device": int(dev), "bus": bus,
                              "name": name.strip()})
            elif header is None and body.split()[:3] == ["size", "count", "type"]:
                header = _parse_header(src, n, body)
            elif m := _OOB.match(s):
                oob, oob_failed = int(m.group(1)), m.group(2) == "FAILED"
            elif m := _AVG.match(s):
                try:
                    avg_bw = number(m.group(1))
                except ValueError:
                    raise src.err(n, f"a number after 'Avg bus bandwidth :', got "
                                     f"{m.group(1)!r}") from None
                avg_failed = m.group(2) == "FAILED"
            elif m := _ERROR.match(s):
                errors.append(m.group(1).strip())
            continue
        if config_line is None:
            raise src.err(n, "nccl-tests output: a '# nThread N nGpus N minBytes ...' line before "
                             "the table" + wrong_kind_hint(src, "nccl-tests"))
        if header is None:
            raise src.err(n, "the table header ('#  size  count  type  redop  root  time  algbw "
                             "busbw  #wrong ...') before the first row")
        if avg_bw is not None:
            raise src.err(n, "the end of the file after the '# Avg bus bandwidth' footer (one "
                             "nccl-tests run per file)")
        rows += _parse_row(src, n, s, header)
        last_row_line = n
    last = len(src.lines)
    if config_line is None:
        n, _ = src.first_content_line()
        raise src.err(n, "nccl-tests output: a '# nThread N nGpus N minBytes ...' line"
                         + wrong_kind_hint(src, "nccl-tests"))
    if header is None:
        raise src.err(last, "the table header ('#  size  count  type  redop  root  time ...'); "
                            "truncated: the file ends before the table")
    if not rows:
        raise src.err(last, f"at least one row after the table header on line {header.line}; "
                            f"truncated: no rows")
    if avg_bw is None:
        raise src.err(last, f"a '# Avg bus bandwidth : X' footer after the last row (line "
                            f"{last_row_line}); truncated: no '# Avg bus bandwidth' footer")
    coll, perf = _collective(src, program or concluded, opts, config_line)
    imp = Imported(f"nccl-tests {perf}", "collective", "nccl-tests", version, "nccl-tests text")
    imp.command_line_note = "not in the file (nccl-tests' text output does not print its command line)"
    imp.date = file_mtime_iso(src.path)
    imp.date_source = "the file's modification time (the text output has no date)"
    _fill(imp, coll, rows, ranks, config, opts)
    if library or headers:
        imp.attrs["nccl_version"] = nccl_version_text(library or headers)
        imp.attrs["nccl_version_code"] = int(library or headers)
    imp.attrs["tool_avg_busbw"] = avg_bw
    imp.attrs["tool_out_of_bounds"] = -1 if oob is None else oob
    if oob_failed or avg_failed or (oob or 0) > 0 or errors:
        imp.status = "failed"
    if errors:
        imp.attrs["tool_errors"] = errors
    return imp


def _fill(imp, coll, rows, ranks, config, opts):
    """Tables and attrs common to the text and JSON forms."""
    n = len(ranks)
    imp.nranks = n
    if ranks:
        order = sorted(ranks, key=lambda r: r["rank"])
        imp.hosts = [r["host"] for r in order]
        nodes = {}
        for h in imp.hosts:
            nodes.setdefault(h, len(nodes))
        imp.nnodes = len(nodes)
        per = [imp.hosts.count(h) for h in nodes]
        imp.ranks_per_node = str(per[0]) if len(set(per)) == 1 else ",".join(map(str, per))
        imp.ranks_table = {
            "rank": ([r["rank"] for r in order], "1"),
            "host": ([r["host"] for r in order], "1"),
            "pid": ([r["pid"] for r in order], "1"),
            "node": ([nodes[r["host"]] for r in order], "1"),
            "device": ([f"GPU{r['device']} {r['name']} [{r['bus']}]".replace(" []", "")
                        for r in order], "1"),
        }
    factor = busbw_factor(coll, n)
    imp.attrs.update(backend="nccl", collective=coll, busbw_factor=factor,
                     average_mode="avg", nccl_tests_config=config)
    imp.options = dict(config)
    cols = {}
    units = {"size": "B", "count": "count", "type": "1", "redop": "1", "root": "1",
             "placement": "1", "time": "us", "algbw": "GB/s", "busbw": "GB/s", "wrong": "count",
             "time_min": "us", "time_max": "us", "time_mean": "us", "time_p50": "us",
             "time_p99": "us", "time_cv": "%", "iter_time_max": "us"}
    names = []
    for r in rows:
        for k in r:
            if k not in names:
                names.append(k)
    nan = float("nan")
    for k in names:
        default = -1 if k in ("wrong", "root") else ("" if k in ("type", "redop") else nan)
        cols[k] = ([r.get(k, default) for r in rows], units.get(k, "1"))
    imp.tables["collective"] = cols
    if any(int(r.get("wrong", 0)) > 0 for r in rows):
        imp.status = "failed"  # as our own benchmarks: a run that failed validation


def _args_average(args):
    """The -a/--average value on an nccl-tests command line (1 = avg, its default)."""
    names = {"0": "rank0", "1": "avg", "2": "min", "3": "max"}
    for i, a in enumerate(args):
        if a in ("-a", "--average") and i + 1 < len(args):
            return names.get(args[i + 1], args[i + 1])
        if a.startswith("--average="):
            return names.get(a.split("=", 1)[1], a)
    return "avg"


def _need(src, obj, key, kind, where, line_key=None, nth=0):
    if not isinstance(obj, dict) or key not in obj:
        raise src.err(src.json_key_line(line_key or key, nth) if line_key else 1,
                      f"key '{key}' in {where}")
    v = obj[key]
    if kind is not None and not isinstance(v, kind):
        name = {list: "a list", dict: "an object", str: "a string"}.get(kind, "a number")
        raise src.err(src.json_key_line(key, nth), f"{name} for key '{key}' in {where}")
    return v


def _jnum(src, v, key, nth):
    if isinstance(v, bool):
        raise src.err(src.json_key_line(key, nth), f"a number for '{key}', got {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in ("nan", "-nan"):
        return float("nan")  # nccl-tests writes NaN as the string "nan"
    raise src.err(src.json_key_line(key, nth), f"a number for '{key}', got {v!r}")


def parse_json(src, opts):
    doc = load_json(src, "nccl-tests -J output", "nccl-tests")
    if "results" not in doc or ("config" not in doc and "nccl_version" not in doc):
        raise src.err(1, "nccl-tests -J output (keys 'config' and 'results')"
                         + wrong_kind_hint(src, "nccl-tests"))
    results = _need(src, doc, "results", list, "the top-level object", "results")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    if "average_bus_bandwidth" not in doc:
        raise src.err(src.line_of_offset(len(src.text.rstrip())),
                      "key 'average_bus_bandwidth' after 'results': the run did not finish "
                      "(truncated: no average bus bandwidth)")
    args = doc.get("args") if isinstance(doc.get("args"), list) else []
    args = [str(a) for a in args]
    coll, perf = _collective(src, args[0] if args else "", opts)
    imp = Imported(f"nccl-tests {perf}", "collective", "nccl-tests", "unknown", "nccl-tests json")
    imp.attrs["json_format_version"] = doc.get("version", -1) \
        if isinstance(doc.get("version"), int) else -1
    imp.attrs["tool_version_note"] = ("the -J document does not name the nccl-tests version "
                                      "(JSON output exists from 2.19 on)")
    if args:
        imp.command_line = " ".join(shlex.quote(a) for a in args)
    else:
        imp.command_line_note = "not in the file (no 'args')"
    start = doc.get("start_time")
    if isinstance(start, str):
        try:
            imp.date = iso_local(datetime.datetime.strptime(start.strip(), "%Y-%m-%d %H:%M:%S"))
            imp.date_source = f"the file's start_time ({LOCAL_TIME_NOTE})"
        except ValueError:
            pass
    if not imp.date:
        imp.date, imp.date_source = file_mtime_iso(src.path), "the file's modification time"
    env = {}
    for e in doc.get("env") or []:
        if isinstance(e, str) and "=" in e:
            k, v = e.split("=", 1)
            if KEEP_ENV.match(k):
                env[k] = v
    imp.environment = env
    ranks = []
    for i, d in enumerate(config.get("devices") or []):
        if not isinstance(d, dict):
            raise src.err(src.json_key_line("devices"), f"an object for devices[{i}]")
        ranks.append({"rank": int(d.get("rank", i)), "group": int(d.get("group", 0) or 0),
                      "pid": int(d.get("pid", -1)), "host": str(d.get("hostname", "")),
                      "device": int(d.get("device", -1)), "bus": str(d.get("device_hex", "")),
                      "name": str(d.get("device_info", "")).strip()})
    rows = []
    iter_times = []
    for i, e in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(e, dict):
            raise src.err(src.json_key_line("results"), f"an object for {where}")
        base = {}
        for key in ("size", "count"):
            v = _need(src, e, key, None, where, key, i)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise src.err(src.json_key_line(key, i), f"an integer '{key}' in {where}")
            base[key] = int(v)
        base["type"] = str(e.get("type", ""))
        base["redop"] = str(e.get("redop", ""))
        try:
            base["root"] = int(str(e.get("root", "-1")).strip())
        except ValueError:
            raise src.err(src.json_key_line("root", i), f"an integer 'root' in {where}") from None
        found = False
        for key, placement in (("out_of_place", "out-of-place"), ("in_place", "in-place")):
            body = e.get(key)
            if body is None:
                continue  # null: not measured (trace replay)
            if not isinstance(body, dict):
                raise src.err(src.json_key_line(key, i), f"an object for {where}.{key}")
            found = True
            row = dict(base, placement=placement)
            tkey = "time" if "time" in body else "cpu_time"
            for src_key, col in ((tkey, "time"), ("alg_bw", "algbw"), ("bus_bw", "busbw")):
                if src_key not in body:
                    raise src.err(src.json_key_line(key, i), f"key '{src_key}' in {where}.{key}")
                row[col] = _jnum(src, body[src_key], src_key, i)
            nw = body.get("nwrong")
            row["wrong"] = -1 if nw is None else int(_jnum(src, nw, "nwrong", i))
            stats = e.get(f"{key}_per_iter")
            if isinstance(stats, dict):
                for sk, col in (("min_us", "time_min"), ("max_us", "time_max"),
                                ("avg_us", "time_mean"), ("p50_us", "time_p50"),
                                ("p99_us", "time_p99"), ("cv_pct", "time_cv")):
                    if sk in stats:
                        row[col] = _jnum(src, stats[sk], sk, 0)
                times = stats.get("times_us")
                iter_times.append([float(x) for x in times] if isinstance(times, list) else None)
            rows.append(row)
        if not found:
            raise src.err(src.json_key_line("size", i),
                          f"'out_of_place' or 'in_place' figures in {where}")
    if not rows:
        raise src.err(src.json_key_line("results"), "at least one entry in 'results'")
    _fill(imp, coll, rows, ranks, {k: v for k, v in config.items() if k != "devices"}, opts)
    if iter_times and len(iter_times) == len(rows) and all(iter_times) and \
            len({len(t) for t in iter_times}) == 1:
        imp.tables["collective"]["iter_time_max"] = (iter_times, "us")
    imp.attrs["average_mode"] = _args_average(args)
    if isinstance(doc.get("nccl_version"), int):
        imp.attrs["nccl_version"] = nccl_version_text(doc["nccl_version"])
        imp.attrs["nccl_version_code"] = doc["nccl_version"]
    avg = doc.get("average_bus_bandwidth")
    if isinstance(avg, dict) and "bandwidth" in avg:
        imp.attrs["tool_avg_busbw"] = _jnum(src, avg["bandwidth"], "bandwidth", 0)
        if str(avg.get("okay")) == "false":
            imp.status = "failed"
    oob = doc.get("out_of_bounds")
    if isinstance(oob, dict):
        imp.attrs["tool_out_of_bounds"] = int(oob.get("count", -1))
        if str(oob.get("okay")) == "false" or int(oob.get("count", 0) or 0) > 0:
            imp.status = "failed"
    errs = [str(x) for x in (doc.get("errors") or []) if str(x).strip()]
    if errs:
        imp.attrs["tool_errors"] = errs
        imp.status = "failed"
    return imp
