"""What every launcher shares: the sweep being run (SweepContext), where a point's program is and
why a point is skipped, the child environment, and the one-line summaries of logs and results."""
import os
import re
import shlex
import shutil
import subprocess

from ffbench.analysis import coverage
from ffbench.data import h5io, paths
from ffbench.errors import UsageError


def program_path(bin_dir, program):
    path = os.path.join(bin_dir, program)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def missing_program_reason(bin_dir, program):
    return (f"{program} is not built ({os.path.join(bin_dir, program)} missing; "
            f"`make build` builds every program this machine supports)")


def scripts_dir():
    return paths.scripts_dir()


def point_program(bin_dir, point):
    """The executable a point runs (a script of scripts/ or a program of the bin dir), or None."""
    if getattr(point, "script", False):
        path = os.path.join(scripts_dir(), point.program)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return program_path(bin_dir, point.program)


def point_program_text(bin_dir, point):
    """The path a dry run prints, whether or not the program exists."""
    return os.path.join(scripts_dir() if getattr(point, "script", False) else bin_dir,
                        point.program)


def point_missing_reason(bin_dir, point):
    """Why a point's program, a program it runs or a tool it needs is not there (or None)."""
    if point_program(bin_dir, point) is None:
        if getattr(point, "script", False):
            return f"{point.program} is missing ({point_program_text(bin_dir, point)})"
        return missing_program_reason(bin_dir, point.program)
    for name in getattr(point, "uses", ()):
        if program_path(bin_dir, name) is None:
            return missing_program_reason(bin_dir, name)
    for tool in getattr(point, "tools", ()):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {tool}); {point.name} needs it"
    return None


def expand_args(args, bin_dir, tmpdir=None):
    """Fill a point's placeholders: {dir} (its temporary directory) and {bin} (the bin dir)."""
    out = []
    for a in args:
        if tmpdir is not None:
            a = a.replace("{dir}", tmpdir)
        out.append(a.replace("{bin}", bin_dir))
    return out


_gpu_cache = {}


def gpu_available():
    """(True, '') or (False, reason). A failed or empty nvidia-smi counts as no GPU."""
    if "gpu" in _gpu_cache:
        return _gpu_cache["gpu"]
    result = (False, "no GPU on this host (nvidia-smi missing)")
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            res = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
            if res.returncode == 0 and "GPU" in res.stdout:
                result = (True, "")
            else:
                result = (False, "no GPU on this host (nvidia-smi -L lists none)")
        except (OSError, subprocess.SubprocessError):
            result = (False, "no GPU on this host (nvidia-smi failed)")
    _gpu_cache["gpu"] = result
    return result


def mpi_env(point_env):
    """Environment for a child: ours + the point's + what Open MPI needs as root."""
    env = dict(os.environ)
    env.update(point_env)
    if os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def export_flags(point_env):
    """-x NAME for variables that are not MCA parameters (those travel by themselves)."""
    out = []
    for k in sorted(point_env):
        if not k.startswith("OMPI_MCA_"):
            out += ["-x", k]
    return out


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def quote(cmd):
    return " ".join(shlex.quote(c) for c in cmd)


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


class SweepContext:
    """One `ffbench run`: its arguments, the sweep, the launcher name, the results file, the bin
    dir and the work dir of per-point files and logs (<results dir>/tmp/<output stem>)."""

    def __init__(self, args, sweep):
        self.args = args
        self.sweep = sweep
        self.launcher_name = args.launcher or sweep.launcher
        self.output = args.output or default_output(sweep)
        self.bin_dir = paths.bin_dir(args.bin, sweep.bin)
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
        ok, why = gpu_available()
        if not ok:
            return why
    missing = point_missing_reason(ctx.bin_dir, point)
    if missing:
        return missing
    if launcher is not None:
        reason = launcher.unsupported(point)
        if reason:
            return reason
    return None


def print_coverage_summary(ctx, per_point=False):
    """The dry run's closing lines (Slurm: with one line per point first)."""
    if not ctx.coverage:
        return
    if per_point:
        for name, ids in ctx.coverage.per_point.items():
            print(f"# {name}: covers: {coverage.ids_text(ids)}")
    for line in coverage.summary_lines(ctx.args.config, ctx.ref_path, ctx.coverage):
        print(line)
