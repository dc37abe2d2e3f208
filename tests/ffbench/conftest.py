"""Shared helpers of the ffbench package tests: where the checkout, the programs and the ffbench
command are, and running the command as a user does. The package itself is imported through
PYTHONPATH=<checkout>/python (tests/CMakeLists.txt sets it; by hand:
PYTHONPATH=/work/main/python /usr/bin/python3 -m pytest -q tests/ffbench)."""
import os
import subprocess

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BIN = os.environ.get("FFB_BIN") or os.path.join(ROOT, "build", "bin")
FFBENCH = os.path.join(ROOT, "scripts", "ffbench")


def ffbench(*args, timeout=300, env=None):
    """`scripts/ffbench ARGS` as a user runs it: programs found by the command itself (no
    $FFB_BIN; tests that want the build pass --bin), plus `env` on top of ours."""
    e = dict(os.environ)
    e.pop("FFB_BIN", None)
    e.update(env or {})
    return subprocess.run([FFBENCH] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=e)
