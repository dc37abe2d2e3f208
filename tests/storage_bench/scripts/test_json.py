"""storage_bench's JSON summary (--json FILE, IOR's -O summaryFormat=JSON [-O summaryFile=FILE]).

Runs seq and checkpoint under mpirun -np 2 with --json and --output, then checks that the JSON and
the HDF5 run hold the same numbers: every column of every storage_* table row by row (NaN in the
file is null in the JSON), every column's units, every run attribute (provenance), the IOR-layout
keys derived from the phases (bwMiB = bw x 1e9 / 2^20, ...), and the printed table's GB/s and
time columns. Also: the JSON alone on stdout with -O summaryFormat=JSON, bad -O directives refused
in one line, and no temporary left beside the JSON file.
"""
import json
import math
import os
import re
import subprocess
import tempfile

import pytest

h5py = pytest.importorskip("h5py")

BIN = os.environ.get("FFB_BIN", os.path.join(os.path.dirname(__file__), "../../../build/bin"))
BENCH = os.path.join(BIN, "storage_bench")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FAST = ["--mem-bw", "10"]  # skip the memory-bandwidth probe
TABLES = {"phases": "storage_phases", "ops": "storage_ops", "ranks": "storage_ranks",
          "latency": "storage_latency", "metrics": "storage_metrics"}
WORKLOADS = {
    "seq": ["seq", "-b", "1M", "-t", "256K", "-s", "2", "-i", "2", "--verify"],
    "checkpoint": ["checkpoint", "--ckpt-size", "1M", "--chunk", "128K", "--steps", "2",
                   "--verify"],
}

pytestmark = pytest.mark.skipif(not os.path.exists(BENCH), reason=f"{BENCH} is not built")


def run(args, ranks=2):
    return subprocess.run(["mpirun", "-np", str(ranks), BENCH] + args, capture_output=True,
                          text=True, timeout=120, env=ENV)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def same_number(h5_value, json_value):
    if isinstance(h5_value, float) and math.isnan(h5_value):
        return json_value is None
    return h5_value == json_value


def check_tables(doc, run_group):
    for key, table in TABLES.items():
        group = run_group[table]
        rows = doc[key]
        for column, dataset in group.items():
            values = dataset[()]
            assert len(rows) == len(values), f"{key}.{column}: {len(rows)} rows vs {len(values)}"
            assert text(dataset.attrs["units"]) == doc["units"][key][column], f"{key}.{column}"
            for i, value in enumerate(values):
                got = rows[i][column]
                if isinstance(value, bytes):
                    assert value.decode() == got, f"{key}[{i}].{column}"
                else:
                    assert same_number(value.item(), got), f"{key}[{i}].{column}: {value} {got}"
        for row in rows:
            assert set(row) == set(group), f"{key}: JSON columns {set(row)} vs {set(group)}"


def check_provenance(doc, run_group):
    prov = doc["provenance"]
    assert set(prov) == set(run_group.attrs), set(prov) ^ set(run_group.attrs)
    for name, value in run_group.attrs.items():
        if name == "options":
            assert json.loads(text(value)) == prov[name]
        elif isinstance(value, (bytes, str)):
            assert text(value) == prov[name], name
        elif hasattr(value, "tolist") and isinstance(value.tolist(), list):
            assert [text(v) for v in value.tolist()] == prov[name], name
        else:
            assert same_number(value.item(), prov[name]), f"{name}: {value} {prov[name]}"


def check_ior_keys(doc):
    phases = doc["phases"]
    results = doc["tests"][0]["Results"]
    assert sum(len(r) for r in results) == len(phases)
    seen = {}  # rep -> phases of that rep so far: Results[rep] lists them in order
    for row in phases:
        entry = results[row["rep"]][seen.setdefault(row["rep"], 0)]
        seen[row["rep"]] += 1
        assert entry["access"] == row["phase"]
        assert entry["bwMiB"] == pytest.approx(row["bw"] * 1e9 / 2**20, rel=1e-12)
        assert entry["totalTime"] == row["time"] and entry["wrRdTime"] == row["time_data"]
        assert entry["iops"] == row["ops_rate"]
        assert entry["latency"] == pytest.approx(row["lat_mean"] * 1e-6, rel=1e-12)
    for s in doc["summary"]:
        bws = [r["bw"] * 1e9 / 2**20 for r in phases if r["phase"] == s["operation"]]
        assert s["bwMaxMIB"] == pytest.approx(max(bws), rel=1e-12)
        assert s["bwMinMIB"] == pytest.approx(min(bws), rel=1e-12)
        assert s["bwMeanMIB"] == pytest.approx(sum(bws) / len(bws), rel=1e-12)
        assert s["repetitions"] == len(bws)


def check_printed(doc, out):
    """The printed rows carry the same GB/s and time as the phases rows."""
    printed = [line.split() for line in out.splitlines() if re.match(r"^  \w", line)]
    for row in doc["phases"]:
        match = [p for p in printed if p[0] == row["phase"] and p[1] == str(row["rep"])]
        assert match, f"no printed row for {row['phase']} rep {row['rep']}"
        # phase rep ranks bytes(2 words) time GB/s GB/s-data ...
        assert [f"{row['time']:.4f}", f"{row['bw']:.3f}"] in [p[5:7] for p in match], match


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_json_and_hdf5_hold_the_same_numbers(workload):
    with tempfile.TemporaryDirectory(prefix="sb-json-") as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        h5 = os.path.join(tmp, "out.h5")
        js = os.path.join(tmp, "out.json")
        job = run(WORKLOADS[workload] + FAST + ["--output", h5, "--json", js, data])
        assert job.returncode == 0, job.stdout + job.stderr
        assert sorted(os.listdir(tmp)) == ["data", "out.h5", "out.json"], os.listdir(tmp)
        assert os.listdir(data) == []
        with open(js) as f:
            doc = json.load(f)
        with h5py.File(h5, "r") as f:
            run_group = f["runs"][sorted(f["runs"])[-1]]
            check_tables(doc, run_group)
            check_provenance(doc, run_group)
        check_ior_keys(doc)
        check_printed(doc, job.stdout)
        assert doc["provenance"]["workload"] == workload


def test_summary_format_json_puts_the_json_alone_on_stdout():
    with tempfile.TemporaryDirectory(prefix="sb-json-") as tmp:
        job = run(["seq", "-b", "1M", "-t", "256K", "-O", "summaryFormat=JSON"] + FAST + [tmp])
        assert job.returncode == 0, job.stderr
        doc = json.loads(job.stdout)
        assert [r["access"] for r in doc["tests"][0]["Results"][0]] == ["write", "read"]
        assert "# verify:" in job.stderr and "# cleaned up" in job.stderr
        assert os.listdir(tmp) == []


def test_summary_file_writes_the_json_there():
    with tempfile.TemporaryDirectory(prefix="sb-json-") as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        js = os.path.join(tmp, "s.json")
        job = run(["seq", "-b", "1M", "-t", "256K", "-O", "summaryFormat=JSON", "-O",
                   f"summaryFile={js}"] + FAST + [data], ranks=1)
        assert job.returncode == 0, job.stderr
        assert "# verify:" in job.stdout  # the text stays on stdout when the JSON has a file
        with open(js) as f:
            assert json.load(f)["phases"]
        assert sorted(os.listdir(tmp)) == ["data", "s.json"]


@pytest.mark.parametrize("args,needle", [
    (["-O", "bogus=1"], "-O bogus=1"),
    (["-O", "summaryFormat=CSV"], "summaryFormat=CSV"),
    (["-O", "summaryFile=x.json"], "summaryFile=x.json"),
    (["--json", "/nonexistent-dir/x.json"], "--json /nonexistent-dir/x.json"),
])
def test_bad_json_options_are_refused_in_one_line(args, needle):
    with tempfile.TemporaryDirectory(prefix="sb-json-") as tmp:
        job = run(["seq"] + args + FAST + [tmp])
        lines = [line for line in job.stderr.splitlines() if "storage_bench:" in line]
        assert job.returncode == 2, job.stderr
        assert len(lines) == 1 and needle in lines[0], job.stderr
        assert os.listdir(tmp) == []
