"""`ffbench export --csv|--json`."""
import csv
import io
import json
import os
import subprocess

import numpy as np

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.data import h5io  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")


def make(path):
    attrs = h5io.provenance("mpi_allreduce_bench", "collective", ["x"], label="mpi.r2@0123456789ab")
    attrs.update(backend="mpi", environment=json.dumps({"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"}))
    h5io.append_run(str(path), attrs, {
        "collective": {"size": ([1024, 2048], "B"), "busbw": ([0.5, float("nan")], "GB/s"),
                       "type": (["float", "float"], "1"),
                       "iter_time_max": (np.arange(6.0).reshape(2, 3), "us")},
        "ranks": {"rank": ([0, 1], "1"), "host": (["a", "b"], "1")}})
    attrs = h5io.provenance("storage_bench", "storage", ["y"])
    h5io.append_run(str(path), attrs, {"storage_phases": {"phase": (["write"], "1"),
                                                          "bw": ([1.5], "GB/s")}})


def run(*args):
    return subprocess.run([FFBENCH, "export"] + list(args), capture_output=True,
                          text=True, timeout=60)


def test_csv(tmp_path):
    path = tmp_path / "r.h5"
    make(path)
    res = run(str(path), "--csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout)))
    head = rows[0]
    assert head[:4] == ["file", "run", "program", "kind"]
    assert "busbw (GB/s)" in head and "size (B)" in head and "type" in head
    assert not any("iter_time" in h for h in head)   # 2-D columns only in JSON
    assert len(rows) == 3
    r = dict(zip(head, rows[1]))
    assert r["program"] == "mpi_allreduce_bench" and r["label"] == "mpi.r2@0123456789ab"
    assert float(r["busbw (GB/s)"]) == 0.5 and dict(zip(head, rows[2]))["busbw (GB/s)"] == ""
    res = run(str(path), "--csv", "--table", "storage_phases", "--out", str(tmp_path / "s.csv"))
    assert res.returncode == 0 and "1 run(s)" not in res.stdout
    assert "write" in (tmp_path / "s.csv").read_text()


def test_json(tmp_path):
    path = tmp_path / "r.h5"
    make(path)
    res = run(str(path), "--json")
    data = json.loads(res.stdout)
    assert data["format"] == "ffbench-export" and len(data["runs"]) == 2
    run0 = data["runs"][0]
    assert run0["attrs"]["environment"]["OMPI_MCA_coll_tuned_allreduce_algorithm"] == "4"
    col = run0["tables"]["collective"]
    assert col["busbw"]["units"] == "GB/s" and col["busbw"]["values"] == [0.5, None]
    assert col["iter_time_max"]["values"] == [[0, 1, 2], [3, 4, 5]]


def test_bad_flags(tmp_path):
    path = tmp_path / "r.h5"
    make(path)
    assert run(str(path)).returncode == 2
    assert run(str(path), "--csv", "--json").returncode == 2
    res = run(str(path), "--csv", "--table", "nope")
    assert res.returncode == 2 and "tables in these files" in res.stderr


def test_index_files_and_damaged_files(tmp_path):
    path = tmp_path / "r.h5"
    make(path)  # two appends: r.h5 is an index, the second run in a segment beside it
    seg = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(seg) == 1 and sorted(os.listdir(seg[0])) == ["000000.h5", "000001.h5"]
    res = run(str(path), "--json")
    assert res.returncode == 0 and [r["run"] for r in json.loads(res.stdout)["runs"]] == [
        "000000", "000001"]
    damaged = seg[0] / "000001.h5"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    res = run(str(path), "--json")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"ffbench export: {damaged}: damaged results file (checksum mismatch: its bytes changed "
        f"after it was written)"]
