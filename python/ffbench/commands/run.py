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
import time

from ffbench import launch
from ffbench.analysis import coverage, verdict
from ffbench.data import config as configmod
from ffbench.data import paths
from ffbench.data.reference import load_reference
from ffbench.errors import UsageError
from ffbench.launch.common import SweepContext, select_points
from ffbench.launch.preflight import check_program_args


DEFAULT_REFERENCE = "configs/reference/fire-flyer-2.yaml"


def plan_coverage(ctx, points):
    """ctx.coverage: what the points can cover of the references the config names (None when it
    names none); a reference file that cannot be read is one warning line, not an error."""
    ctx.coverage, ctx.ref_path = None, coverage.reference_path(ctx.sweep, ctx.args.reference)
    if not ctx.ref_path:
        return
    try:
        _, refs = load_reference(ctx.ref_path)
    except UsageError as exc:
        print(f"warning: cannot list what {ctx.args.config} covers: {exc}")
        ctx.ref_path = None
        return
    # Points of other launchers never run under this one; points skipped on this host (no GPU,
    # not built) count: the config covers what it would measure where it can run.
    ctx.coverage = coverage.plan([p for p in points if not p.launchers
                                  or ctx.launcher_name in p.launchers], refs)


def _print_comparison(ctx):
    """The closing verdict table (<= 20 lines): this run against the references, hardware-
    normalised; its exit status (1 when a verdict FAILs)."""
    ref = ctx.args.reference or (ctx.sweep.compare if ctx.sweep.compare else None)
    if ctx.args.no_compare or not ref or not os.path.exists(ctx.output):
        return 0
    ref_path = paths.config_path(ref)
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
    if args.wait and ctx.launcher_name != "slurm":
        raise UsageError("--wait: only for --launcher slurm (local and emu runs are synchronous)")
    status = launch.make(ctx.launcher_name, sweep, args).run_sweep(ctx, points)
    if args.dry_run:
        return status
    if ctx.launcher_name == "slurm" and not args.wait:
        return status
    cmp_status = _print_comparison(ctx)
    return status or cmp_status


def register(sub):
    p = sub.add_parser("run", help="run a sweep of benchmarks (a config) into one HDF5 results file",
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
