"""HFReduce leaves nothing in /dev/shm: after a normal run, and after its ranks are SIGKILLed
mid-run (the node segment is an anonymous memfd that never has a name; tests/faults kills ranks
at each named set-up moment)."""
import glob
import os
import signal
import subprocess
import time

import pytest

BIN = os.environ.get("FFB_BIN", os.path.join(os.path.dirname(__file__), "../../../build/bin"))
BENCH = os.path.join(BIN, "hfreduce_bench")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")

pytestmark = pytest.mark.skipif(not os.path.exists(BENCH), reason="hfreduce_bench is not built")


def ours():
    return sorted(glob.glob("/dev/shm/hfreduce-*"))


def test_nothing_left_after_normal_run():
    before = ours()
    subprocess.run(["mpirun", "-np", "3", BENCH, "-b", "1M", "-e", "4M", "-f", "2", "-n", "3",
                    "--ranks-per-node", "2", "--membw", "10"],
                   env=ENV, check=True, capture_output=True, timeout=300)
    assert ours() == before


def test_nothing_left_after_sigkill():
    before = ours()
    vader_before = set(glob.glob("/dev/shm/vader_segment.*"))
    proc = subprocess.Popen(["mpirun", "-np", "3", BENCH, "-b", "64M", "-e", "64M", "-n", "100000",
                             "-c", "0", "--membw", "10"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # Wait until the sweep is running (the header is printed after the segment exists).
        deadline = time.time() + 120
        seen = b""
        while b"#wrong" not in seen and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert b"#wrong" in seen, seen.decode(errors="replace")
        time.sleep(1.0)
        # SIGKILL the ranks themselves (no chance to clean up), then the launcher.
        subprocess.run(["pkill", "-KILL", "-f", BENCH + " -b 64M"], check=False)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        # Open MPI's own segments survive a SIGKILL of its ranks: remove the ones this test made.
        for path in set(glob.glob("/dev/shm/vader_segment.*")) - vader_before:
            os.unlink(path)
    assert ours() == before
