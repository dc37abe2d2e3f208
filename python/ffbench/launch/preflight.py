"""Before a sweep runs (and in a dry run) every program is asked whether it takes its arguments:
`PROGRAM ARGS --check-args`, one process each, in parallel. A refusal stops the config with the
config key the program complains about and the program's own error line."""
import shutil
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ffbench.errors import ConfigError
from ffbench.launch import common as launchers
from ffbench.launch.common import program_line

_check_args_known = {}  # program path -> whether its binary knows --check-args


CHECK_TIMEOUT = 60  # seconds one `PROGRAM ARGS --check-args` may take (MPI singleton start-up)


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
            raise ConfigError(f"{ctx.args.config}: key '{offending_key(p, line)}': "
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
