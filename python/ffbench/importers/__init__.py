"""`ffbench import KIND FILE... --output R.h5 [--label L]`: other tools' results as ffbench runs.

KIND: nccl-tests (text table or -J JSON, any *_perf program), osu (osu_* collective latency
tables, -f/-z/-c columns included), ior (text report or -O summaryFormat=JSON summary), fio
(--output-format=json). Every FILE is parsed before anything is written; then all runs are
appended to R.h5 in one commit (results/SCHEMA.md, h5io), so a bad file leaves R.h5 untouched.
An unparseable, truncated or wrong-KIND file gives one line `ffbench import: FILE:LINE:
expected ...` and exit status 2. Full description with examples: docs/interop.md.

Mapping into results/SCHEMA.md
  nccl-tests, osu -> kind "collective", table `collective`, one row per (size, placement[, type]):
      size (B), count, type, redop, placement, time (us), algbw, busbw (GB/s), wrong (count; -1 not
      validated), and where the tool has them root, time_min, time_max, time_mean, time_p50,
      time_p90, time_p99 (us), time_cv (%), iterations, iter_time_max (us, rows x iterations).
      nccl-tests: every number as printed (algbw, busbw from the file); ranks table from its
      `#  Rank` lines / config.devices (device "GPU<n> <name> [<bus id>]").
      OSU: time = Avg Latency, time_min/time_max = Min/Max Latency (-f), algbw = size / time,
      busbw = algbw x the collective's factor with --ranks N (OSU prints no rank count: without
      --ranks, busbw is NaN and nranks 0); wrong = 0 Pass / 1 Fail (-c), -1 when not validated.
      attrs: program ("nccl-tests all_reduce_perf", "osu_allreduce"), backend ("nccl", "mpi"),
      collective, busbw_factor, average_mode, nccl_version (nccl-tests), osu_benchmark.
  ior, fio -> kind "storage", table `storage_phases`, workload "seq" (storage_bench's name for
      the IOR pattern; the offset order is options.pattern "seq"|"random"), phase = the
      operation (write, read, trim), rep, ranks (IOR numTasks; fio numjobs), bytes, ops, time (s),
      bw = bw_last_done (GB/s: IOR MiB/s x 2^20 / 1e9; fio bw_bytes / 1e9), ops_rate, main_op,
      lat_mean (us; IOR's Latency column), fio also lat_p50/p99/p999/max from clat_ns;
      IOR also time_data/time_open/time_close and table `ior_summary` (its summary statistics).
      attrs: program ("ior", "fio"), workload, engine, options (transfer, block, pattern, ...).
  every run: the common provenance attrs (h5io.provenance) with program, kind "storage" or
      "collective", label (--label, default "import:<file name>"), date (the tool's own date when
      the file has one, else the file's modification time; date_source says which),
      command_line (the tool's, when the file has it; else "" and command_line_note says why),
      hosts / nranks / nnodes / ranks_per_node (from the file; --hosts; else the importing host),
      cpu_model (--cpu-model; the importing host's when the run's hosts are this host; else
      "unknown ..."), status ("complete", "failed" when the tool reported wrong results),
      mpi_library_version / simd_level "n/a (imported)", environment (nccl-tests JSON: NCCL_*,
      OMPI_MCA_*, SLURM job ids), and: imported = 1, imported_from (absolute path),
      imported_format, imported_sha256, imported_date, import_command_line, tool, tool_version.
"""
import hashlib
import os
import shlex
import socket

from ffbench.data import h5io
from ffbench.errors import UsageError
from ffbench.importers import fio
from ffbench.importers import ior
from ffbench.importers import nccl_tests
from ffbench.importers import osu
from ffbench.importers.common import json_text, read_source

PARSERS = {"nccl-tests": nccl_tests.parse, "osu": osu.parse, "ior": ior.parse, "fio": fio.parse}
KINDS = tuple(PARSERS)


def _hosts_option(text, nranks):
    hosts = [h.strip() for h in str(text).split(",") if h.strip()]
    if not hosts:
        raise UsageError(f"--hosts {text!r}: expected host names separated by commas")
    if len(hosts) == 1 and nranks > 1:
        return hosts * nranks
    if nranks and len(hosts) != nranks:
        raise UsageError(f"--hosts: {len(hosts)} names for {nranks} ranks; give one name (every "
                         f"rank) or one per rank")
    return hosts


def _per_node(hosts):
    counts = {}
    for h in hosts:
        counts[h] = counts.get(h, 0) + 1
    per = list(counts.values())
    return len(counts), (str(per[0]) if len(set(per)) == 1 else ",".join(map(str, per)))


def build_attrs(imp, path, sha, args, argv):
    """The full attrs of one imported run: provenance + what the file says + import facts."""
    this = socket.gethostname()
    label = args.label if args.label is not None else f"import:{os.path.basename(path)}"
    attrs = h5io.provenance(imp.program, imp.kind, argv=[], options=imp.options, label=label)
    nranks = imp.nranks
    if args.hosts:
        hosts = _hosts_option(args.hosts, nranks)
        hosts_source = "--hosts"
    elif imp.hosts:
        hosts, hosts_source = list(imp.hosts), "the file"
    else:
        hosts = [this] * max(nranks, 1)
        hosts_source = "the importing host (the file names none)"
    nnodes, rpn = _per_node(hosts)
    if imp.nnodes:
        nnodes = max(imp.nnodes, nnodes) if hosts_source == "the file" else nnodes
    if imp.ranks_per_node and hosts_source == "the file" and len(hosts) != nranks:
        rpn = imp.ranks_per_node
    if args.cpu_model:
        cpu, cpu_source = args.cpu_model, "--cpu-model"
    elif set(hosts) <= {this}:
        cpu, cpu_source = attrs["cpu_model"], "the importing host (the run's hosts are this host)"
    else:
        cpu = f"unknown (not in the {imp.tool} output; give --cpu-model)"
        cpu_source = "none"
    attrs.update({
        "command_line": imp.command_line,
        "hosts": hosts,
        "nranks": int(nranks),
        "nnodes": int(nnodes),
        "ranks_per_node": rpn,
        "cpu_model": cpu,
        "mpi_library_version": f"n/a (imported from {imp.tool})",
        "simd_level": "n/a (imported)",
        "environment": json_text(imp.environment),
        "status": imp.status,
        "imported": 1,
        "imported_from": os.path.abspath(path),
        "imported_format": imp.format,
        "imported_sha256": sha,
        "imported_date": attrs["date"],
        "import_command_line": " ".join(shlex.quote(a) for a in argv),
        "tool": imp.tool,
        "tool_version": imp.tool_version,
        "hosts_source": hosts_source,
        "cpu_model_source": cpu_source,
    })
    if imp.date:
        attrs["date"] = imp.date
    attrs["date_source"] = imp.date_source or "the time of the import"
    if imp.command_line_note:
        attrs["command_line_note"] = imp.command_line_note
    if imp.hosts_note and hosts_source == "the file":
        attrs["hosts_note"] = imp.hosts_note
    for k, v in imp.attrs.items():
        attrs[k] = json_text(v) if isinstance(v, dict) else v
    return attrs


def parse_files(kind, paths, args, argv):
    """[(path, attrs, tables, Imported)] for every run of every file; ParseError on the first
    bad file."""
    out = []
    for path in paths:
        src = read_source(path)
        sha = hashlib.sha256(src.text.encode("utf-8")).hexdigest()
        for imp in PARSERS[kind](src, args):
            tables = dict(imp.tables)
            if imp.ranks_table:
                ranks = dict(imp.ranks_table)
                if args.hosts:
                    hosts = _hosts_option(args.hosts, len(ranks["rank"][0]))
                    nodes = {}
                    for h in hosts:
                        nodes.setdefault(h, len(nodes))
                    ranks["host"] = (hosts, "1")
                    ranks["node"] = ([nodes[h] for h in hosts], "1")
                tables["ranks"] = ranks
            out.append((path, build_attrs(imp, path, sha, args, argv), tables, imp))
    return out


def append_all(output, runs):
    """Append every (attrs, tables) to `output` in one commit; returns the run ids."""
    append_runs = getattr(h5io, "append_runs", None)
    if append_runs is not None:
        return append_runs(output, runs)
    for _attrs, tables in runs:
        h5io._check_tables(tables)
    if not hasattr(h5io, "appending"):  # the writer without a multi-run commit: one run at a time
        return [h5io.append_run(output, attrs, tables) for attrs, tables in runs]
    ids = []
    with h5io.appending(output) as app:
        for attrs, tables in runs:
            rid, group = app.new_run()
            h5io._write_run(group, attrs, tables)
            ids.append(rid)
    return ids


