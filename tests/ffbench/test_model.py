"""Tests of `ffbench model allreduce`: trees, the discrete-event simulation against closed forms,
the paper checks (R1-R3) with the shipped description, calibration from synthetic measurements,
the emulated-cluster comparison (check 2) and clear errors."""
import math
import os
import subprocess
import time

import numpy as np
import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

from ffbench.data import h5io  # noqa: E402
from ffbench.models.projection import paper_comparison  # noqa: E402
from ffbench.models.allreduce import hfreduce_loads, predict, predict_emu  # noqa: E402
from ffbench.models.calibrate import calibrate  # noqa: E402
from ffbench.models.cluster import Cluster, load_cluster  # noqa: E402
from ffbench.models.sim import (closed_form_tree_allreduce, double_tree,  # noqa: E402
                                   simulate_tree_allreduce, single_chunk_time_pow2, tree_children,
                                   tree_depth, tree_parents)

CLUSTERS = os.path.join(ROOT, "configs", "clusters")
FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
PAPER_GPUS = (16, 32, 64, 128, 256, 512)


def shipped(name):
    return load_cluster(os.path.join(CLUSTERS, name + ".yaml"))


def run_cli(*args, timeout=300):
    return subprocess.run([FFBENCH, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


# ---- trees ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", list(range(2, 70)) + [160, 625, 1250])
def test_double_binary_tree_shape(n):
    depths = []
    leaves = []
    for t in (0, 1):
        parent = tree_parents(n, t)
        assert sum(p < 0 for p in parent) == 1                      # one root
        kids = tree_children(parent)
        assert max(len(k) for k in kids) <= 2
        root = parent.index(-1)
        assert len(kids[root]) == 1                                 # the root has one child
        depths.append(tree_depth(parent))                           # reaching the root = a tree
        leaves.append({v for v in range(n) if not kids[v]})
    assert not leaves[0] & leaves[1]                                # leaf in one, interior in the other
    assert max(depths) <= math.ceil(math.log2(n)) + 1


def test_tree_roles_give_the_paper_traffic():
    _trees, roles = double_tree(2)
    assert max(r["send"] for r in roles) == 1.0                     # degenerate 2-node tree
    _trees, roles = double_tree(64)
    assert max(r["send"] for r in roles) == 2.0 and max(r["recv_reduce"] for r in roles) == 1.0
    ff2 = shipped("fire-flyer-2")
    res, *_ = hfreduce_loads(ff2, 64)
    assert res["host memory"][0] == 24.0                            # sec. 2: 24 S per node
    res, *_ = hfreduce_loads(ff2, 64, nvlink=True)
    assert res["host memory"][0] == 16.0                            # sec. 3: about 16 S
    res, *_ = hfreduce_loads(ff2.with_values({"allreduce.hfreduce.h2d": "memcpy"}), 64)
    assert res["host memory"][0] == 30.0                            # H2D 8 reads with memcpy


# ---- the simulation against closed forms --------------------------------------------------------

@pytest.mark.parametrize("n", [2, 4, 8, 16, 64, 512])
def test_simulation_exact_single_chunk(n):
    args = dict(chunk_bytes=1e6, bw=12.5e9, latency=4e-6, t_in=3e-4, t_red=5e-5, t_out=2e-4)
    sim = simulate_tree_allreduce(n, 1, trees=1, **args)
    assert sim == pytest.approx(single_chunk_time_pow2(n, **args), rel=1e-12)


def test_simulation_token_bucket():
    """tc tbf on the emulated links: a full bucket of B bytes lets B bytes of a piece pass at once."""
    args = dict(chunk_bytes=1e6, bw=125e6, latency=5e-5, t_in=1e-4, t_red=2e-5, t_out=1e-4)
    plain = simulate_tree_allreduce(2, 1, trees=1, **args)
    # one piece up and one down, each through a full tx and rx bucket: 2 B / bw saved, exactly
    for burst in (1e5, 4e5):
        assert plain - simulate_tree_allreduce(2, 1, trees=1, burst_bytes=burst, **args) == \
            pytest.approx(2 * burst / args["bw"], rel=1e-9)
    # a bucket bigger than every transfer = links of unlimited rate
    free = simulate_tree_allreduce(8, 4, burst_bytes=1e12, **args)
    assert free == pytest.approx(simulate_tree_allreduce(8, 4, **dict(args, bw=1e30)), rel=1e-9)
    # a long pipeline: the bucket only helps at the start
    long_plain = simulate_tree_allreduce(4, 64, **args)
    long_burst = simulate_tree_allreduce(4, 64, burst_bytes=5e5, **args)
    assert 0 < long_plain - long_burst <= 4 * 5e5 / args["bw"]


def test_simulation_exact_one_node():
    for t_in, t_out in ((1e-4, 5e-5), (5e-5, 1e-4)):
        sim = simulate_tree_allreduce(1, 20, 1e6, 1e9, 0, t_in, 0, t_out)
        assert sim == pytest.approx(closed_form_tree_allreduce(1, 20, 1e6, 1e9, 0, t_in, 0, t_out))


@pytest.mark.parametrize("n", [2, 5, 16, 100])
def test_simulation_steady_state_period(n):
    """Each extra chunk costs exactly the busiest resource's period once the pipeline is full."""
    args = dict(n=n, chunk_bytes=2e6, bw=24e9, latency=5e-6, t_in=2.2e-4, t_red=1.5e-4, t_out=2.2e-4)
    t100 = simulate_tree_allreduce(chunks=100, **args)
    t200 = simulate_tree_allreduce(chunks=200, **args)
    period = (t200 - t100) / 100
    # closed-form period: max(2 t_in, 2 t_out, adds t_red, sends tau)
    expect = (closed_form_tree_allreduce(chunks=200, **args)
              - closed_form_tree_allreduce(chunks=100, **args)) / 100
    assert period == pytest.approx(expect, rel=0.01)


FF2_STAGE = dict(chunk_bytes=2 * 2**20, bw=24e9, latency=5e-6, t_in=2 * 2**20 / 9.375e9,
                 t_red=2 * 2**20 * 24 / 320e9, t_out=2 * 2**20 / 9.375e9)


@pytest.mark.parametrize("n", [2, 3, 5, 16, 33, 160, 625])
def test_closed_form_tracks_simulation_ff2(n):
    sim = simulate_tree_allreduce(n, 46, **FF2_STAGE)
    cf = closed_form_tree_allreduce(n, 46, **FF2_STAGE)
    assert abs(cf / sim - 1) < 0.05


@pytest.mark.parametrize("n, ratio", [(4, 1.0), (16, 1.5), (64, 0.8), (256, 0.1)])
def test_closed_form_tracks_simulation_other_regimes(n, ratio):
    """Network-bound (ratio >= 1) and local-bound regimes: within 12 % with many chunks."""
    t_in = 1e-4
    args = dict(chunk_bytes=2e6, bw=2e6 / (t_in * ratio), latency=5e-6, t_in=t_in, t_red=0.5 * t_in,
                t_out=t_in)
    sim = simulate_tree_allreduce(n, 46, **args)
    assert abs(closed_form_tree_allreduce(n, 46, **args) / sim - 1) < 0.12


def test_simulation_speed_1250_nodes():
    start = time.perf_counter()
    simulate_tree_allreduce(1250, 46, **FF2_STAGE)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"DES at 1,250 nodes took {elapsed:.1f} s"


# ---- check (1): the paper's numbers from the Fire-Flyer 2 description ------------------------------

@pytest.fixture(scope="module")
def ff2_rows():
    ff2 = shipped("fire-flyer-2")
    gpus = ff2.paper["allreduce"]["gpus"]
    rows = [predict(ff2, alg, g) for alg in ("hfreduce_tree", "nccl", "hfreduce_nvlink_tree", "hfreduce")
            for g in gpus]
    return ff2, rows


def test_check1_r1_r2_within_15_percent(ff2_rows):
    """The paper's HFReduce is a double binary tree: R1 is held to hfreduce_tree."""
    ff2, rows = ff2_rows
    ref = ff2.paper["allreduce"]
    by = {(r["algorithm"], r["gpus"]): r for r in rows}
    for g, r1, r2 in zip(ref["gpus"], ref["R1_hfreduce"], ref["R2_nccl"]):
        if g > 512:
            continue
        assert abs(by[("hfreduce_tree", g)]["algbw"] / r1 - 1) <= 0.15, g
        assert abs(by[("nccl", g)]["algbw"] / r2 - 1) <= 0.15, g
        ratio = by[("hfreduce_tree", g)]["algbw"] / by[("nccl", g)]["algbw"]
        assert 1.5 <= ratio <= 2.1, (g, ratio)                      # R3 up to 512 GPUs
    cmp = paper_comparison(ff2, rows)
    required = [c for c in cmp["checks"] if not c.get("informational")]
    assert [c["name"][:2] for c in required] == ["R1", "R2", "R3"]   # all three were checked
    assert all(c["passed"] for c in required)
    assert {c["algorithm"] for c in cmp["rows"] if c["reference"] == "R1"} == {"hfreduce_tree"}


def test_nccl_drop_at_1024_is_not_forced(ff2_rows):
    _ff2, rows = ff2_rows
    nccl_1024 = next(r for r in rows if r["algorithm"] == "nccl" and r["gpus"] == 1024)
    assert nccl_1024["algbw"] > 2 * 1.63                            # the model does not bend to R2


def test_busbw_and_bottlenecks(ff2_rows):
    _ff2, rows = ff2_rows
    h = next(r for r in rows if r["algorithm"] == "hfreduce_tree" and r["gpus"] == 16)
    assert h["busbw"] == pytest.approx(h["algbw"] * 2 * 15 / 16)
    assert h["bottleneck"].startswith("PCIe root port")
    assert h["ceiling_algbw"] == pytest.approx(37.5 / 4)            # 2 GPUs x (D2H + H2D) on 37.5


def test_predictions_come_from_physics_not_from_paper():
    ff2 = shipped("fire-flyer-2")
    bare = Cluster(ff2.data(), ff2.path)                            # the same inputs, no `paper:`
    for alg in ("hfreduce", "hfreduce_tree", "hfreduce_ring", "nccl"):
        assert predict(bare, alg, 256)["algbw"] == predict(ff2, alg, 256)["algbw"]
    faster_port = ff2.with_values({"pcie.root_port_duplex_gbs": 75.0})
    assert predict(faster_port, "hfreduce_tree", 256)["bottleneck"] == "NIC"
    assert predict(faster_port, "hfreduce_tree", 256)["algbw"] > 1.2 * predict(ff2, "hfreduce_tree", 256)["algbw"]
    # the ring with the library's own chunk (256 KiB x 16 in flight: its window stays open here)
    auto, fast_auto = (c.with_values({"allreduce.hfreduce.chunk_mib": "auto"}) for c in (ff2, faster_port))
    assert predict(fast_auto, "hfreduce_ring", 256)["bottleneck"] == "NIC"
    assert predict(fast_auto, "hfreduce_ring", 256)["algbw"] > 1.2 * predict(auto, "hfreduce_ring", 256)["algbw"]
    slow_p2p = ff2.with_values({"pcie.gpu_nic_p2p_gbs": 4.0, "pcie.gpu_gpu_p2p_gbs": 4.0})
    assert predict(slow_p2p, "nccl", 256)["algbw"] < 0.6 * predict(ff2, "nccl", 256)["algbw"]
    assert predict(ff2.with_values({"host_memory.practical_gbs": 100.0}), "hfreduce", 256)[
        "bottleneck"] == "host memory"


def test_projection_next_gen_and_10000():
    ff2, nxt = shipped("fire-flyer-2"), shipped("next-gen")
    a = predict(ff2, "hfreduce", 10000)
    b = predict(nxt, "hfreduce", 10000)
    assert a["inter_node"] == b["inter_node"] == "tree"            # 2,498 ring steps cost too much
    assert a["nodes"] == 1250 and b["algbw"] > 2 * a["algbw"]
    assert b["bottleneck"] == "host memory"                         # 8 NICs: memory binds again
    sim = predict(ff2, "hfreduce", 10000, simulate=True)["simulated"]
    assert abs(a["algbw"] / sim["algbw"] - 1) < 0.05


# ---- calibration from synthetic measurements -----------------------------------------------------

def _membw_file(path, best):
    threads = [1, 2, 1, 2]
    kernels = ["copy", "copy", "add", "add"]
    bw = [best * 0.7, best, best * 0.65, best * 1.1]                # add is not what we take
    h5io.append_run(path, {"program": "membw_bench", "kind": "probe", "nranks": 1, "nnodes": 1},
                    {"membw": {"threads": (threads, "count"), "kernel": (kernels, "1"),
                               "bandwidth": (bw, "GB/s")}})


def _emu_collectives(path, truth, nodes=(2, 3, 4, 5, 6), sizes=(1 << 20, 4 << 20, 16 << 20, 64 << 20),
                     noise=0.01, link_gbit=1.0, scale=1.0, inter_node="auto"):
    """Runs as the benchmarks record them, timed by the model of `truth`; HFReduce runs carry
    their --inter-node option, the per-row `algorithm` and the link figures of the rule."""
    rng = np.random.default_rng(7)
    for backend in ("mpi", "hfreduce"):
        for n in nodes:
            times, algorithms = [], []
            for s in sizes:
                p = predict_emu(truth, n, backend, s, link_gbit=link_gbit, inter_node=inter_node)
                times.append(p["time_s"] * scale * (1 + noise * rng.standard_normal()) * 1e6)
                algorithms.append(p.get("inter_node", ""))
            size = np.array(sizes)
            algbw = size / (np.array(times) * 1e-6) / 1e9
            attrs = {"program": f"{backend}_allreduce_bench", "kind": "collective",
                     "backend": backend, "nnodes": n, "nranks": n, "emu_link_gbit": link_gbit}
            table = {"size": (size, "B"), "time": (times, "us"), "algbw": (algbw, "GB/s"),
                     "busbw": (algbw, "GB/s"), "placement": (["out-of-place"] * len(sizes), "1")}
            if backend == "hfreduce":
                attrs.update(_hfreduce_attrs(truth, inter_node, link_gbit))
                table["algorithm"] = (algorithms, "1")
            h5io.append_run(path, attrs, {"collective": table})


def _hfreduce_attrs(truth, inter_node, link_gbit):
    """What hfreduce_bench records for the rule: its option, chunk and the link it measured."""
    return {"hfreduce_inter_node_option": inter_node,
            "hfreduce_chunk_bytes": int(truth.get("allreduce.hfreduce.chunk_mib") * (1 << 20)),
            "hfreduce_pipeline_depth": 16, "hfreduce_fallback_bytes": 16384,
            "hfreduce_link_latency_us": truth.get("emulation.link_latency_us"),
            "hfreduce_link_gbps": link_gbit / 8 * truth.get("emulation.tcp_efficiency")}


def test_calibration_recovers_known_parameters(tmp_path):
    emu = shipped("emu")
    truth = emu.with_values({"host_memory.practical_gbs": 22.0, "emulation.tcp_efficiency": 0.72,
                             "allreduce.mpi.step_latency_us": 400.0, "emulation.link_latency_us": 900.0})
    path = str(tmp_path / "emu.h5")
    _membw_file(path, 22.0)
    _emu_collectives(path, truth)
    fitted, report, extra = calibrate(emu, [path])
    assert fitted.get("host_memory.practical_gbs") == pytest.approx(22.0)
    assert fitted.get("emulation.tcp_efficiency") == pytest.approx(0.72, rel=0.03)
    assert fitted.get("allreduce.mpi.step_latency_us") == pytest.approx(400.0, rel=0.35)
    assert fitted.get("emulation.link_latency_us") == pytest.approx(900.0, rel=0.35)
    assert extra["rms_log_error"] < 0.03
    assert {k for k, _v, _s in report} >= {"host_memory.practical_gbs", "emulation.tcp_efficiency"}


def test_calibration_pcie_and_gpu_cluster_efficiency(tmp_path):
    path = str(tmp_path / "gpu.h5")
    tests = ["d2h", "h2d", "d2h", "bidir", "p2p_gpu_nic", "p2p_gpu_gpu"]
    gpus = [1, 1, 2, 2, 1, 1]
    bw = [26.0, 25.0, 36.0, 33.0, 8.5, 9.0]
    h5io.append_run(path, {"program": "pcie_bench", "kind": "probe"},
                    {"pcie": {"test": (tests, "1"), "gpus": (gpus, "count"), "bandwidth": (bw, "GB/s")}})
    ff2 = shipped("fire-flyer-2")
    truth = ff2.with_values({"pcie.gpu_d2h_gbs": 26.0, "pcie.gpu_h2d_gbs": 25.0, "pcie.root_port_gbs": 36.0,
                             "pcie.root_port_duplex_gbs": 33.0, "pcie.gpu_nic_p2p_gbs": 8.5,
                             "pcie.gpu_gpu_p2p_gbs": 9.0, "allreduce.hfreduce.efficiency": 0.8})
    sizes = np.array([64 << 20, 192937984])
    for n in (2, 4, 8):
        preds = [predict(truth, "hfreduce", 8 * n, int(s)) for s in sizes]
        h5io.append_run(path, {"program": "hfreduce_bench", "kind": "collective", "backend": "hfreduce",
                               "nnodes": n, "nranks": 8 * n, "hfreduce_inter_node_option": "auto"},
                        {"collective": {"size": (sizes, "B"),
                                        "time": ([p["time_s"] * 1e6 for p in preds], "us"),
                                        "algorithm": ([p["inter_node"] for p in preds], "1")}})
    fitted, report, _ = calibrate(ff2, [path])
    for key, value in (("pcie.gpu_d2h_gbs", 26.0), ("pcie.gpu_h2d_gbs", 25.0), ("pcie.root_port_gbs", 36.0),
                       ("pcie.root_port_duplex_gbs", 33.0), ("pcie.gpu_nic_p2p_gbs", 8.5),
                       ("pcie.gpu_gpu_p2p_gbs", 9.0)):
        assert fitted.get(key) == pytest.approx(value), key
    assert fitted.get("allreduce.hfreduce.efficiency") == pytest.approx(0.8, rel=0.01)


def test_calibrate_cli_errors(tmp_path):
    empty = str(tmp_path / "empty.h5")
    h5io.append_run(empty, {"program": "x", "kind": "probe"}, {"other": {"a": ([1], "1")}})
    res = run_cli("model", "allreduce", "--cluster", "emu", "--calibrate", empty)
    assert res.returncode == 2 and "no table calibration can use" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("model", "allreduce", "--cluster", "emu", "--calibrate", str(tmp_path / "none.h5"))
    assert res.returncode == 2 and "no such results file" in res.stderr


# ---- check (2): the emulated cluster --------------------------------------------------------------

def test_compare_cli_passes_and_fails(tmp_path):
    emu = shipped("emu")
    good = str(tmp_path / "good.h5")
    _emu_collectives(good, emu, nodes=(2, 4), sizes=(16 << 20,), noise=0.0)
    res = run_cli("model", "allreduce", "--cluster", "emu", "--gpus", "2,4", "--compare", good)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "check (2): 4/4 points within 15% -> PASS" in res.stdout
    bad = str(tmp_path / "bad.h5")
    _emu_collectives(bad, emu, nodes=(2,), sizes=(16 << 20,), noise=0.0, scale=1.5)
    res = run_cli("model", "allreduce", "--cluster", "emu", "--gpus", "2", "--compare", bad)
    assert res.returncode == 1 and "OUTSIDE" in res.stdout and "FAIL" in res.stdout


def test_calibrate_then_write_cluster(tmp_path):
    emu = shipped("emu")
    truth = emu.with_values({"host_memory.practical_gbs": 25.0, "emulation.tcp_efficiency": 0.9})
    path = str(tmp_path / "m.h5")
    _membw_file(path, 25.0)
    _emu_collectives(path, truth, nodes=(2, 3), noise=0.0)
    out = str(tmp_path / "cal.yaml")
    res = run_cli("model", "allreduce", "--cluster", "emu", "--calibrate", path, "--write-cluster", out,
                  "--compare", path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "host_memory.practical_gbs = 25" in res.stdout
    again = load_cluster(out)
    assert again.get("host_memory.practical_gbs") == pytest.approx(25.0)
    assert again.get("emulation.tcp_efficiency") == pytest.approx(0.9, rel=0.02)


def test_check2_emulated_cluster_measurements():
    """Check (2) against real measurements: the committed emulated-cluster sweep
    (results/reference-run.h5; FFB_EMU_RESULTS=a.h5:b.h5 checks other files). Only the memory
    bandwidth is taken from the files; tcp efficiency and latencies stay the description's
    assumptions (nothing fitted to the points checked), so this check can fail. Runs from before
    HFReduce's ring (tree) and after (each row's `algorithm`) are both read."""
    default = os.path.join(ROOT, "results", "reference-run.h5")
    files = os.environ.get("FFB_EMU_RESULTS", default).split(":")
    from ffbench.models.projection import compare_measured
    from ffbench.models.calibrate import fit_membw, read_measurements
    emu = shipped("emu")
    found = read_measurements(files)
    if found["membw"]:                                    # measured memory bandwidth, nothing else
        emu = emu.with_values(fit_membw(found["membw"])[0])
    skipped = {}
    rows = compare_measured(emu, files, skipped=skipped)
    assert rows, f"no emulated-cluster mpi ring / hfreduce points in {files} (skipped: {skipped})"
    assert {r["nnodes"] for r in rows} == {2, 3, 4, 5, 6}
    assert {r["backend"] for r in rows} == {"mpi", "hfreduce"}
    # each HFReduce row is modelled with what it ran: older runs the tree, newer ones their
    # `algorithm` column; runs of --inter-node auto also ran what the Python rule picks
    assert {r["algorithm"] for r in rows if r["backend"] == "hfreduce"} <= {"tree", "ring"}
    disagree = [r for r in rows if r["rule_agrees"] is False]
    assert not disagree, disagree
    bad = [r for r in rows if not r["within"]]
    assert not bad, bad


# ---- the command end to end and its errors ---------------------------------------------------------

def test_cli_paper_checks_and_output(tmp_path):
    out = str(tmp_path / "model.h5")
    png = str(tmp_path / "model.png")
    res = run_cli("model", "allreduce", "--cluster", "fire-flyer-2", "--cluster", "next-gen", "--project",
                  "--output", out, "--plot", png)
    assert res.returncode == 0, res.stderr
    assert "MODEL OUTPUT" in res.stdout
    assert "check: R1 within 15% at 16-512 GPUs: 6/6 points" in res.stdout
    assert "check: R2 within 15% at 16-512 GPUs: 6/6 points" in res.stdout
    assert "NOT reproduced" in res.stdout                          # 1024+ ratio, discussed not forced
    assert " 10000  1250  hfreduce" in res.stdout
    run = h5io.read_runs(out)[0]
    assert run.attrs["kind"] == "model"
    table = run.table("allreduce_model")
    assert "Next-gen (sec. 8)" in set(table["cluster"]) and 10000 in set(table["gpus"])
    assert run.units["allreduce_model"]["algbw"] == "GB/s"
    vs = run.table("allreduce_vs_paper")
    assert set(vs["reference"]) == {"R1", "R2", "R4"}
    pytest.importorskip("matplotlib")
    assert os.path.getsize(png) > 10000


@pytest.mark.parametrize("args, expect", [
    (["--gpus", "12"], "--gpus 12: must be a positive multiple of gpus_per_node = 8"),
    (["--gpus", "a,b"], "--gpus 'a,b': give comma-separated integers"),
    (["--size", "lots"], "--size 'lots'"),
    (["--algorithms", "ring"], "--algorithms: unknown 'ring'"),
    (["--write-cluster", "x.yaml"], "--write-cluster writes the calibrated description"),
])
def test_cli_bad_arguments(args, expect):
    res = run_cli("model", "allreduce", "--cluster", "fire-flyer-2", *args)
    assert res.returncode == 2, res.stdout
    assert expect in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_missing_key_names_it(tmp_path):
    import yaml
    with open(os.path.join(CLUSTERS, "dgx-a100.yaml")) as fh:
        data = yaml.safe_load(fh)
    del data["pcie"]["root_port_duplex_gbs"]
    path = tmp_path / "nopcie.yaml"
    path.write_text(yaml.safe_dump(data))
    res = run_cli("model", "allreduce", "--cluster", str(path), "--algorithms", "hfreduce", "--gpus", "16")
    assert res.returncode == 2
    assert "missing key 'pcie.root_port_duplex_gbs'" in res.stderr and "hfreduce" in res.stderr


def test_emulated_link_rate_is_read_from_the_run(tmp_path):
    from ffbench.models.calibrate import _link_gbit
    path = str(tmp_path / "r.h5")
    h5io.append_run(path, {"program": "p", "emu_link_gbit": 2.5}, {})
    h5io.append_run(path, {"program": "p", "environment": '{"FFB_EMU_LINK_RATE": "500mbit"}'}, {})
    h5io.append_run(path, {"program": "p", "options": '{"rate": "10gbit"}'}, {})
    h5io.append_run(path, {"program": "p"}, {})
    assert [_link_gbit(r) for r in h5io.read_runs(path)] == [2.5, 0.5, 10.0, None]
