"""SIGKILL of one rank while HFReduce sets up its node segment leaves nothing in /dev/shm.

Each case stops one rank at a named moment with FFB_FAULT=<point>@<rank> (common/include/ffb/fault.h;
the points are listed in docs/hfreduce.md, "Clean-up"), not by timing luck, and asserts that mpirun
fails (no hang, the exit code of a killed or aborted job), that no /dev/shm/hfreduce-* entry is new
afterwards and that Open MPI's own shared-memory files (sent to a private directory with
btl_vader_backing_directory, so they are this job's) are gone too.
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass

import pytest

BIN = os.environ.get("FFB_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
BENCH = os.path.join(BIN, "hfreduce_bench")
TIMEOUT_S = 120
ARGS = ["-b", "8M", "-e", "8M", "-n", "5", "-w", "1"]
KILLED_RC = {1, 137}  # a rank's MPI_Abort (kExitFailure) or mpirun's 128 + SIGKILL
FALLBACK_LINE = "using a named /dev/shm segment"

pytestmark = pytest.mark.skipif(not os.path.exists(BENCH), reason=f"{BENCH} is not built")


@dataclass
class Job:
    rc: int
    output: str
    new_shm: set
    vader_left: list


def hfreduce_shm():
    return set(glob.glob("/dev/shm/hfreduce-*"))


def job_env(fault, extra):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    env.pop("FFB_FAULT", None)
    env.pop("HFREDUCE_SHM", None)
    if fault:
        env["FFB_FAULT"] = fault
    env.update(extra or {})
    return env


def run_job(ranks, ranks_per_node, fault=None, extra_env=None, program=None, mca=()):
    """Runs hfreduce_bench under mpirun; kills the whole process group whatever happens."""
    before = hfreduce_shm()
    vader_dir = tempfile.mkdtemp(prefix="ffb-faults-vader-")
    cmd = ["mpirun", "-np", str(ranks), "--mca", "btl_vader_backing_directory", vader_dir, *mca,
           program or BENCH, *ARGS, "--ranks-per-node", str(ranks_per_node)]
    proc = subprocess.Popen(cmd, env=job_env(fault, extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, text=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} (FFB_FAULT={fault}) still running after {TIMEOUT_S} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # ranks mpirun may have left behind
        except ProcessLookupError:
            pass
        proc.wait()
        vader_left = os.listdir(vader_dir)
        shutil.rmtree(vader_dir, ignore_errors=True)
    return Job(proc.returncode, output, hfreduce_shm() - before, vader_left)


def assert_killed_cleanly(job, fault):
    assert job.rc in KILLED_RC, f"FFB_FAULT={fault}: exit code {job.rc}\n{job.output}"
    assert not job.new_shm, f"FFB_FAULT={fault} left {sorted(job.new_shm)}"
    assert not job.vader_left, f"FFB_FAULT={fault} left Open MPI files {job.vader_left}"


# (ranks, ranks per node, point, world rank). Nodes are consecutive ranks: with 3 ranks and 2 per
# node, the last rank (2) leads a node of its own, rank 1 is node 0's non-leader.
MEMFD_CASES = [
    (6, 6, "hfreduce.segment_created", 0),
    (6, 6, "hfreduce.segment_offered", 0),
    (6, 6, "hfreduce.segment_mapped", 5),
    (3, 3, "hfreduce.segment_created", 0),
    (3, 3, "hfreduce.segment_offered", 0),
    (3, 3, "hfreduce.segment_mapped", 2),
    (3, 2, "hfreduce.segment_created", 2),
    (3, 2, "hfreduce.segment_mapped", 1),
]


@pytest.mark.parametrize("ranks,per_node,point,rank", MEMFD_CASES)
def test_sigkill_during_setup_leaves_nothing(ranks, per_node, point, rank):
    fault = f"{point}@{rank}"
    job = run_job(ranks, per_node, fault)
    assert_killed_cleanly(job, fault)
    assert FALLBACK_LINE not in job.output
    if point == "hfreduce.segment_offered":
        # The others find the leader's /proc/<pid>/fd/<fd> gone and say so instead of hanging.
        assert "exited before this rank could open its shared memory" in job.output, job.output


# The fallback (HFREDUCE_SHM=named): every rank unlinks the name once all have mapped it, so a
# leader killed right before its own unlink leaves nothing either.
NAMED_CASES = [
    (6, 6, "hfreduce.before_unlink", 0),
    (3, 3, "hfreduce.before_unlink", 0),
    (6, 3, "hfreduce.before_unlink", 3),
]


@pytest.mark.parametrize("ranks,per_node,point,rank", NAMED_CASES)
def test_sigkill_before_unlink_in_fallback_leaves_nothing(ranks, per_node, point, rank):
    fault = f"{point}@{rank}"
    job = run_job(ranks, per_node, fault, {"HFREDUCE_SHM": "named"})
    assert_killed_cleanly(job, fault)


def test_normal_run_leaves_nothing_and_names_nothing():
    # before_unlink exists only on the fallback path: on the memfd path it never fires.
    job = run_job(6, 6, "hfreduce.before_unlink@0")
    assert job.rc == 0, job.output
    assert FALLBACK_LINE not in job.output
    assert not job.new_shm and not job.vader_left


def test_fallback_run_says_so_and_leaves_nothing():
    job = run_job(3, 2, extra_env={"HFREDUCE_SHM": "named"})
    assert job.rc == 0, job.output
    # One line from the leader of node 0; rank 2 is alone on node 1 and shares nothing.
    assert job.output.count(FALLBACK_LINE) == 1, job.output
    assert "HFREDUCE_SHM=named" in job.output
    assert not job.new_shm and not job.vader_left


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a second pid namespace")
def test_other_pid_namespace_falls_back(tmp_path):
    # Rank 1 in its own pid namespace cannot reach the leader through /proc/<pid>/fd: the fallback.
    wrapper = tmp_path / "wrap.sh"
    wrapper.write_text('#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then\n'
                       f'  exec unshare --pid --fork {BENCH} "$@"\nfi\nexec {BENCH} "$@"\n')
    wrapper.chmod(0o755)
    job = run_job(2, 2, program=str(wrapper),
                  mca=("--mca", "btl_vader_single_copy_mechanism", "none"))
    if job.rc != 0 and "unshare" in job.output:
        pytest.skip(f"unshare --pid is not permitted here: {job.output[-300:]}")
    assert job.rc == 0, job.output
    assert "the leader is in another pid namespace; " + FALLBACK_LINE in job.output, job.output
    assert not job.new_shm
