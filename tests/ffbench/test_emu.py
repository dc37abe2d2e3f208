"""The emulated cluster: `ffbench emu up 3` (network namespaces, shaped veth links), MPI and
HFReduce across the namespaces through `--launcher emu`, and `emu down` removing everything.
Needs root; skipped with the reason otherwise."""
import json
import os
import shutil
import subprocess

import pytest


from ffbench.launch import emu  # noqa: E402
from ffbench.data import h5io
from ffbench.errors import UsageError  # noqa: E402
from conftest import BIN, FFBENCH, ffbench

NAME = f"t{os.getpid() % 1000000}"


def netns():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def root_ns_state():
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout + \
        subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout + \
        subprocess.run(["ip", "route"], capture_output=True, text=True).stdout


def test_needs_root_message(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="needs root"):
        emu.require_root("ffbench emu up")


def test_bad_arguments():
    if os.geteuid() != 0:
        pytest.skip("needs root (argument checks come after the root check)")
    res = ffbench("emu", "up", "3", "--link-rate", "fast", "--name", NAME)
    assert res.returncode == 2 and "--link-rate 'fast'" in res.stderr
    res = ffbench("emu", "up", "0", "--name", NAME)
    assert res.returncode == 2 and "N = 0" in res.stderr
    res = ffbench("emu", "up", "2", "--name", "Bad_Name")
    assert res.returncode == 2 and "--name" in res.stderr
    res = ffbench("emu", "up", "2", "--congestion", "bogus", "--name", NAME)
    assert res.returncode == 2 and "--congestion 'bogus'" in res.stderr
    assert NAME not in netns()


@pytest.fixture()
def cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    for tool in ("ip", "tc", "unshare", "mpirun"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    if not os.path.exists(os.path.join(BIN, "mpi_allreduce_bench")):
        pytest.skip("mpi_allreduce_bench not built (FFB_BIN)")
    before = root_ns_state()
    try:
        res = ffbench("emu", "up", "3", "--link-rate", "1gbit", "--name", NAME)
        assert res.returncode == 0, res.stdout + res.stderr
        yield res.stdout, before
    finally:
        subprocess.run([FFBENCH, "emu", "down", "--name", NAME],
                       capture_output=True, timeout=120)


def test_up_run_down(cluster, tmp_path):
    up_text, before = cluster
    assert f"cluster '{NAME}' up: 3 node(s)" in up_text and "1gbit" in up_text
    assert "congestion control cubic" in up_text
    route = subprocess.run(["ip", "-n", f"{NAME}-node2", "route", "show"], capture_output=True,
                           text=True).stdout
    assert "congctl cubic" in route, route
    names = netns()
    for k in (1, 2, 3):
        assert f"{NAME}-node{k}" in names
    assert f"{NAME}-br" in names
    # Nothing of the cluster is visible in the root namespace.
    now = root_ns_state()
    assert "198.18." not in now and "ffb0" not in now and " eth0" not in now.replace(before, "")
    with open(f"/etc/netns/{NAME}-node2/hosts") as fh:
        hosts = fh.read()
    assert f"198.18.0.3 {NAME}-node3" in hosts
    res = ffbench("emu", "status", "--name", NAME)
    assert res.returncode == 0 and "all namespaces present" in res.stdout
    # Leftovers are removed by a second `up`.
    res = ffbench("emu", "up", "3", "--link-rate", "1gbit", "--name", NAME)
    assert res.returncode == 0 and "removed 4 leftover namespace(s)" in res.stdout

    cfg = tmp_path / "emu.yaml"
    cfg.write_text(f"""
name: emutest
compare: false
emu: {{name: {NAME}}}
collectives:
  - name: mpi
    program: mpi_allreduce_bench
    nodes: [2, 3, 4]
    ranks_per_node: 1
    sizes: {{min: 64K, max: 1M, factor: 4}}
    iters: 2
    warmup: 1
  - name: hfreduce
    program: hfreduce_bench
    nodes: [3]
    ranks_per_node: 1
    sizes: {{min: 64K, max: 1M, factor: 4}}
    iters: 2
    warmup: 1
""")
    out = tmp_path / "emu.h5"
    res = ffbench("run", str(cfg), "--launcher", "emu", "--output", str(out), "--bin", BIN)
    text = res.stdout
    assert res.returncode == 0, text + res.stderr
    assert f"mpi.n4x1: skipped: needs 4 nodes; emulated cluster '{NAME}' has 3" in text
    have_hf = os.path.exists(os.path.join(BIN, "hfreduce_bench"))
    if not have_hf:
        assert "hfreduce.n3x1: skipped: hfreduce_bench is not built" in text
    runs = h5io.read_runs(str(out))
    assert len(runs) == (3 if have_hf else 2)
    for r in runs:
        n = int(r.attrs["nnodes"])
        assert int(r.attrs["nranks"]) == n
        assert list(r.attrs["hosts"]) == [f"{NAME}-node{k}" for k in range(1, n + 1)]
        assert r.attrs["status"] == "complete"
        assert int(r.tables["collective"]["wrong"].max()) == 0
        env = json.loads(r.attrs["environment"])     # what the model reads back (check 2)
        assert env["FFB_EMU_LINK_RATE"] == "1gbit" and env["FFB_EMU_CONGESTION"] == "cubic"
    assert sorted(int(r.attrs["nnodes"]) for r in runs if r.attrs["program"] ==
                  "mpi_allreduce_bench") == [2, 3]

    res = ffbench("emu", "down", "--name", NAME)
    assert res.returncode == 0 and "4 namespace(s) removed" in res.stdout
    assert NAME not in netns()
    assert not os.path.exists(f"/etc/netns/{NAME}-node1")
    assert not os.path.exists(os.path.join(emu.state_root(), NAME))
    res = ffbench("run", str(cfg), "--launcher", "emu", "--output", str(out), "--bin", BIN)
    assert res.returncode == 2 and "no emulated cluster" in res.stderr
