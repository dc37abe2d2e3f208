"""Launchers: how the points of a sweep run. Every launcher implements one protocol, `Launcher`:
`ffbench run` builds the sweep (launch.common.SweepContext), picks the launcher by name and calls
its run_sweep; the launchers share launch.common and never import the command.

    local  mpirun on this host, one point after another      (launch/local.py)
    emu    the same, inside an emulated cluster's namespaces  (launch/emu.py)
    slurm  sbatch, one job per job shape; --wait collects     (launch/slurm.py)
"""
from typing import Protocol

from ffbench.errors import UsageError
from ffbench.launch.emu import EmuLauncher
from ffbench.launch.local import LocalLauncher
from ffbench.launch.slurm import SlurmLauncher


class Launcher(Protocol):
    """One way of running a sweep's points."""
    name: str

    def __init__(self, sweep, args):
        """Check the launcher can run here (a UsageError naming the fix when not)."""

    def run_sweep(self, ctx, points):
        """Run (or with ctx.args.dry_run, print) the points; the exit status of the sweep."""


LAUNCHERS = {"local": LocalLauncher, "emu": EmuLauncher, "slurm": SlurmLauncher}


def make(name, sweep, args) -> Launcher:
    if name not in LAUNCHERS:
        raise UsageError(f"--launcher {name}: expected local, slurm or emu")
    return LAUNCHERS[name](sweep, args)
