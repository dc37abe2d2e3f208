"""small_message_bench under real mpirun (1, 3 and 4 ranks): the table it prints, the HDF5 run it
appends (read back), the order of the candidates in each round, validation of every placement, the
path HFReduce took, the fp8 stand-in of the MPI candidate, and nothing left behind: no HFReduce
segment in /dev/shm (its fallback when a memfd cannot be shared is /dev/shm/hfreduce-*) and
nothing in Open MPI's backing directory, which is the test's own (other tests' jobs run beside
this one and have /dev/shm segments of their own)."""
import os
import shutil
import subprocess

import pytest

from ffbench.data import h5io

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("FFB_BIN") or os.path.join(ROOT, "build", "bin")
PROGRAM = os.path.join(BIN, "small_message_bench")
CANDIDATES = ["hfreduce", "hfmpi", "mpi"]


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def hfreduce_segments():
    names = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
    return {n for n in names if n.startswith("hfreduce-")}


@pytest.mark.parametrize("ranks", [1, 3, 4])
def test_rounds_rows_and_paths(tmp_path, ranks):
    if not os.access(PROGRAM, os.X_OK) or shutil.which("mpirun") is None:
        pytest.skip("small_message_bench not built (FFB_BIN) or no mpirun")
    out = tmp_path / "small.h5"
    before = hfreduce_segments()
    vader = tmp_path / "vader"
    vader.mkdir()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_btl_vader_backing_directory=str(vader))
    # 4 B .. 64 KiB x16: 4, 64, 1K, 16K (fp8: 1 B elements, so all four; double from 64 B)
    res = subprocess.run(["mpirun", "-np", str(ranks), PROGRAM, "-d", "double,fp8_e5m2,half",
                          "-f", "16", "-r", "3", "-n", "5", "-w", "1", "--output", str(out),
                          "--label", "t"], capture_output=True, text=True, timeout=300, env=env,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{ranks} ranks, 3 rounds" in res.stdout
    assert "HFReduce no slower than its reference at" in res.stdout
    assert "# results appended to" in res.stdout
    (run,) = h5io.read_runs(str(out))
    assert run.attrs["program"] == "small_message_bench" and run.attrs["kind"] == "small_message"
    assert run.attrs["nranks"] == ranks and run.attrs["rounds"] == 3 and run.attrs["label"] == "t"
    t = run.tables["small_message"]
    rows = list(zip(*(t[k] for k in ("round", "type", "size", "candidate", "measured_type",
                                     "count", "time_p50", "path", "wrong"))))
    points = [("double", s) for s in (64, 1024, 16384)] + \
        [(ty, s) for ty in ("fp8_e5m2", "half") for s in (4, 64, 1024, 16384)]
    assert len(rows) == 3 * len(points) * 3
    for k in range(0, len(rows), 3):
        rnd, typ, size = int(rows[k][0]), text(rows[k][1]), int(rows[k][2])
        cands = [text(r[3]) for r in rows[k:k + 3]]
        # back to back at each point; forwards in even rounds, backwards in odd ones
        assert cands == (CANDIDATES if rnd % 2 == 0 else CANDIDATES[::-1]), (rnd, typ, size)
        assert {(text(r[1]), int(r[2])) for r in rows[k:k + 3]} == {(typ, size)}
    assert sorted({(text(r[1]), int(r[2])) for r in rows}) == sorted(points)
    for rnd, typ, size, cand, measured, count, t50, path, wrong in rows:
        typ, cand, measured, path = text(typ), text(cand), text(measured), text(path)
        assert int(wrong) == 0 and float(t50) > 0
        assert measured == ("uint8" if cand == "mpi" and typ.startswith("fp8") else typ)
        assert int(count) * {"double": 8, "half": 2}.get(measured, 1) == int(size)
        if cand == "mpi":
            assert path == "mpi"
        elif cand == "hfmpi":
            assert path == "mpi"  # --small-path mpi: MPI_Allreduce at every size
        else:
            # one node: the shared-memory exchange below 16 KiB, and for fp8 up to 64 KiB
            want = "shm" if int(size) < 16384 or typ.startswith("fp8") else "intra-node"
            assert path == want, (typ, size, path)
    assert hfreduce_segments() - before == set()
    assert list(vader.iterdir()) == []
