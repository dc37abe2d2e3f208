"""What a collective row's `time` column is, and how a text metric travels.

`time` (-a): each rank's mean iteration time combined over ranks (max: the slowest rank's mean,
as nccl-tests and OSU time a batch), while iter_time_* and time_mean/min/p50/p99/max keep their
per-iteration meaning. With 2 ranks the stored per-iteration columns determine both ranks'
times (rank 1 = 2 x avg - rank 0), so the check is exact, not a timing: nothing here asserts a
speed.

A text metric (HFReduce's `algorithm`) is a string column: stored in HDF5 and read back with
ffbench's reader, in the -J JSON, printed after the table's columns, and taken by the Python
consumers (rows for compare/report, CSV and JSON export) like any other column.
"""
import json
import math
import os
import subprocess

import numpy as np
import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("FFB_BIN", os.path.join(ROOT, "build", "bin"))
from ffbench.data import export, h5io, results  # noqa: E402  (PYTHONPATH=python: ctest sets it)

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
MPIRUN = ["mpirun", "--oversubscribe", "--bind-to", "none"]
PIPELINE_ALGORITHMS = {"intra-node", "tree", "ring"}


def run_program(program, ranks, args, tmp_path):
    path = os.path.join(BIN, program)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    h5, js = str(tmp_path / "r.h5"), str(tmp_path / "r.json")
    res = subprocess.run(MPIRUN + ["-np", str(ranks), path] + args + ["--output", h5, "-J", js],
                         capture_output=True, text=True, errors="replace", env=ENV,
                         stdin=subprocess.DEVNULL, timeout=600)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    with open(js) as fh:
        doc = json.load(fh)
    return h5io.read_runs(h5)[-1], doc, res.stdout


# The plain timed loop, and the other one (-z 1: the clock is read again after each barrier).
@pytest.mark.parametrize("average,blocking", [("0", "0"), ("1", "0"), ("2", "0"), ("3", "0"),
                                              ("2", "1"), ("3", "1")])
def test_time_combines_each_ranks_mean(tmp_path, average, blocking):
    run, _, _ = run_program("mpi_allreduce_bench", 2, ["-b", "8", "-e", "64K", "-f", "16", "-d",
                                                       "double", "-n", "20", "-w", "1", "-a",
                                                       average, "-z", blocking], tmp_path)
    c = run.tables["collective"]
    assert len(c["time"]) == 8
    for i in range(len(c["time"])):
        rank0 = np.asarray(c["iter_time_rank0"][i])
        rank1 = 2 * np.asarray(c["iter_time_avg"][i]) - rank0
        means = [rank0.mean(), rank1.mean()]
        want = {"0": means[0], "1": sum(means) / 2, "2": min(means), "3": max(means)}[average]
        assert math.isclose(c["time"][i], want, rel_tol=1e-9), (i, c["time"][i], means)
        # The per-iteration columns keep their meaning: the slowest and fastest rank per iteration.
        assert np.allclose(c["iter_time_max"][i], np.maximum(rank0, rank1), rtol=1e-9)
        assert np.allclose(c["iter_time_min"][i], np.minimum(rank0, rank1), rtol=1e-9)
        assert math.isclose(c["time_mean"][i], np.mean(c["iter_time_max"][i]), rel_tol=1e-9)
        # A mean of per-iteration maxima is never below the slowest rank's mean.
        assert c["time_mean"][i] >= max(means) * (1 - 1e-12)


def test_text_metric_stored_printed_and_read_back(tmp_path):
    # Below HFReduce's 16 KiB fallback size and above it.
    run, doc, stdout = run_program("hfreduce_bench", 2, ["-b", "1K", "-e", "256K", "-f", "16",
                                                         "-n", "2", "-w", "1", "--membw", "10"],
                                   tmp_path)
    c = run.tables["collective"]
    assert run.units["collective"]["algorithm"] == "1"
    algorithm = list(c["algorithm"])
    assert all(isinstance(a, str) for a in algorithm), algorithm
    # Below the fallback size: the shared-memory small path on one node, MPI_Allreduce across.
    small = "shm" if run.attrs["nnodes"] == 1 else "mpi"
    for a, fallback in zip(algorithm, c["fallback"]):
        if fallback == 1:
            assert a == small
        else:
            assert a and set(a.split("+")) <= PIPELINE_ALGORITHMS, a
    assert small in algorithm and set(algorithm) - {small}, algorithm
    if run.attrs["nnodes"] == 1:
        assert set(algorithm) == {"shm", "intra-node"}, algorithm
    # -J: the same value per placement, its units with the others.
    got = [e["ffbench"][key]["algorithm"] for e in doc["results"]
           for key in ("out_of_place", "in_place")]
    assert got == algorithm
    assert doc["ffbench"]["units"]["algorithm"] == "1"
    # The printed table: after the 13 cells, per placement.
    lines = [ln for ln in stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == len(algorithm) // 2
    for k, line in enumerate(lines):
        extras = line.split("  # out-of-place: ", 1)[1]
        out_of_place, in_place = extras.split("; in-place: ")
        assert f"algorithm={algorithm[2 * k]}" in out_of_place.split(", "), line
        assert f"algorithm={algorithm[2 * k + 1]}" in in_place.split(", "), line
    # The Python consumers: compare/report rows, CSV and JSON export.
    rows = results.collective_rows([run])
    assert [r["algorithm"] for r in rows] == algorithm
    csv_text = export.to_csv([run], "collective")
    header = csv_text.splitlines()[0].split(",")
    assert "algorithm" in header
    index = header.index("algorithm")
    assert [ln.split(",")[index] for ln in csv_text.splitlines()[1:]] == algorithm
    exported = export.to_json([run])["runs"][0]["tables"]["collective"]["algorithm"]
    assert exported == {"units": "1", "values": algorithm}


def test_a_backend_without_text_metrics_has_no_such_column(tmp_path):
    run, _, _ = run_program("mpi_allreduce_bench", 1, ["-b", "8", "-e", "8", "-n", "1", "-w", "0"],
                            tmp_path)
    c = run.tables["collective"]
    assert "algorithm" not in c and all(np.asarray(v).dtype != object or k in
                                        ("type", "redop", "placement") for k, v in c.items())
