"""fio `--output-format=json` (and json+): one run per file, one storage_phases row per job
entry and direction (read, write, trim) that moved data.

Keys read: "fio version", "timestamp", "global options", jobs[].jobname / groupid / error /
"job options" / read|write|trim {io_bytes, bw_bytes, iops, runtime (ms), total_ios,
clat_ns {mean, max, percentile {"50.000000", "99.000000", "99.900000"}}}; old fio (2.x) "clat" in
us is read the same way. Keys fio adds later are ignored. fio's JSON has no command line and no
host name: the job options are kept (attr tool_job_options) and the host is the importing one
unless --hosts says otherwise. With group_reporting, a job's entry stands for its numjobs
processes (ranks = numjobs); without, every process has its own entry (ranks = 1 each).
"""
from ffbench.importers.common import (Imported, iso_epoch, file_mtime_iso, load_json, parse_binary_size,
                     wrong_kind_hint)

DIRECTIONS = ("read", "write", "trim")


def _num(src, v, key, nth=0):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise src.err(src.json_key_line(key, nth), f"a number for '{key}', got {v!r}")
    return float(v)


def _pct(clat, p, per_us):
    pct = clat.get("percentile")
    if not isinstance(pct, dict):
        return float("nan")
    for k, v in pct.items():
        try:
            if abs(float(k) - p) < 1e-9 and isinstance(v, (int, float)):
                return float(v) / per_us
        except ValueError:
            continue
    return float("nan")


def parse(src, opts):
    doc = load_json(src, "fio --output-format=json output", "fio")
    if "fio version" not in doc:
        raise src.err(1, "fio --output-format=json output (key 'fio version')"
                         + wrong_kind_hint(src, "fio"))
    jobs = doc.get("jobs")
    if not isinstance(jobs, list):
        raise src.err(src.json_key_line("jobs") if '"jobs"' in src.text else
                      src.line_of_offset(len(src.text.rstrip())),
                      "a list for key 'jobs'; truncated: no jobs" if "jobs" not in doc else
                      "a list for key 'jobs'")
    version = str(doc["fio version"]).removeprefix("fio-")
    imp = Imported("fio", "storage", "fio", version, "fio json")
    imp.command_line_note = ("not in the file (fio's JSON has no command line; the job options "
                             "are in attr tool_job_options)")
    if isinstance(doc.get("timestamp"), (int, float)) and not isinstance(doc["timestamp"], bool):
        imp.date, imp.date_source = iso_epoch(doc["timestamp"]), "fio's timestamp"
    else:
        imp.date, imp.date_source = file_mtime_iso(src.path), "the file's modification time"
    glob = doc.get("global options") if isinstance(doc.get("global options"), dict) else {}
    names = [str(j.get("jobname", "")) for j in jobs if isinstance(j, dict)]
    rows, job_opts, failed = [], {}, False
    for i, j in enumerate(jobs):
        if not isinstance(j, dict):
            raise src.err(src.json_key_line("jobs"), f"an object for jobs[{i}]")
        name = str(j.get("jobname", f"job{i}"))
        o = dict(glob)
        o.update(j.get("job options") if isinstance(j.get("job options"), dict) else {})
        job_opts[name] = o
        if j.get("error"):
            failed = True
        numjobs = int(str(o.get("numjobs", "1")) or 1)
        ranks = numjobs if numjobs > 1 and names.count(name) == 1 else 1
        rw = str(o.get("rw", o.get("readwrite", "read")))
        pattern = "random" if rw.startswith("rand") else "seq"
        for d in DIRECTIONS:
            st = j.get(d)
            if not isinstance(st, dict):
                continue
            io_bytes = st.get("io_bytes", 0)
            if not isinstance(io_bytes, (int, float)) or io_bytes <= 0:
                continue
            for need in ("bw_bytes", "iops", "runtime"):
                if need not in st:
                    raise src.err(src.json_key_line("jobname", i),
                                  f"key '{need}' in jobs[{i}].{d}")
            clat, per_us = st.get("clat_ns"), 1e3  # ns; fio 2.x: "clat" in us
            if not isinstance(clat, dict):
                clat, per_us = st.get("clat") if isinstance(st.get("clat"), dict) else {}, 1.0
            lat = st.get("lat_ns") if isinstance(st.get("lat_ns"), dict) else {}
            runtime_ms = _num(src, st["runtime"], "runtime", i)
            rows.append({
                "job": name, "phase": d, "ranks": ranks, "pattern": pattern,
                "bytes": int(io_bytes),
                "ops": int(st.get("total_ios", 0) or 0),
                "time": runtime_ms / 1e3,
                "bw": _num(src, st["bw_bytes"], "bw_bytes", i) / 1e9,
                "ops_rate": _num(src, st["iops"], "iops", i),
                "lat_mean": float(clat.get("mean", float("nan"))) / per_us,
                "lat_p50": _pct(clat, 50.0, per_us), "lat_p99": _pct(clat, 99.0, per_us),
                "lat_p999": _pct(clat, 99.9, per_us),
                "lat_max": float(clat.get("max", float("nan"))) / per_us,
                "lat_total_mean": float(lat.get("mean", float("nan"))) / 1e3,
                "bs": o.get("bs", o.get("blocksize", "4k")),
                "engine": str(o.get("ioengine", "psync")),
                "qd": int(str(o.get("iodepth", "1")) or 1),
                "direct": int(str(o.get("direct", "0")) or 0),
            })
    if not rows:
        raise src.err(src.json_key_line("jobs"), "at least one job that moved data (io_bytes > 0 "
                                                 "in read, write or trim)")
    reps = {}
    for r in rows:
        r["rep"] = reps.get(r["phase"], 0)
        reps[r["phase"]] = r["rep"] + 1
    nan = float("nan")
    total_ranks = sum(max(r["ranks"] for r in rows if r["job"] == n) for n in dict.fromkeys(
        r["job"] for r in rows))
    imp.nranks = max(r["ranks"] for r in rows)
    imp.tables["storage_phases"] = {
        "workload": (["seq"] * len(rows), "1"),
        "phase": ([r["phase"] for r in rows], "1"),
        "job": ([r["job"] for r in rows], "1"),
        "rep": ([r["rep"] for r in rows], "1"),
        "ranks": ([r["ranks"] for r in rows], "count"),
        "bytes": ([r["bytes"] for r in rows], "B"),
        "ops": ([r["ops"] for r in rows], "count"),
        "time": ([r["time"] for r in rows], "s"),
        "bw": ([r["bw"] for r in rows], "GB/s"),
        "bw_last_done": ([r["bw"] for r in rows], "GB/s"),
        "bw_first_done": ([nan] * len(rows), "GB/s"),
        "ops_rate": ([r["ops_rate"] for r in rows], "ops/s"),
        "main_op": ([r["phase"] for r in rows], "1"),
        "lat_mean": ([r["lat_mean"] for r in rows], "us"),
        "lat_p50": ([r["lat_p50"] for r in rows], "us"),
        "lat_p99": ([r["lat_p99"] for r in rows], "us"),
        "lat_p999": ([r["lat_p999"] for r in rows], "us"),
        "lat_max": ([r["lat_max"] for r in rows], "us"),
        "lat_total_mean": ([r["lat_total_mean"] for r in rows], "us"),
    }
    first = rows[0]
    patterns = {r["pattern"] for r in rows}
    imp.options = {"transfer": parse_binary_size(str(first["bs"]).split(",")[0]) or str(first["bs"]),
                   "pattern": patterns.pop() if len(patterns) == 1 else "mixed",
                   "engine": first["engine"], "qd": first["qd"], "odirect": first["direct"],
                   "jobs": len(job_opts), "processes": total_ranks}
    imp.attrs.update(workload="seq", engine=first["engine"], qd=first["qd"],
                     odirect=first["direct"], tool_job_options=job_opts,
                     lat_note="lat_* = fio's completion latency (clat) statistics; "
                              "lat_total_mean = its lat_ns mean (submission + completion)")
    directory = first_opt(job_opts, "directory") or first_opt(job_opts, "filename")
    if directory:
        imp.attrs["dir"] = directory
    if getattr(opts, "fs_type", None):
        imp.attrs["fs_type"] = opts.fs_type
    if failed:
        imp.status = "failed"
    return [imp]


def first_opt(job_opts, key):
    for o in job_opts.values():
        if o.get(key):
            return str(o[key])
    return ""
