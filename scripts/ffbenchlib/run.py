"""`ffbench run CONFIG`: expand a sweep config into points, launch them, collect one HDF5 file.

Each point writes to its own file under <results dir>/tmp/<output stem>/points/ and is then merged
into the results file atomically (merge.merge_files), so a killed sweep loses at most the point in
flight and never corrupts the file. A point's label is NAME@KEY (KEY: hash of program, arguments,
launcher, environment and shape); a rerun skips every point whose key is in the file with status
"complete". Programs that are not built, and points that need a GPU on a host without one, are
skipped with a one-line reason. Before any point runs (and in a dry run), every program is asked
whether it takes its arguments (`PROGRAM ARGS --check-args`, one process each): a refusal stops
the config with the key and the program's own error line, which is also what a failed point's
report quotes (not mpirun's closing banner).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from . import compare, coverage, h5io, launchers, merge
from . import config as configmod
from .cli import UsageError
from .results import complete_keys, repo_root

DEFAULT_REFERENCE = "configs/reference/fire-flyer-2.yaml"
LOG_HEADER = "ffbench: command: "


def fmt_duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def work_dir(output):
    """<dir of output>/tmp/<stem>/ : per-point files and logs (results/tmp/ is git-ignored)."""
    out = os.path.abspath(output)
    stem = os.path.splitext(os.path.basename(out))[0]
    return os.path.join(os.path.dirname(out), "tmp", stem)


def default_output(sweep):
    return sweep.output or os.path.join("results", f"{sweep.name}.h5")


def _fmt_size(n):
    n = int(n)
    for suffix, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            v = n / mult
            return f"{v:.0f} {suffix}" if v == int(v) else f"{v:.1f} {suffix}"
    return f"{n} B"


def summarize_file(path):
    """A short 'measured' summary of the run(s) in a per-point file."""
    try:
        runs = h5io.read_runs(path)
    except Exception:  # noqa: BLE001 - a summary must never break the sweep
        return ""
    cross = [r for r in runs if r.attrs.get("kind") == "crosscheck"]
    parts = []
    for run in cross or runs:  # a crosscheck's table sums up the storage_bench runs beside fio
        text = _run_summary(run)
        if text:
            parts.append(text)
        if run.attrs.get("status") not in (None, "complete"):
            parts.append(f"status {run.attrs.get('status')}")
    return "; ".join(parts)


def _run_summary(run):
    t = run.tables
    if "collective" in t and len(t["collective"].get("busbw", [])):
        c = t["collective"]
        i = int(c["busbw"].argmax())
        return f"peak busbw {c['busbw'][i]:.2f} GB/s at {_fmt_size(c['size'][i])} (measured)"
    if "crosscheck" in t:
        c = t["crosscheck"]
        items = [f"{c['case'][j]} {c['storage_bench_bw'][j]:.2f} vs fio {c['fio_bw'][j]:.2f} GB/s"
                 for j in range(len(c.get("case", [])))]
        return ", ".join(items) + " (measured)" if items else ""
    if "ddp" in t and len(t["ddp"].get("step_time", [])):
        d = t["ddp"]
        items = [f"{d['backend'][j]} {1e3 * d['step_time'][j]:.1f}"
                 for j in range(len(d["step_time"]))]
        return "step time " + ", ".join(items) + " ms (measured)"
    if "storage_phases" in t:
        s = t["storage_phases"]
        items = []
        for j in range(len(s.get("phase", []))):
            if s.get("rep") is not None and int(s["rep"][j]) > 0:
                continue
            bw = s["bw"][j] if "bw" in s else float("nan")
            rate = s["ops_rate"][j] if "ops_rate" in s else float("nan")
            if bw == bw and bw > 0:
                items.append(f"{s['phase'][j]} {bw:.2f} GB/s")
            elif rate == rate:
                items.append(f"{s['phase'][j]} {rate:.0f} ops/s")
        return ", ".join(items[:5]) + " (measured)" if items else ""
    for tname, table in t.items():
        units = run.units.get(tname, {})
        gbs = [c for c, u in units.items() if u == "GB/s" and getattr(table[c], "ndim", 1) == 1
               and len(table[c])]
        if gbs:
            return f"{tname}.{gbs[0]} max {max(table[gbs[0]]):.2f} GB/s (measured)"
    return ""


def _log_lines(path):
    try:
        with open(path, errors="replace") as fh:
            return [ln.rstrip() for ln in fh.read().replace("\0", "").splitlines()
                    if ln.strip() and not ln.startswith(LOG_HEADER)]
    except OSError:
        return []


def _tail(path, lines=3):
    return _log_lines(path)[-lines:]


def _without_banners(lines):
    """The lines outside Open MPI's boxed messages (between lines of dashes), e.g. its closing
    "Primary job terminated normally, but 1 process returned a non-zero exit code" banner."""
    out, boxed = [], False
    for ln in lines:
        if re.fullmatch(r"-{20,}", ln.strip()):
            boxed = not boxed
        elif not boxed:
            out.append(ln)
    return out


def program_line(program, lines, word="error"):
    """The program's own line among `lines`: ffbench programs print "PROGRAM: error: ...",
    "PROGRAM: rank N: error: ...", "PROGRAM: skipped: ..." or "PROGRAM: ..." (storage_bench), and
    the watchdog "ffbench watchdog: ..."; the first that contains `word`, else the last of them,
    else None."""
    mine = re.compile(rf"^(?:{re.escape(os.path.basename(program))}(?::| \()|ffbench watchdog:)")
    own = [ln.strip() for ln in lines if mine.match(ln.strip())]
    return next((ln for ln in own if word in ln), own[-1] if own else None)


def point_summary(log_path, program, word="error", lines=2):
    """What a failed (or skipped) point's report quotes: the program's own line, else the log's
    last lines without Open MPI's banners."""
    content = _log_lines(log_path)
    line = program_line(program, content, word)
    if line:
        return line
    return " | ".join((_without_banners(content) or content)[-lines:])


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM if ffbench dies (even by SIGKILL), so no orphaned
    mpirun keeps running and writing after a killed sweep (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _kill_group(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


class SweepContext:
    def __init__(self, args, sweep):
        self.args = args
        self.sweep = sweep
        self.launcher_name = args.launcher or sweep.launcher
        self.output = args.output or default_output(sweep)
        self.bin_dir = launchers.find_bin_dir(args.bin, sweep.bin)
        self.work = work_dir(self.output)
        self.only = re.compile(args.only) if args.only else None
        self.coverage = None   # coverage.Coverage of the selected points (plan_coverage)
        self.ref_path = None


def select_points(ctx):
    points = ctx.sweep.points
    if ctx.only:
        points = [p for p in points if ctx.only.search(p.name)]
        if not points:
            raise UsageError(f"--only {ctx.args.only!r}: matches none of the {len(ctx.sweep.points)} "
                             f"points (ffbench run CONFIG --dry-run lists them)")
    return points


def static_skip_reason(ctx, point, launcher=None):
    """Why a point cannot run here, decided before launching (or None)."""
    if point.launchers and ctx.launcher_name not in point.launchers:
        return f"only for --launcher {'/'.join(point.launchers)}"
    if "gpu" in point.requires and ctx.launcher_name != "slurm":
        ok, why = launchers.gpu_available()
        if not ok:
            return why
    missing = launchers.point_missing_reason(ctx.bin_dir, point)
    if missing:
        return missing
    if launcher is not None:
        reason = launcher.unsupported(point)
        if reason:
            return reason
    return None


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def recover_finished(ctx):
    """Merge per-point files a killed sweep finished but did not merge (complete runs only)."""
    pdir = os.path.join(ctx.work, "points")
    if not os.path.isdir(pdir):
        return 0
    recovered = 0
    for f in sorted(os.listdir(pdir)):
        path = os.path.join(pdir, f)
        if not f.endswith(".h5"):
            if ".tmp." in f:
                _remove(path)  # a writer's half-written copy (never renamed: never valid)
            continue
        try:
            runs = h5io.read_runs(path)
        except Exception:  # noqa: BLE001 - unreadable leftovers are dropped
            runs = []
        if runs and all(r.attrs.get("status") == "complete" for r in runs):
            added, _ = merge.merge_files(ctx.output, [path])
            recovered += added
        os.unlink(path)
    return recovered


def run_point(ctx, launcher, point, label, log_path):
    """Launch one point; return (state, seconds, message). state: complete|failed|skipped."""
    key = configmod.key_of_label(label)
    pdir = os.path.join(ctx.work, "points")
    os.makedirs(pdir, exist_ok=True)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    point_file = os.path.join(pdir, f"{key}.h5")
    if os.path.exists(point_file):
        os.unlink(point_file)
    tmpdir = None
    if point.storage_tmp:
        tmpdir = tempfile.mkdtemp(prefix="ffbench-storage-")
        os.chmod(tmpdir, 0o755)
    args = launchers.expand_args(point.args, ctx.bin_dir, tmpdir)
    args += ["--output", point_file, "--label", label]
    program = launchers.point_program(ctx.bin_dir, point)
    cmd = launcher.command(point, program, args)
    env = launchers.mpi_env(point.env)
    start = time.time()
    try:
        with open(log_path, "w") as log:
            log.write(f"{LOG_HEADER}{launchers.quote(cmd)}\n")
            log.flush()
            if ctx.args.verbose:
                proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                        preexec_fn=_die_with_parent)
            else:
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=_die_with_parent)
            try:
                rc = proc.wait(timeout=point.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return "failed", time.time() - start, (
                    f"killed after the point's timeout of {point.timeout:g} s (raise timeout: in "
                    f"the config); log {log_path}")
            except BaseException:
                _kill_group(proc)
                raise
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    elapsed = time.time() - start
    if rc == 77:
        line = point_summary(log_path, point.program, "skipped", 1)
        _remove(point_file)
        return "skipped", elapsed, (line.lstrip("# ") if line else "the program skipped (exit 77)")
    summary = ""
    wrote = os.path.exists(point_file)
    if wrote:
        summary = summarize_file(point_file)
        merge.merge_files(ctx.output, [point_file], dedup=False)
        os.unlink(point_file)
    if rc != 0:
        line = point_summary(log_path, point.program)
        return "failed", elapsed, f"exit status {rc}: {line} (log {log_path})"
    if not wrote:
        return "failed", elapsed, f"the program wrote no results (log {log_path})"
    return "complete", elapsed, summary


CHECK_TIMEOUT = 60  # seconds one `PROGRAM ARGS --check-args` may take (MPI singleton start-up)
_check_args_known = {}


def _knows_check_args(path):
    """Whether the program was built with --check-args (its name is in the binary): an older build
    would run the benchmark instead of checking."""
    if path not in _check_args_known:
        try:
            with open(path, "rb") as fh:
                _check_args_known[path] = b"--check-args" in fh.read()
        except OSError:
            _check_args_known[path] = False
    return _check_args_known[path]


def _check_env(point_env):
    """The point's environment for a single process: no launcher's variables (PMIx), so MPI
    starts as a singleton."""
    env = launchers.mpi_env(point_env)
    for k in list(env):
        if k.startswith(("PMIX_", "PMI_", "OMPI_COMM_WORLD_")):
            del env[k]
    return env


def _run_check(path, args, env):
    """(exit status, output) of PROGRAM ARGS --check-args; status None when it could not run."""
    try:
        res = subprocess.run([path, *args, "--check-args"], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, errors="replace",
                             timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"no answer after {CHECK_TIMEOUT} s"
    except OSError as exc:
        return None, exc.strerror or str(exc)
    return res.returncode, res.stderr + res.stdout


def offending_key(point, line):
    """The config key the program's error line is about: the first flag it names that came from
    the config (options, sweep axes, variants, sizes/types/... keys), else the entry."""
    origins = point.meta.get("origins") or {}
    for flag in re.findall(r"(?:^|[\s/'\"(])--?([A-Za-z][A-Za-z0-9_-]*)", line):
        if flag in origins:
            return origins[flag]
    for name, value in (point.meta.get("options") or {}).items():
        if name in origins and isinstance(value, str) and len(value) > 2 and value in line:
            return origins[name]
    return point.meta.get("entry") or point.name


def _check_jobs(ctx, points, tmp):
    """({(program path, args): first point}, [programs without --check-args]) of the points whose
    program is built (scripts such as fio-crosscheck are not asked)."""
    jobs, lacking = {}, []
    for p in points:
        if p.script or launchers.point_missing_reason(ctx.bin_dir, p):
            continue
        path = launchers.point_program(ctx.bin_dir, p)
        if not _knows_check_args(path):
            if p.program not in lacking:
                lacking.append(p.program)
            continue
        jobs.setdefault((path, tuple(launchers.expand_args(p.args, ctx.bin_dir, tmp))), p)
    return jobs, lacking


def check_program_args(ctx, points):
    """Asks every program how it would take its arguments before any point runs: each distinct
    (program, arguments) once, as a single process (`PROGRAM ARGS --check-args`, no mpirun), in
    parallel. A refusal stops the config with one line naming the key and quoting the program's
    own error line; programs built without --check-args get one warning line."""
    tmp = tempfile.mkdtemp(prefix="ffbench-check-")  # stands for a storage point's "dir: tmp"
    try:
        jobs, lacking = _check_jobs(ctx, points, tmp)
        workers = max(1, min(4, launchers.cpu_count(), len(jobs)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = list(pool.map(lambda job: _run_check(job[0], list(job[1]),
                                                           _check_env(jobs[job].env)), jobs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    unchecked = {}
    for p, (rc, output) in zip(jobs.values(), answers):
        if rc in (0, 77):
            continue
        lines = output.splitlines()
        line = program_line(p.program, lines) or next((ln.strip() for ln in lines if ln.strip()),
                                                      f"exit status {rc}")
        if rc == 2 and "--check-args" not in line:
            raise configmod.ConfigError(f"{ctx.args.config}: key '{offending_key(p, line)}': "
                                        f"{line}")
        if rc == 2:  # it does not know --check-args after all
            if p.program not in lacking:
                lacking.append(p.program)
        else:
            unchecked.setdefault(p.program, line)
    if lacking:
        one = len(lacking) == 1
        print(f"warning: {', '.join(lacking)} {'has' if one else 'have'} no --check-args (built "
              f"before it?): {'its' if one else 'their'} options are checked only when the "
              f"points run")
    for program, line in unchecked.items():
        print(f"warning: could not check the options of {program} before the run: {line}")


def _dry_run(ctx, launcher, points, label_of):
    done = complete_keys(ctx.output) if os.path.exists(ctx.output) else set()
    print(f"# ffbench run --dry-run: {len(points)} point(s), {launcher.describe()}, "
          f"results -> {ctx.output}")
    pdir = os.path.join(ctx.work, "points")
    for i, p in enumerate(points, 1):
        label = label_of[p.name]
        key = configmod.key_of_label(label)
        head = f"# [{i}/{len(points)}] {p.name} (key {key})"
        reason = None if key in done else static_skip_reason(ctx, p, launcher)
        if key in done:
            print(f"{head}: complete in {ctx.output}, would be skipped")
        elif reason:
            print(f"{head}: would be skipped: {reason}")
        else:
            args = launchers.expand_args(p.args, ctx.bin_dir, "$(mktemp -d)")
            args += ["--output", os.path.join(pdir, f"{key}.h5"), "--label", label]
            program = launchers.point_program_text(ctx.bin_dir, p)
            env = " ".join(f"{k}={v}" for k, v in sorted(p.env.items()))
            print(head)
            print((f"env {env} " if env else "") + launchers.quote(launcher.command(p, program, args)))
        if ctx.coverage and p.name in ctx.coverage.per_point:
            print(f"  covers: {coverage.ids_text(ctx.coverage.per_point[p.name])}")
    print_coverage_summary(ctx)
    return 0


def plan_coverage(ctx, points):
    """ctx.coverage: what the points can cover of the references the config names (None when it
    names none); a reference file that cannot be read is one warning line, not an error."""
    ctx.coverage, ctx.ref_path = None, coverage.reference_path(ctx.sweep, ctx.args.reference)
    if not ctx.ref_path:
        return
    try:
        _, refs = compare.load_reference(ctx.ref_path)
    except UsageError as exc:
        print(f"warning: cannot list what {ctx.args.config} covers: {exc}")
        ctx.ref_path = None
        return
    # Points of other launchers never run under this one; points skipped on this host (no GPU,
    # not built) count: the config covers what it would measure where it can run.
    ctx.coverage = coverage.plan([p for p in points if not p.launchers
                                  or ctx.launcher_name in p.launchers], refs)


def print_coverage_summary(ctx, per_point=False):
    """The dry run's closing lines (Slurm: with one line per point first)."""
    if not ctx.coverage:
        return
    if per_point:
        for name, ids in ctx.coverage.per_point.items():
            print(f"# {name}: covers: {coverage.ids_text(ids)}")
    for line in coverage.summary_lines(ctx.args.config, ctx.ref_path, ctx.coverage):
        print(line)


def run_local(ctx, points):
    launcher = launchers.make(ctx.launcher_name, ctx.sweep, ctx.args)
    label_of = {p.name: p.label(ctx.launcher_name) for p in points}
    if ctx.args.dry_run:
        return _dry_run(ctx, launcher, points, label_of)

    os.makedirs(ctx.work, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)  # a terminated sweep stops its point's processes
    recovered = recover_finished(ctx)
    done_keys = complete_keys(ctx.output)
    total = len(points)
    print(f"ffbench run: {ctx.sweep.name}: {total} point(s), {launcher.describe()}; results -> "
          f"{ctx.output}" + (f"; {recovered} run(s) recovered from a killed sweep" if recovered else ""))
    counts = {"complete": 0, "resumed": 0, "skipped": 0, "failed": 0}
    durations = []
    todo = []
    for p in points:
        key = configmod.key_of_label(label_of[p.name])
        if key in done_keys:
            counts["resumed"] += 1
        else:
            todo.append(p)
    if counts["resumed"]:
        print(f"  {counts['resumed']} point(s) already complete in {ctx.output}: skipped (resume)")
    width = len(str(total))
    index = {p.name: i for i, p in enumerate(points, 1)}
    remaining = len(todo)
    for p in todo:
        i = index[p.name]
        reason = static_skip_reason(ctx, p, launcher)
        if reason:
            counts["skipped"] += 1
            remaining -= 1
            print(f"[{i:>{width}}/{total}] {p.name}: skipped: {reason}", flush=True)
            continue
        finished = counts["complete"] + counts["resumed"] + counts["skipped"] + counts["failed"]
        eta = (f"ETA {fmt_duration(sum(durations) / len(durations) * remaining)}" if durations
               else "ETA ?")
        print(f"[{i:>{width}}/{total}] {p.name}: running ({finished}/{total} done, {eta})",
              flush=True)
        label = label_of[p.name]
        log_path = os.path.join(ctx.work, "logs", f"{p.name}.log")
        state, secs, msg = run_point(ctx, launcher, p, label, log_path)
        remaining -= 1
        counts[state] += 1
        if state == "complete":
            durations.append(secs)
        pad = " " * (width * 2 + 3)
        print(f"{pad} {state} in {secs:.1f} s" + (f": {msg}" if msg else ""), flush=True)
    print(f"ffbench run: {counts['complete']} complete, {counts['resumed']} already in the file, "
          f"{counts['skipped']} skipped, {counts['failed']} failed; results in {ctx.output}")
    return 1 if counts["failed"] else 0


def _print_comparison(ctx):
    """The closing verdict table (<= 20 lines): this run against the references, hardware-
    normalised; its exit status (1 when a verdict FAILs)."""
    ref = ctx.args.reference or (ctx.sweep.compare if ctx.sweep.compare else None)
    if ctx.args.no_compare or not ref or not os.path.exists(ctx.output):
        return 0
    from . import verdict
    ref_path = ref if os.path.exists(ref) else os.path.join(repo_root(), ref)
    print()
    return verdict.print_verdict([ctx.output], ref_path)


def cmd_run(args):
    sweep = configmod.load(args.config)
    if args.launcher and args.launcher not in configmod.LAUNCHERS:
        raise UsageError(f"--launcher {args.launcher}: expected local, slurm or emu")
    ctx = SweepContext(args, sweep)
    points = select_points(ctx)
    check_program_args(ctx, points)
    plan_coverage(ctx, points)
    if not args.dry_run and ctx.coverage and not ctx.coverage.coverable:
        print(coverage.warning_line(args.config, ctx.ref_path, ctx.coverage))
    if args.fresh and not args.dry_run and os.path.exists(ctx.output):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(os.path.getmtime(ctx.output)))
        kept = f"{os.path.splitext(ctx.output)[0]}.{stamp}.h5"
        os.replace(ctx.output, kept)
        print(f"ffbench run: --fresh: the previous results were moved to {kept}")
    if ctx.launcher_name == "slurm":
        from . import slurm
        status = slurm.run_sweep(ctx, points)
        if args.dry_run:
            print_coverage_summary(ctx, per_point=True)
    else:
        if args.wait:
            raise UsageError("--wait: only for --launcher slurm (local and emu runs are synchronous)")
        status = run_local(ctx, points)
    if args.dry_run:
        return status
    if ctx.launcher_name == "slurm" and not args.wait:
        return status
    cmp_status = _print_comparison(ctx)
    return status or cmp_status


def register(sub):
    p = sub.add_parser("run", help="run a sweep config into one HDF5 results file",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", metavar="CONFIG", help="sweep config (configs/sweeps/*.yaml)")
    p.add_argument("--launcher", help="local (mpirun here), slurm (sbatch) or emu (emulated "
                   "cluster); default: the config's launcher:, else local")
    p.add_argument("--output", help="results file (default: the config's output:, else "
                   "results/<name>.h5)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands (Slurm: the batch scripts) without running anything")
    p.add_argument("--wait", action="store_true",
                   help="slurm: wait for the jobs, then merge their results into --output")
    p.add_argument("--wait-timeout", type=float, default=None,
                   help="slurm --wait: give up waiting after this many seconds")
    p.add_argument("--only", metavar="REGEX", help="run only points whose name matches")
    p.add_argument("--fresh", action="store_true",
                   help="measure every point again: move an existing results file aside "
                        "(to <name>.<its date>.h5) instead of resuming it")
    p.add_argument("--bin", help="directory of the programs (default $FFB_BIN, else build/bin)")
    p.add_argument("--emu-name", help="emulated cluster name (default: the config's emu.name, "
                   "else ffb)")
    p.add_argument("--reference", help=f"reference for the closing comparison (default: the "
                   f"config's compare:, else {DEFAULT_REFERENCE})")
    p.add_argument("--no-compare", action="store_true", help="skip the closing comparison table")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the programs' own output instead of logging it")
    p.set_defaults(func=cmd_run)
