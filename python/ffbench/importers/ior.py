"""IOR output: the default text report and the JSON summary (`-O summaryFormat=JSON
-O summaryFile=F`). One run per IOR test (TestID).

Text: `IOR-<version>: MPI Coordinated Test of Parallel I/O` first; `key : value` lines (Began,
Command line, Machine, then per test TestID, Path, FS and the Options section); the per-iteration
`Results:` table and the `Summary of all tests:` table are read by their header names (the second
StdDev belongs to the OPs group), so columns newer versions add are located and skipped;
`Finished` must be there (without it the output was cut short).
JSON: `tests[]` (Parameters, Options, Results: one object per access and iteration), `summary[]`
per operation, `Finished` at the end.
IOR's MiB/s are binary: bw (GB/s) = MiB/s x 2^20 / 1e9.
"""
import re

from ffbench.importers.common import (Imported, LOCAL_TIME_NOTE, file_mtime_iso, load_json, number,
                     parse_binary_size, parse_ctime, wrong_kind_hint)

MIB = 1 << 20
_BANNER = re.compile(r"^IOR-(\S+): MPI Coordinated Test of Parallel I/O")
_KV = re.compile(r"^([A-Za-z#][A-Za-z0-9 /()#._-]*?)\s*:\s?(.*)$")
ACCESSES = ("write", "read")

# Results: header name -> (key, cell kind)
RESULT_COLUMNS = {
    "access": ("phase", "str"), "bw(MiB/s)": ("bw_mib", "float"), "IOPS": ("ops_rate", "float"),
    "Latency(s)": ("lat_s", "float"), "block(KiB)": ("block_kib", "float"),
    "xfer(KiB)": ("xfer_kib", "float"), "open(s)": ("time_open", "float"),
    "wr/rd(s)": ("time_data", "float"), "close(s)": ("time_close", "float"),
    "total(s)": ("time", "float"), "iter": ("rep", "int"),
}
SUMMARY_COLUMNS = {
    "Operation": ("op", "str"), "Max(MiB)": ("bw_max", "float"), "Min(MiB)": ("bw_min", "float"),
    "Mean(MiB)": ("bw_mean", "float"), "Max(OPs)": ("ops_max", "float"),
    "Min(OPs)": ("ops_min", "float"), "Mean(OPs)": ("ops_mean", "float"),
    "Mean(s)": ("time_mean", "float"), "Test#": ("test", "int"), "#Tasks": ("tasks", "int"),
    "tPN": ("tpn", "int"), "reps": ("reps", "int"), "fPP": ("fpp", "int"),
    "segcnt": ("segments", "int"), "blksiz": ("block", "int"), "xsize": ("xfer", "int"),
    "aggs(MiB)": ("agg_mib", "float"), "API": ("api", "str"),
}


def parse(src, opts):
    if src.text.lstrip().startswith("{"):
        return parse_json(src, opts)
    return parse_text(src, opts)


def _cell(src, n, name, kind, tok):
    if kind == "str":
        return tok
    try:
        return int(tok) if kind == "int" else number(tok)
    except ValueError:
        raise src.err(n, f"{'an integer' if kind == 'int' else 'a number'} in column '{name}', "
                         f"got {tok!r}") from None


def _summary_names(names):
    """Header names with the two StdDev columns told apart (after Mean(MiB) / Mean(OPs))."""
    out, seen_ops = [], False
    for name in names:
        if name == "StdDev":
            out.append(("ops_std" if seen_ops else "bw_std", "float"))
            continue
        if name.endswith("(OPs)"):
            seen_ops = True
        out.append(SUMMARY_COLUMNS.get(name))
    return out


def _table_row(src, n, line, names, cols, hline):
    toks = line.split()
    if len(toks) != len(names):
        short = " (the row is cut short: truncated?)" if len(toks) < len(names) else ""
        raise src.err(n, f"{len(names)} columns as the header on line {hline} names, got "
                         f"{len(toks)}{short}")
    row = {}
    for name, col, tok in zip(names, cols, toks):
        if col is not None:
            row[col[0]] = _cell(src, n, name, col[1], tok)
    return row


def parse_text(src, opts):
    n0, first = src.first_content_line()
    m = _BANNER.match(first.strip())
    if not m:
        raise src.err(n0, "IOR's text output, starting 'IOR-<version>: MPI Coordinated Test of "
                          "Parallel I/O'" + wrong_kind_hint(src, "ior"))
    top = {"version": m.group(1)}
    tests, test, section = [], None, None
    header = None  # (names, cols, line) of the table being read
    summary, finished = [], None
    for n, line in src.numbered()[n0:]:
        s = line.strip()
        if not s:
            if section in ("options", "results_rows", "summary_rows"):
                section = None
            continue
        if section == "results_head":
            names = s.split()
            if "access" not in names or "total(s)" not in names or "bw(MiB/s)" not in names:
                raise src.err(n, "the Results header ('access  bw(MiB/s)  IOPS ... total(s)  "
                                 "iter')")
            header = (names, [RESULT_COLUMNS.get(x) for x in names], n)
            section = "results_dashes"
            continue
        if section == "results_dashes" and set(s) <= set("- "):
            section = "results_rows"
            continue
        if section in ("results_rows", "results_dashes") and s.split()[0] in ACCESSES:
            section = "results_rows"
            row = _table_row(src, n, s, *header)
            row["_line"] = n
            test["results"].append(row)
            continue
        if section == "summary_head":
            names = s.split()
            if "Operation" not in names or "Mean(MiB)" not in names:
                raise src.err(n, "the summary header ('Operation  Max(MiB)  Min(MiB)  Mean(MiB) "
                                 "...')")
            header = (names, _summary_names(names), n)
            section = "summary_rows"
            continue
        if section == "summary_rows" and s.split()[0] in ACCESSES:
            row = _table_row(src, n, s, *header)
            row["_line"] = n
            summary.append(row)
            continue
        if s.startswith("Results:"):
            if test is None:
                raise src.err(n, "a 'TestID : N' line before 'Results:'")
            section = "results_head"
            continue
        if s.startswith("Summary of all tests:"):
            section = "summary_head"
            continue
        if s.startswith("Options:"):
            section = "options"
            continue
        kv = _KV.match(s)
        if kv:
            key, value = kv.group(1).strip(), kv.group(2).strip()
            if key == "TestID":
                test = {"id": int(value) if value.lstrip("-").isdigit() else len(tests),
                        "kv": {}, "options": {}, "results": [], "line": n}
                tests.append(test)
                section = None
            elif key == "Finished":
                finished = value
            elif section == "options" and test is not None:
                test["options"][key] = value
            elif test is not None:
                test["kv"][key] = value
            else:
                top[key] = value
            continue
        # anything else (WARNING lines, verbose progress) is skipped
    last = len(src.lines)
    if not tests:
        raise src.err(last, "a 'TestID : N' section; truncated: the file ends before the first "
                            "test")
    if not summary and finished is None:
        raise src.err(last, "the 'Summary of all tests:' table and the 'Finished' line; "
                            "truncated: no summary")
    if finished is None:
        raise src.err(last, "a 'Finished : <date>' line after the summary; truncated: no "
                            "'Finished' line")
    if not src.ends_with_newline:
        raise src.err(last, f"a newline at the end of line {last}; truncated")
    out = []
    for t in tests:
        rows = [r for r in summary if r.get("test", t["id"]) == t["id"]]
        out.append(_build(src, top, t, t["results"], rows, "ior text", opts))
    return out


def _first_int(*values):
    for v in values:
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v == int(v):
            return int(v)
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v)
    return None


def _build(src, top, t, results, summary, fmt, opts):
    o = t["options"]
    kv = t["kv"]
    srow = summary[0] if summary else {}
    tasks = _first_int(srow.get("tasks"), o.get("tasks"), kv.get("numTasks"))
    block = _first_int(srow.get("block"), kv.get("blockSize"),
                       parse_binary_size(o.get("blocksize", "")))
    xfer = _first_int(srow.get("xfer"), kv.get("transferSize"),
                      parse_binary_size(o.get("xfersize", "")))
    segments = _first_int(srow.get("segments"), kv.get("segmentCount"), o.get("segments")) or 1
    nodes = _first_int(o.get("nodes")) or 1
    tpn = _first_int(srow.get("tpn"), o.get("clients per node"))
    if not tasks:
        raise src.err(t["line"], "the number of tasks ('tasks' option or the summary's #Tasks)")
    total_bytes = block * segments * tasks if block else parse_binary_size(
        o.get("aggregate filesize", "")) or 0
    version = top.get("version") or top.get("Version")
    imp = Imported("ior", "storage", "IOR", version, fmt)
    imp.command_line = top.get("Command line", "")
    if not imp.command_line:
        imp.command_line_note = "not in the file"
    began = parse_ctime(kv.get("StartTime") or top.get("Began", ""))
    imp.date = began or file_mtime_iso(src.path)
    imp.date_source = f"IOR's StartTime/Began ({LOCAL_TIME_NOTE})" if began else \
        "the file's modification time"
    machine = str(top.get("Machine", "")).split()
    host = machine[1] if len(machine) >= 2 else ""
    imp.nranks, imp.nnodes = tasks, nodes
    imp.ranks_per_node = str(tpn) if tpn else ""
    if host and nodes == 1:
        imp.hosts = [host] * tasks
    elif host:
        imp.hosts = [host]
        imp.hosts_note = (f"IOR names only rank 0's machine ({host}); the other {nodes - 1} "
                          f"node(s) are not in the file")
    random = str(o.get("ordering in a file", "")).startswith("random") or \
        bool(kv.get("randomOffset") not in (None, 0, "0"))
    fpp = _first_int(srow.get("fpp"), kv.get("filePerProc"))
    if fpp is None:
        fpp = 1 if str(o.get("access", "")).startswith("file-per-process") else 0
    api = srow.get("api") or o.get("api") or kv.get("api") or ""
    imp.options = {"transfer": xfer, "block": block, "segments": segments, "tasks": tasks,
                   "nodes": nodes, "pattern": "random" if random else "seq",
                   "file_per_process": int(fpp), "api": api,
                   "repetitions": _first_int(o.get("repetitions"), srow.get("reps"))}
    imp.attrs.update(workload="seq", engine=str(api).lower(), test_id=t["id"],
                     ior_options={k: v for k, v in o.items()})
    for key, attr in (("Path", "test_path"), ("FS", "fs_summary"), ("Capacity", "fs_capacity"),
                      ("Used Capacity", "fs_used")):
        if kv.get(key):
            imp.attrs[attr] = str(kv[key])
    if o.get("test filename"):
        imp.attrs["dir"] = str(o["test filename"])
    if getattr(opts, "fs_type", None):
        imp.attrs["fs_type"] = opts.fs_type
    phases = []
    if results:
        seen = {}
        for r in results:
            ph = r.get("phase")
            rep = r.get("rep")
            if rep is None:
                rep = seen.get(ph, 0)
            seen[ph] = seen.get(ph, 0) + 1
            phases.append({"phase": ph, "rep": rep, "bw_mib": r["bw_mib"],
                           "ops_rate": r.get("ops_rate", float("nan")),
                           "time": r["time"], "time_data": r.get("time_data", float("nan")),
                           "time_open": r.get("time_open", float("nan")),
                           "time_close": r.get("time_close", float("nan")),
                           "lat_mean": r.get("lat_s", float("nan")) * 1e6})
    else:
        imp.attrs["phases_from"] = "the summary (mean over repetitions): no per-iteration results"
        for r in summary:
            phases.append({"phase": r["op"], "rep": 0, "bw_mib": r["bw_mean"],
                           "ops_rate": r.get("ops_mean", float("nan")),
                           "time": r.get("time_mean", float("nan")),
                           "time_data": float("nan"), "time_open": float("nan"),
                           "time_close": float("nan"), "lat_mean": float("nan")})
    if not phases:
        raise src.err(t["line"], f"results for test {t['id']} (a Results table or summary rows)")
    ops = total_bytes // xfer if xfer else -1
    nan = float("nan")
    imp.tables["storage_phases"] = {
        "workload": (["seq"] * len(phases), "1"),
        "phase": ([p["phase"] for p in phases], "1"),
        "rep": ([int(p["rep"]) for p in phases], "1"),
        "ranks": ([tasks] * len(phases), "count"),
        "bytes": ([int(total_bytes)] * len(phases), "B"),
        "ops": ([int(ops)] * len(phases), "count"),
        "time": ([p["time"] for p in phases], "s"),
        "time_data": ([p["time_data"] for p in phases], "s"),
        "time_open": ([p["time_open"] for p in phases], "s"),
        "time_close": ([p["time_close"] for p in phases], "s"),
        "bw": ([p["bw_mib"] * MIB / 1e9 for p in phases], "GB/s"),
        "bw_last_done": ([p["bw_mib"] * MIB / 1e9 for p in phases], "GB/s"),
        "bw_first_done": ([nan] * len(phases), "GB/s"),
        "ops_rate": ([p["ops_rate"] for p in phases], "ops/s"),
        "main_op": ([p["phase"] for p in phases], "1"),
        "lat_mean": ([p["lat_mean"] for p in phases], "us"),
    }
    if summary:
        g = MIB / 1e9
        imp.tables["ior_summary"] = {
            "op": ([r["op"] for r in summary], "1"),
            "test": ([int(r.get("test", t["id"])) for r in summary], "1"),
            "bw_max": ([r.get("bw_max", nan) * g for r in summary], "GB/s"),
            "bw_min": ([r.get("bw_min", nan) * g for r in summary], "GB/s"),
            "bw_mean": ([r.get("bw_mean", nan) * g for r in summary], "GB/s"),
            "bw_std": ([r.get("bw_std", nan) * g for r in summary], "GB/s"),
            "ops_max": ([r.get("ops_max", nan) for r in summary], "ops/s"),
            "ops_min": ([r.get("ops_min", nan) for r in summary], "ops/s"),
            "ops_mean": ([r.get("ops_mean", nan) for r in summary], "ops/s"),
            "ops_std": ([r.get("ops_std", nan) for r in summary], "ops/s"),
            "time_mean": ([r.get("time_mean", nan) for r in summary], "s"),
        }
    imp.attrs["lat_mean_note"] = ("lat_mean = IOR's Latency column: the data-phase time / the "
                                  "transfers each rank made (a mean, no percentiles)")
    return imp


def _jfloat(src, v, key, nth):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise src.err(src.json_key_line(key, nth), f"a number for '{key}', got {v!r}")
    try:
        return number(v)
    except ValueError:
        raise src.err(src.json_key_line(key, nth), f"a number for '{key}', got {v!r}") from None


def parse_json(src, opts):
    doc = load_json(src, "IOR's JSON summary", "ior")
    if "tests" not in doc or not ("Version" in doc or "summary" in doc):
        raise src.err(1, "IOR's JSON summary (keys 'Version', 'tests', 'summary')"
                         + wrong_kind_hint(src, "ior"))
    tests = doc["tests"]
    if not isinstance(tests, list) or not tests:
        raise src.err(src.json_key_line("tests"), "a non-empty list for 'tests'")
    if "Finished" not in doc:
        raise src.err(src.line_of_offset(len(src.text.rstrip())),
                      "key 'Finished' at the end: the run did not finish (truncated: no "
                      "'Finished')")
    summary = []
    access_seen = 0
    for i, s in enumerate(doc.get("summary") or []):
        if not isinstance(s, dict) or "operation" not in s:
            raise src.err(src.json_key_line("summary"), f"an object with 'operation' for "
                                                         f"summary[{i}]")
        row = {"op": str(s["operation"]), "test": _first_int(s.get("TestID")) or 0}
        for key, col in (("bwMaxMIB", "bw_max"), ("bwMinMIB", "bw_min"), ("bwMeanMIB", "bw_mean"),
                         ("bwStdMIB", "bw_std"), ("OPsMax", "ops_max"), ("OPsMin", "ops_min"),
                         ("OPsMean", "ops_mean"), ("OPsSD", "ops_std"),
                         ("MeanTime", "time_mean")):
            if key in s:
                row[col] = _jfloat(src, s[key], key, i)
        for key, col in (("numTasks", "tasks"), ("tasksPerNode", "tpn"),
                         ("segmentCount", "segments"), ("blockSize", "block"),
                         ("transferSize", "xfer"), ("filePerProc", "fpp"),
                         ("repetitions", "reps")):
            if key in s:
                row[col] = _first_int(s[key])
        if "API" in s:
            row["api"] = str(s["API"])
        summary.append(row)
    top = {"version": str(doc.get("Version", "")), "Command line": str(doc.get("Command line", "")),
           "Machine": str(doc.get("Machine", "")), "Began": str(doc.get("Began", ""))}
    out = []
    for i, t in enumerate(tests):
        if not isinstance(t, dict):
            raise src.err(src.json_key_line("tests"), f"an object for tests[{i}]")
        params = t.get("Parameters") if isinstance(t.get("Parameters"), dict) else {}
        options = t.get("Options") if isinstance(t.get("Options"), dict) else {}
        tid = _first_int(t.get("TestID"), params.get("testID"))
        tid = i if tid is None else tid
        kv = {"StartTime": str(t.get("StartTime", "")), "Path": str(t.get("Path", "")),
              "randomOffset": params.get("randomOffset", 0)}
        for key in ("blockSize", "transferSize", "segmentCount", "numTasks", "filePerProc",
                    "api"):
            if key in params:
                kv[key] = params[key]
        if t.get("Capacity"):
            kv["Capacity"] = str(t["Capacity"])
        if t.get("Used Capacity"):
            kv["Used Capacity"] = str(t["Used Capacity"])
        res = t.get("Results", [])
        if not isinstance(res, list):
            raise src.err(src.json_key_line("Results", i), f"a list for tests[{i}].Results")
        flat = []
        for item in res:
            flat += item if isinstance(item, list) else [item]
        results, seen = [], {}
        for r in flat:
            if not isinstance(r, dict) or "access" not in r:
                raise src.err(src.json_key_line("Results", i), f"objects with 'access' in "
                                                                f"tests[{i}].Results")
            ph = str(r["access"])
            nth = access_seen
            access_seen += 1
            row = {"phase": ph, "rep": seen.get(ph, 0)}
            seen[ph] = seen.get(ph, 0) + 1
            for key, col in (("bwMiB", "bw_mib"), ("iops", "ops_rate"), ("latency", "lat_s"),
                             ("openTime", "time_open"), ("wrRdTime", "time_data"),
                             ("closeTime", "time_close"), ("totalTime", "time")):
                if key in r:
                    row[col] = _jfloat(src, r[key], key, nth)
            for need in ("bw_mib", "time"):
                if need not in row:
                    raise src.err(src.json_key_line("access", nth),
                                  f"'{'bwMiB' if need == 'bw_mib' else 'totalTime'}' in "
                                  f"tests[{i}].Results[{len(results)}]")
            results.append(row)
        opts_text = {str(k): str(v) for k, v in options.items()}
        if "tasks" not in opts_text and params.get("numTasks"):
            opts_text["tasks"] = str(params["numTasks"])
        test = {"id": tid, "kv": kv, "options": opts_text, "results": results,
                "line": src.json_key_line("TestID", i)}
        rows = [r for r in summary if r.get("test", tid) == tid]
        out.append(_build(src, top, test, results, rows, "ior json", opts))
    return out
