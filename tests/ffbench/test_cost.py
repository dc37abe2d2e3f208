"""Tests of `ffbench cost`: fat-tree switch counts, Tables II/III from the shipped descriptions,
user clusters, clear errors for bad files, and the HDF5 helper (h5io) the command writes with."""
import copy
import os
import subprocess

import numpy as np
import pytest
import yaml

ROOT = os.environ.get("FFB_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

from ffbench.data import h5io  # noqa: E402
from ffbench.models.cost_table import compute, h5_tables  # noqa: E402
from ffbench.models.cluster import Cluster, ClusterError, load_cluster  # noqa: E402
from ffbench.models.fattree import fabric, three_layer, tree, two_layer  # noqa: E402

CLUSTERS = os.path.join(ROOT, "configs", "clusters")
FFBENCH = os.path.join(ROOT, "scripts", "ffbench")


def shipped(name):
    return load_cluster(os.path.join(CLUSTERS, name + ".yaml"))


def run_cli(*args):
    return subprocess.run([FFBENCH, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


# ---- switch-count formulas against hand-computed cases --------------------------------------------

def test_two_layer_hand_computed():
    full = two_layer(800, 40)           # k = 40: 40 leaves x 20 down = 800, 20 spines
    assert (full["leaves"], full["spines"], full["switches"], full["feasible"]) == (40, 20, 60, True)
    assert full["capacity"] == 800
    small = two_layer(100, 40)          # ceil(100/20) = 5 leaves, ceil(5*20/40) = 3 spines
    assert (small["leaves"], small["spines"], small["switches"]) == (5, 3, 8)
    assert two_layer(30, 40)["switches"] == 1          # fits one switch
    assert two_layer(0, 40)["switches"] == 0
    assert not two_layer(801, 40)["feasible"]          # 41 leaves cannot all reach the spines
    over = two_layer(300, 40, leaf_down=30)            # 3:1 oversubscribed: 10 leaves x 10 uplinks
    assert (over["leaves"], over["spines"]) == (10, 3)


def test_three_layer_hand_computed():
    pcie = three_layer(1600, 40)        # 80 leaves, 4 pods of 20 -> 80 spines, 80*20/40 = 40 cores
    assert (pcie["leaves"], pcie["spines"], pcie["cores"], pcie["switches"]) == (80, 80, 40, 200)
    dgx = three_layer(10000, 40)        # 500 leaves, 25 pods, 500 spines, 250 cores
    assert (dgx["leaves"], dgx["spines"], dgx["cores"], dgx["switches"]) == (500, 500, 250, 1250)
    assert three_layer(10000, 40, core_sized_for_pods=32)["cores"] == 320   # 32 * 20 * 20 / 40
    full = three_layer(16000, 40)       # textbook k^3/4 hosts with 5k^2/4 = 2000 switches
    assert full["switches"] == 2000 and full["feasible"]
    assert not three_layer(16001, 40)["feasible"]
    partial = three_layer(1610, 40)     # 81 leaves: 4 full pods + a pod of 1 leaf (1 spine)
    assert (partial["leaves"], partial["spines"], partial["cores"]) == (81, 81, 41)


def test_zones_and_planes():
    assert tree(1600, 2, 40, zones=2)["switches"] == 120
    multi = tree(32768, 2, 128, planes=4)              # sec. 8: 4 planes x (128 leaves + 64 spines)
    assert multi["switches"] == 4 * 192 and multi["feasible"]
    assert not tree(32769, 2, 128, planes=4)["feasible"]


# ---- Tables II and III from the shipped descriptions ----------------------------------------------

@pytest.fixture(scope="module")
def table3():
    clusters = [shipped("fire-flyer-2"), shipped("fire-flyer-2-pcie-3layer"), shipped("dgx-a100")]
    costs, comps = compute(clusters, 2, "gemm_mean")
    return clusters, costs, comps


def test_table3_switches_exact(table3):
    _clusters, costs, _ = table3
    assert [c["fabric"]["switches"] for c in costs] == [122, 200, 1320]
    # the textbook formula beside it (computed endpoints, no paper inputs)
    assert [c["fabric"]["switches_textbook"] for c in costs] == [124, 203, 1250]
    assert not costs[0]["fabric"]["textbook_feasible"]   # 805 ports per zone > 800


def test_table3_prices(table3):
    _clusters, costs, _ = table3
    assert [c["server_price"] for c in costs] == [11250, 11250, 19000]
    assert costs[1]["network_price"] == 600
    for got, paper in zip((c["network_price"] for c in costs), (350, 600, 4000)):
        assert abs(got / paper - 1) < 0.05           # one all-in switch price for all three
    for got, paper in zip((c["total_price"] for c in costs), (11600, 11850, 23000)):
        assert abs(got / paper - 1) < 0.005


def test_table2(table3):
    _clusters, costs, comps = table3
    ff2 = comps[0]
    assert round(ff2["relative_performance"], 2) == 0.83          # mean of 107/131 and 220/263
    assert round(ff2["node_price_ratio"], 1) == 0.6               # 9.0 / 15.2 = 59.2%
    assert abs(ff2["cost_performance"] / 1.38 - 1) < 0.02         # 1.396 vs the paper's rounded 1.38
    assert round(0.83 / 0.60, 2) == 1.38
    assert abs(ff2["total_price_ratio"] / 0.504 - 1) < 0.01
    assert (costs[0]["node_w"], costs[2]["node_w"]) == (2500, 4200)
    assert 3.1e6 <= costs[0]["power_w"] <= 3.2e6                   # "just over 3 MW"
    assert costs[0]["nodes_w"] == 1250 * 2500


def test_paper_section_is_never_an_input(table3):
    clusters, costs, _ = table3
    for cl, c in zip(clusters, costs):
        data = cl.data()                                           # without `paper`
        again = compute([Cluster(data, cl.path)], 0, "gemm_mean")[0][0]
        assert again["fabric"]["switches"] == c["fabric"]["switches"]
        assert again["total_price"] == c["total_price"]


def test_inputs_drive_the_counts():
    ff2 = shipped("fire-flyer-2")
    bigger = ff2.with_values({"network.extra_switches": 0, "network.endpoints": 1200})
    assert fabric(bigger)["switches"] == 2 * (30 + 15)            # 600 per zone: 30 leaves, 15 spines
    dgx = shipped("dgx-a100").with_values({"network.core_sized_for_pods": None})
    assert fabric(dgx)["switches"] == 1250


def test_user_cluster_other_currency(tmp_path):
    mine = {
        "name": "My cluster", "nodes": 64, "gpus_per_node": 4,
        "gpu": {"model": "X", "tflops": {"tf32": 100, "fp16": 200}},
        "nics": {"per_node": 2, "gbit": 400},
        "network": {"radix": 64, "layers": 2, "storage_ports": 16, "management_ports": 4},
        "prices": {"currency": "EUR", "node": 120000, "switch": 25000, "link": 300},
        "power": {"node_w": 3000, "switch_w": 400},
        "operating": {"pue": 1.2, "energy_price_per_kwh": 0.2, "currency": "EUR", "years": 4},
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(mine))
    other = copy.deepcopy(mine)
    other.update(name="Other", nodes=32)
    other["prices"]["node"] = 100000
    opath = tmp_path / "other.yaml"
    opath.write_text(yaml.safe_dump(other))
    clusters = [load_cluster(str(path)), load_cluster(str(opath))]
    costs, comps = compute(clusters, 1, "gemm_mean")
    f = costs[0]["fabric"]
    assert f["endpoints"] == 64 * 2 + 16 + 4 == 148
    assert (f["leaves"], f["spines"]) == (5, 3)                    # ceil(148/32), ceil(5*32/64)
    assert costs[0]["network_price"] == 8 * 25000 + (148 + 5 * 32) * 300
    assert costs[0]["operating_cost"] == pytest.approx(costs[0]["power_w"] / 1000 * 1.2 * 8760 * 0.2 * 4)
    assert comps[0]["node_price_ratio"] == pytest.approx(1.2)
    # against a cluster priced in other units: no price ratio, and the table says n/a
    res = run_cli("cost", str(path), "--vs", "dgx-a100")
    assert res.returncode == 0, res.stderr
    assert "n/a" in res.stdout and "My cluster" in res.stdout


# ---- the command end to end ---------------------------------------------------------------------

def test_cli_tables_2_and_3(tmp_path):
    out = tmp_path / "cost.h5"
    res = run_cli("cost", "fire-flyer-2", "--vs", "fire-flyer-2-pcie-3layer", "--vs", "dgx-a100",
                  "--output", str(out))
    assert res.returncode == 0, res.stderr
    for text in ("MODEL OUTPUT", "122 [paper 122, =]", "200 [paper 200, =]", "1,320 [paper 1,320, =]",
                 "11,850 [paper 11,850, =]", "82.7% [paper 83%", "59.2% [paper 60%", "1.40 [paper 1.38",
                 "124 (over capacity)", "1,250", "core layer sized for 32 pods"):
        assert text in res.stdout, text
    runs = h5io.read_runs(str(out))
    assert len(runs) == 1 and runs[0].attrs["kind"] == "model" and runs[0].id == "000000"
    table = runs[0].table("cost")
    assert list(table["switches"]) == [122, 200, 1320]
    assert list(table["cluster"]) == ["Fire-Flyer 2", "PCIe A100, 3-layer", "DGX-A100, 3-layer"]
    ref = runs[0].table("cost_vs_paper")
    assert "table3.switches" in list(ref["quantity"])
    # a description without paper values writes the cost table alone
    dgx = Cluster(shipped("dgx-a100").data(), "dgx")
    assert set(h5_tables([dgx], *compute([dgx], 0, "gemm_mean"))) == {"cost"}


@pytest.mark.parametrize("edit, expect", [
    (lambda d: d["network"].update(radx=40), "unknown key 'network.radx' (did you mean 'network.radix'?"),
    (lambda d: d["network"].update(radix="forty"), "key 'network.radix' must be a positive integer"),
    (lambda d: d.update(nodes=-3), "key 'nodes' must be a positive integer"),
    (lambda d: d["network"].pop("radix"), "missing key 'network.radix'"),
    (lambda d: d["prices"].pop("node"), "missing key 'prices.node'"),
    (lambda d: d["network"].update(layers=4), "key 'network.layers' must be one of 2, 3"),
    (lambda d: d.update(network=[1, 2]), "'network' must be a mapping"),
    (lambda d: d["operating"].update(pue=0.8), "key 'operating.pue' must be a number >= 1"),
])
def test_bad_cluster_files(tmp_path, edit, expect):
    with open(os.path.join(CLUSTERS, "dgx-a100.yaml")) as fh:
        data = yaml.safe_load(fh)
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = run_cli("cost", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert expect in lines[0] and "bad.yaml" in lines[0]


def test_bad_yaml_syntax_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nnodes: [1, 2\n")
    res = run_cli("cost", str(path))
    assert res.returncode == 2 and "not valid YAML at line" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("cost", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "no such cluster file" in res.stderr
    res = run_cli("cost", "fire-flyer-2", "--baseline", "7")
    assert res.returncode == 2 and "--baseline 7" in res.stderr


def test_base_chain_and_null_override():
    pcie = shipped("fire-flyer-2-pcie-3layer")
    assert pcie.get("network.layers") == 3 and pcie.get("network.extra_switches") is None
    assert pcie.get("prices.node") == 9.0                          # inherited from fire-flyer-2.yaml
    assert pcie.paper["table3"]["switches"] == 200 and "allreduce" not in pcie.paper
    with pytest.raises(KeyError):
        pcie.get("paper.table3")


# ---- h5io: the run-group helper -----------------------------------------------------------------

def test_h5io_append_and_read(tmp_path):
    path = str(tmp_path / "r.h5")
    attrs = h5io.provenance("unit_test", "model", ["x", "--y"], {"a": 1}, "lbl")
    tables = {"t": {"n": ([1, 2, 3], "count"), "x": (np.array([0.5, 1.5, 2.5]), "GB/s"),
                    "s": (["a", "bb", "ccc"], "1"), "m": (np.ones((3, 4)), "us")}}
    assert h5io.append_run(path, attrs, tables) == "000000"
    assert h5io.append_run(path, dict(attrs, program="other"), {}) == "000001"
    import h5py
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "ffbench-results" and int(f.attrs["schema_version"]) == 1
        assert f["runs/000000/t/x"].attrs["units"] == "GB/s"
    runs = h5io.read_runs(path)
    assert [r.id for r in runs] == ["000000", "000001"]
    r0 = runs[0]
    assert r0.attrs["program"] == "unit_test" and r0.attrs["hosts"] and r0.attrs["nranks"] == 1
    assert list(r0.table("t")["s"]) == ["a", "bb", "ccc"]
    assert r0.table("t")["m"].shape == (3, 4) and r0.units["t"]["n"] == "count"
    assert [r.id for r in h5io.read_runs(path, program="other")] == ["000001"]
    with pytest.raises(KeyError, match="has no table 'nope'"):
        r0.table("nope")
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]


def test_h5io_rejects_bad_input(tmp_path):
    path = str(tmp_path / "r.h5")
    with pytest.raises(ValueError, match="has 2 rows"):
        h5io.append_run(path, {"program": "x"}, {"t": {"a": ([1, 2, 3], "1"), "b": ([1, 2], "1")}})
    with pytest.raises(ValueError, match="give \\(values, units\\)"):
        h5io.append_run(path, {"program": "x"}, {"t": {"a": [1, 2, 3]}})
    assert not os.path.exists(path)
    import h5py
    other = str(tmp_path / "other.h5")
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(h5io.ResultsFileError, match="not an ffbench results file"):
        h5io.append_run(other, {"program": "x"}, {})
    with pytest.raises(h5io.ResultsFileError):
        h5io.read_runs(str(tmp_path / "missing.h5"))
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]


def test_cluster_error_is_one_line():
    with pytest.raises(ClusterError) as exc:
        Cluster({"name": "x", "nodes": 1})
    assert "missing key 'gpus_per_node'" in str(exc.value) and "\n" not in str(exc.value)
