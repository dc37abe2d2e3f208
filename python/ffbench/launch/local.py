"""The local launcher: the points of a sweep run one after another on this host, each under
mpirun (or alone when it is not an MPI program).

Each point writes to its own file under <results dir>/tmp/<output stem>/points/ and is then merged
into the results file atomically (merge.merge_files), so a killed sweep loses at most the point in
flight and never corrupts the file; a rerun first merges what a killed sweep finished. The emu
launcher (launch/emu.py) runs the same loop, with its commands entering the emulated nodes.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ffbench.analysis import coverage
from ffbench.data import config as configmod
from ffbench.data import h5io, merge
from ffbench.data.results import complete_keys
from ffbench.launch.common import (LOG_HEADER, cpu_count, export_flags, expand_args, fmt_duration,
                                   mpi_env, point_program, point_program_text, point_summary,
                                   print_coverage_summary, quote, static_skip_reason,
                                   summarize_file)


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
    args = expand_args(point.args, ctx.bin_dir, tmpdir)
    args += ["--output", point_file, "--label", label]
    program = point_program(ctx.bin_dir, point)
    cmd = launcher.command(point, program, args)
    env = mpi_env(point.env)
    start = time.time()
    try:
        with open(log_path, "w") as log:
            log.write(f"{LOG_HEADER}{quote(cmd)}\n")
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
            args = expand_args(p.args, ctx.bin_dir, "$(mktemp -d)")
            args += ["--output", os.path.join(pdir, f"{key}.h5"), "--label", label]
            program = point_program_text(ctx.bin_dir, p)
            env = " ".join(f"{k}={v}" for k, v in sorted(p.env.items()))
            print(head)
            print((f"env {env} " if env else "") + quote(launcher.command(p, program, args)))
        if ctx.coverage and p.name in ctx.coverage.per_point:
            print(f"  covers: {coverage.ids_text(ctx.coverage.per_point[p.name])}")
    print_coverage_summary(ctx)
    return 0


def run_points(ctx, launcher, points):
    """The local and emu launchers' sweep: every point in turn, resuming what the file holds."""
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


class LocalLauncher:
    """mpirun on this host (one node): the Launcher protocol of launch/__init__.py."""
    name = "local"

    def __init__(self, sweep, args):
        self.sweep = sweep

    def describe(self):
        return f"local launcher: mpirun on this host ({cpu_count()} cores)"

    def unsupported(self, point):
        if point.nodes > 1:
            return (f"needs {point.nodes} nodes; the local launcher runs on this host only "
                    f"(use --launcher emu or --launcher slurm)")
        return None

    def command(self, point, program_abs, args):
        if not point.mpi:
            return [program_abs] + args
        cmd = ["mpirun", "-np", str(point.ranks)]
        if point.ranks > cpu_count():
            cmd.append("--oversubscribe")
        cmd += export_flags(point.env) + point.mpirun_args + [program_abs] + args
        return cmd

    def run_sweep(self, ctx, points):
        return run_points(ctx, self, points)
