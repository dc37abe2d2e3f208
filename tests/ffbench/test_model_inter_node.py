"""HFReduce's inter-node rule and ring in the model: the rule against the golden cases the C++
library is tested with, the ring's simulation against its closed form and the rule, `hfreduce`
(auto) choosing per size and node count, and check (2) modelling what each measured row ran."""
import json
import os
import subprocess

import numpy as np
import pytest

from ffbench.data import h5io
from ffbench.models.allreduce import hfreduce_loads, predict, predict_emu
from ffbench.models.calibrate import collective_points, emu_comparable
from ffbench.models.cluster import ClusterError, load_cluster
from ffbench.models.inter_node import (call_chunk, choose_chunk, hfreduce_inter_node_choice,
                                       inter_node_times, split_algorithm, tree_depth_bound)
from ffbench.models.projection import compare_measured
from ffbench.models.sim import closed_form_ring_allreduce, simulate_ring_allreduce

ROOT = os.environ.get("FFB_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CASES = os.path.join(ROOT, "tests", "data", "hfreduce_inter_node_cases.json")
FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
KIB, MIB = 1 << 10, 1 << 20


def shipped(name):
    return load_cluster(os.path.join(ROOT, "configs", "clusters", name + ".yaml"))


def run_cli(*args):
    return subprocess.run([FFBENCH, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


# ---- the rule ----------------------------------------------------------------------------------

def test_rule_golden_cases():
    """The cases the C++ library's test reads too (rule.md): same choice, times to 1e-6."""
    if not os.path.exists(CASES):
        pytest.skip(f"{os.path.relpath(CASES, ROOT)} not written yet (the lead adds it)")
    with open(CASES) as fh:
        cases = json.load(fh)["cases"]
    assert cases, f"{CASES}: no cases"
    for case in cases:
        got = hfreduce_inter_node_choice(case["nodes"], case["bytes"], case["latency_us"] * 1e-6,
                                         case["gbps"] * 1e9, case["chunk_bytes"])
        assert got.choice == case["choice"], case
        for key, value in (("t_tree_us", got.t_tree_s), ("t_ring_us", got.t_ring_s)):
            if case.get(key) is None:
                assert value is None, case
            else:
                assert value * 1e6 == pytest.approx(case[key], rel=1e-6), (key, case)


def test_rule_by_hand():
    B, a, C = 10e9, 10e-6, 256 * KIB
    # two nodes, 1 MiB: d = 1; tree 2S/B + 2a + C/B, ring S/B + 2a
    t_tree, t_ring = inter_node_times(2, MIB, a, B, C)
    assert t_tree == pytest.approx(2 * MIB / B + 2 * a + C / B, rel=1e-15)
    assert t_ring == pytest.approx(MIB / B + 2 * a, rel=1e-15)
    assert hfreduce_inter_node_choice(2, MIB, a, B, C).choice == "ring"
    # 1,024 nodes, 4 MiB: d = 10; ring pays 2,046 latencies, tree 20 (+ fill)
    t_tree, t_ring = inter_node_times(1024, 4 * MIB, a, B, C)
    assert t_tree == pytest.approx(8 * MIB / B + 20 * a + 10 * C / B, rel=1e-15)
    assert t_ring == pytest.approx(2 * 1023 / 1024 * 4 * MIB / B + 2046 * a, rel=1e-15)
    assert hfreduce_inter_node_choice(1024, 4 * MIB, a, B, C).choice == "tree"
    assert [tree_depth_bound(n) for n in (2, 3, 4, 5, 8, 9, 1024, 1025, 1250)] == \
        [1, 2, 2, 3, 3, 4, 10, 11, 11]


def test_rule_tie_keeps_the_tree_and_edges():
    # n = 4 (d = 2): tree 2S/B + 4a + 2C/B, ring 1.5 S/B + 6a: equal when a = (S/4 + C)/B
    # (powers of two, so the tie is exact in floating point)
    B, C, S = float(1 << 30), 64 * KIB, MIB
    a = (S / 4 + C) / B
    t_tree, t_ring = inter_node_times(4, S, a, B, C)
    assert t_tree == t_ring
    assert hfreduce_inter_node_choice(4, S, a, B, C).choice == "tree"
    assert hfreduce_inter_node_choice(4, S + 512, a, B, C).choice == "ring"
    assert hfreduce_inter_node_choice(4, S - 512, a, B, C).choice == "tree"
    assert hfreduce_inter_node_choice(1, MIB, 1e-5, B, C) == ("intra-node", None, None)
    assert hfreduce_inter_node_choice(4, 8 * KIB, 1e-5, B, C, fallback_bytes=16 * KIB).choice == "mpi"
    # one node: the shared-memory small path, unless small_path mpi or above its slot size
    assert hfreduce_inter_node_choice(1, 8 * KIB, 1e-5, B, C, fallback_bytes=16 * KIB).choice == "shm"
    assert hfreduce_inter_node_choice(1, 8 * KIB, 1e-5, B, C, fallback_bytes=16 * KIB,
                                      small_path="mpi").choice == "mpi"
    assert hfreduce_inter_node_choice(1, 512 * KIB, 1e-5, B, C, fallback_bytes=MIB).choice == "mpi"
    assert hfreduce_inter_node_choice(4, MIB, 1e-5, B, C, option="tree").choice == "tree"
    assert hfreduce_inter_node_choice(1024, MIB, 1e-5, B, C, option="ring").choice == "ring"
    with pytest.raises(ValueError, match="inter-node option 'fast'"):
        hfreduce_inter_node_choice(4, MIB, 1e-5, B, C, option="fast")


def test_chunk_plan_mirrors_the_library():
    """inter_node::plan_chunks: a given value is kept; auto = 1 MiB x 4 on one node, 256 KiB on
    several; auto depth = 4 MiB of slots / chunk within 2..4 (one node) or 2..16 (several)."""
    assert choose_chunk(1) == (MIB, 4)
    assert choose_chunk(2) == (256 * KIB, 16)
    assert choose_chunk(1250) == (256 * KIB, 16)
    assert choose_chunk(2, MIB) == (MIB, 4)
    assert choose_chunk(2, 64 * KIB) == (64 * KIB, 16)
    assert choose_chunk(2, 8 * MIB) == (8 * MIB, 2)
    assert choose_chunk(1, 4 * KIB) == (4 * KIB, 4)
    assert choose_chunk(2, 0, 7) == (256 * KIB, 7)
    assert call_chunk(64 * MIB, 256 * KIB) == 256 * KIB
    assert call_chunk(100 * KIB, 256 * KIB) == 100 * KIB          # no more than the message
    assert call_chunk(64 * MIB, 1000) == 1024                      # rounded up to 512 B


def test_algorithm_names():
    bases = ("hfreduce", "hfreduce_nvlink")
    assert split_algorithm("hfreduce", bases) == ("hfreduce", "auto")
    assert split_algorithm("hfreduce_ring", bases) == ("hfreduce", "ring")
    assert split_algorithm("hfreduce_nvlink_tree", bases) == ("hfreduce_nvlink", "tree")
    assert split_algorithm("nccl_ring", bases) is None
    assert split_algorithm("hfreduce_star", bases) is None


# ---- the ring's pipeline -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 5, 8, 16])
def test_ring_link_bound_is_the_rules_ring_time(n):
    """No node stages: the closed form is exactly the rule's T_ring; without latency the
    simulation is too (every port busy from start to end), with latency it hides some of it."""
    C, chunks, B = 256 * KIB, 12, 1e9
    size = chunks * C
    for a in (0.0, 20e-6):
        rule = inter_node_times(n, size, a, B, C)[1]
        cf = closed_form_ring_allreduce(n, chunks, C, B, a, 0.0, 0.0, 0.0)
        assert cf == pytest.approx(rule, rel=1e-12)
        sim = simulate_ring_allreduce(n, chunks, C, B, a, 0.0, 0.0, 0.0)
        if a == 0:
            assert sim == pytest.approx(rule, rel=1e-12)
        else:
            assert 2 * (n - 1) / n * size / B < sim <= cf * (1 + 1e-12)


@pytest.mark.parametrize("n", [2, 3, 6, 33])
def test_ring_simulation_exact_single_chunk(n):
    args = dict(chunk_bytes=1e6, bw=12.5e9, latency=4e-6, t_in=3e-4, t_red=5e-5, t_out=2e-4)
    tau = args["chunk_bytes"] / n / args["bw"]
    hand = (args["t_in"] + (n - 1) * (tau + args["latency"] + args["t_red"])
            + (n - 1) * (tau + args["latency"]) + args["t_out"])
    assert simulate_ring_allreduce(n, 1, **args) == pytest.approx(hand, rel=1e-12)
    assert closed_form_ring_allreduce(n, 1, **args) == pytest.approx(hand, rel=1e-12)


@pytest.mark.parametrize("n, regime", [(2, "link"), (4, "link"), (6, "local"), (16, "link"),
                                       (16, "local"), (32, "mixed")])
def test_ring_closed_form_tracks_simulation(n, regime):
    C = 1e6
    t_in = {"link": 1e-4, "local": 2e-3, "mixed": 1e-3}[regime]
    args = dict(chunk_bytes=C, bw=1e9, latency=5e-6, t_in=t_in, t_red=t_in / n, t_out=t_in)
    sim = simulate_ring_allreduce(n, 46, **args)
    assert abs(closed_form_ring_allreduce(n, 46, **args) / sim - 1) < 0.12


@pytest.mark.parametrize("n, depth", [(6, 16), (32, 4), (64, 16), (64, 2)])
def test_ring_window(n, depth):
    """At most `depth` chunks in flight: a window costs one trip round the ring (2(n-1) dependent
    steps), which bounds the ring where latency, not bandwidth, dominates."""
    C = 256 * KIB
    args = dict(chunk_bytes=C, bw=24e9, latency=5e-6, t_in=C / 9.375e9, t_red=C / n / 40e9,
                t_out=C / 9.375e9)
    sim = simulate_ring_allreduce(n, 46, depth=depth, **args)
    cf = closed_form_ring_allreduce(n, 46, depth=depth, **args)
    assert abs(cf / sim - 1) < 0.08
    assert sim >= simulate_ring_allreduce(n, 46, **args) * (1 - 1e-9)   # a window never helps
    chain = 2 * (n - 1) * (C / n / args["bw"] + args["latency"]) + (n - 1) * args["t_red"]
    assert cf >= 45 * chain / depth                                     # one chain per window


def test_forced_ring_at_scale_is_window_bound():
    ff2 = shipped("fire-flyer-2").with_values({"allreduce.hfreduce.chunk_mib": "auto"})
    ring = predict(ff2, "hfreduce_ring", 10000)
    assert "the ring's window binds (16 chunks in flight)" in ring["bottleneck"]
    assert ring["algbw"] < 0.1 * predict(ff2, "hfreduce_tree", 10000)["algbw"]
    assert "window" not in predict(ff2, "hfreduce_ring", 16)["bottleneck"]


def test_ring_token_bucket_helps_only_at_the_start():
    args = dict(chunk_bytes=256 * KIB, bw=117.5e6, latency=50e-6, t_in=1e-4, t_red=2e-5, t_out=1e-4)
    plain = simulate_ring_allreduce(4, 64, **args)
    burst = simulate_ring_allreduce(4, 64, burst_bytes=5e5, **args)
    assert 0 < plain - burst <= 2 * 5e5 / args["bw"]


# ---- HFReduce's model with the ring -----------------------------------------------------------------

def test_ring_loads():
    ff2 = shipped("fire-flyer-2")
    for n in (2, 5, 64):
        f = 2 * (n - 1) / n
        res, _stages, roles, steps = hfreduce_loads(ff2, n, inter_node="ring")
        assert roles == {"send": f, "recv": f, "recv_reduce": f / 2} and steps == 2 * (n - 1)
        assert res["NIC"][0] == pytest.approx(f)
        # 8 D2H writes + 8 reduce reads + 1 write + the network's send, recv and adds + 2 GDRCopy reads
        assert res["host memory"][0] == pytest.approx(17 + 2.5 * f + 2)
        tree, *_ = hfreduce_loads(ff2, n, inter_node="tree")
        assert {k: v for k, v in res.items() if k not in ("NIC", "host memory")} == \
            {k: v for k, v in tree.items() if k not in ("NIC", "host memory")}  # same node stages
    emu = shipped("emu")
    # two nodes: the double binary tree and the ring move the same bytes
    for size in (MIB, 16 * MIB):
        a = predict_emu(emu, 2, "hfreduce", size, inter_node="tree")
        b = predict_emu(emu, 2, "hfreduce", size, inter_node="ring")
        assert a["loads"] == b["loads"]


@pytest.mark.parametrize("cluster", ["fire-flyer-2", "next-gen"])
def test_auto_is_the_rule_with_the_descriptions_inputs(cluster):
    c = shipped(cluster)
    latency = c.get("nics.latency_us") * 1e-6
    rate = c.get("nics.gbit") * 1e9 / 8 * c.get("nics.efficiency")
    seen = set()
    for gpus in (16, 64, 512, 2048, 10000):
        n = gpus // c.gpus_per_node
        for size in (256 * KIB, 16 * MIB, 192937984, 1 << 30):
            auto = predict(c, "hfreduce", gpus, size)
            chunk = int(c.get("allreduce.hfreduce.chunk_mib") * MIB)
            expect = hfreduce_inter_node_choice(n, size, latency, rate, call_chunk(size, chunk))
            assert auto["inter_node"] == expect.choice, (gpus, size)
            assert auto["inter_node_rule"]["t_tree_us"] == pytest.approx(expect.t_tree_s * 1e6)
            forced = predict(c, f"hfreduce_{expect.choice}", gpus, size)
            assert forced["time_s"] == auto["time_s"] and forced["inter_node"] == expect.choice
            seen.add(expect.choice)
    assert seen == {"tree", "ring"}                    # both occur on these clusters


def test_auto_chunk_from_the_library_rule():
    ff2 = shipped("fire-flyer-2").with_values({"allreduce.hfreduce.chunk_mib": "auto"})
    r = predict(ff2, "hfreduce", 256, 64 * MIB)
    assert r["chunk_bytes"] == 256 * KIB and r["chunk_source"] == "auto" and r["pipeline_depth"] == 16
    assert r["inter_node_rule"]["chunk_bytes"] == 256 * KIB
    one = predict(ff2, "hfreduce", 8, 64 * MIB)
    assert one["inter_node"] == "intra-node" and one["chunk_bytes"] == MIB
    with pytest.raises(ClusterError, match="chunk_mib' must be a number > 0 or 'auto'"):
        ff2.with_values({"allreduce.hfreduce.chunk_mib": "big"})


# ---- check (2): each measured row modelled with what it ran ---------------------------------------

def _hfreduce_run(path, cluster, n, sizes, label=None, option="auto", column=True, record_link=True):
    """An emulated hfreduce_bench run timed by the model of what it ran; `label` overrides the
    algorithm the rows say they ran (to show the comparison follows the rows)."""
    preds = [predict_emu(cluster, n, "hfreduce", s, inter_node=option) for s in sizes]
    attrs = {"program": "hfreduce_bench", "kind": "collective", "backend": "hfreduce", "nnodes": n,
             "nranks": n, "emu_link_gbit": 1.0, "hfreduce_inter_node_option": option,
             "hfreduce_chunk_bytes": 256 * KIB, "hfreduce_pipeline_depth": 16,
             "hfreduce_fallback_bytes": 16 * KIB}
    if record_link:
        attrs.update({"hfreduce_link_latency_us": cluster.get("emulation.link_latency_us"),
                      "hfreduce_link_gbps": 0.125 * cluster.get("emulation.tcp_efficiency")})
    table = {"size": (np.array(sizes), "B"), "time": ([p["time_s"] * 1e6 for p in preds], "us"),
             "placement": (["out-of-place"] * len(sizes), "1")}
    if column:
        table["algorithm"] = ([label or p["inter_node"] for p in preds], "1")
    h5io.append_run(path, attrs, {"collective": table})
    return preds


def test_check2_models_the_algorithm_each_row_ran(tmp_path):
    emu = shipped("emu")
    sizes = (MIB, 4 * MIB)
    good = str(tmp_path / "good.h5")
    for n in (2, 4, 6):
        preds = _hfreduce_run(good, emu, n, sizes)
        assert {p["inter_node"] for p in preds} == {"ring"}       # the rule's choice on 1 gbit links
    _hfreduce_run(good, emu, 4, sizes, option="tree")
    rows = compare_measured(emu, [good])
    assert len(rows) == 8 and all(r["within"] for r in rows)
    assert [r["algorithm"] for r in rows] == ["ring"] * 6 + ["tree"] * 2
    assert all(r["rule_agrees"] for r in rows[:6]) and rows[6]["rule_agrees"] is None
    # the same ring times said to be tree rows: the tree's model (4-6 nodes: 2 S per link) misses
    relabelled = str(tmp_path / "relabelled.h5")
    for n in (4, 6):
        _hfreduce_run(relabelled, emu, n, sizes, label="tree", record_link=False)
    rows = compare_measured(emu, [relabelled])
    assert [r["algorithm"] for r in rows] == ["tree"] * 4 and not any(r["within"] for r in rows)


def test_check2_skips_what_it_cannot_tell(tmp_path):
    emu = shipped("emu")
    path = str(tmp_path / "r.h5")
    _hfreduce_run(path, emu, 4, (MIB,), column=False)                 # auto, no per-row column
    _hfreduce_run(path, emu, 4, (MIB,), option="ring", column=False)   # forced: it ran the ring
    h5io.append_run(path, {"program": "hfreduce_bench", "kind": "collective", "backend": "hfreduce",
                           "nnodes": 3, "nranks": 3, "emu_link_gbit": 1.0},    # older run: tree
                    {"collective": {"size": ([MIB], "B"), "time": ([5e4], "us")}})
    _hfreduce_run(path, emu, 4, (MIB,), label="ring+tree")             # calls differed
    points = collective_points(h5io.read_runs(path))
    assert [p.algorithm for p in points] == [None, "ring", "tree", "ring+tree"]
    assert "cannot tell tree from ring" in emu_comparable(points[0])
    assert emu_comparable(points[1]) is None and emu_comparable(points[2]) is None
    assert "ran several algorithms (ring+tree)" in emu_comparable(points[3])
    skipped = {}
    rows = compare_measured(emu, [path], skipped=skipped)
    assert [r["algorithm"] for r in rows] == ["ring", "tree"]
    assert sum(v for k, v in skipped.items() if "cannot tell" in k) == 1
    assert sum(v for k, v in skipped.items() if "several algorithms" in k) == 1


def test_compare_cli_rule_check(tmp_path):
    """A row that ran the tree where the rule, with the run's own link figures, picks the ring:
    check (2) holds (the tree is modelled) but the rule check fails, and so does the command."""
    emu = shipped("emu")
    path = str(tmp_path / "disagree.h5")
    tree_preds = [predict_emu(emu, 4, "hfreduce", MIB, inter_node="tree")]
    h5io.append_run(path, {"program": "hfreduce_bench", "kind": "collective", "backend": "hfreduce",
                           "nnodes": 4, "nranks": 4, "emu_link_gbit": 1.0,
                           "hfreduce_inter_node_option": "auto", "hfreduce_chunk_bytes": 256 * KIB,
                           "hfreduce_link_latency_us": 50.0, "hfreduce_link_gbps": 0.1175},
                    {"collective": {"size": ([MIB], "B"),
                                    "time": ([tree_preds[0]["time_s"] * 1e6], "us"),
                                    "algorithm": (["tree"], "1")}})
    res = run_cli("model", "allreduce", "--cluster", "emu", "--gpus", "4", "--compare", path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "check (2): 1/1 points within 15% -> PASS" in res.stdout
    assert "check (rule): 0/1 auto rows ran what the Python rule picks" in res.stdout
    assert "FAIL" in res.stdout.splitlines()[-1]


def test_compare_rate_keeps_only_runs_shaped_at_that_rate(tmp_path):
    """--compare-rate 1gbit: a run shaped at 10gbit (recorded in its environment, timed here 3x
    off the model so comparing it would fail) is counted as not compared, with the reason."""
    emu = shipped("emu")
    path = str(tmp_path / "rates.h5")
    _hfreduce_run(path, emu, 4, (MIB, 4 * MIB))                        # emu_link_gbit 1.0
    fast = predict_emu(emu, 4, "hfreduce", MIB, link_gbit=10.0)
    h5io.append_run(path, {"program": "hfreduce_bench", "kind": "collective", "backend": "hfreduce",
                           "nnodes": 4, "nranks": 4, "hfreduce_inter_node_option": "tree",
                           "environment": json.dumps({"FFB_EMU_LINK_RATE": "10gbit"})},
                    {"collective": {"size": ([MIB], "B"), "time": ([fast["time_s"] * 3e6], "us")}})
    skipped = {}
    rows = compare_measured(emu, [path], skipped=skipped, rates=[1.0])
    assert len(rows) == 2 and all(r["within"] for r in rows)
    assert skipped == {"shaped at 10gbit (--compare-rate keeps 1gbit)": 1}
    assert len(compare_measured(emu, [path])) == 3                  # no filter: all three
    res = run_cli("model", "allreduce", "--cluster", "emu", "--gpus", "4", "--compare", path,
                  "--compare-rate", "1gbit")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "# not compared: 1 point(s): shaped at 10gbit (--compare-rate keeps 1gbit)" in res.stdout
    assert "check (2): 2/2 points within 15% -> PASS" in res.stdout
    res = run_cli("model", "allreduce", "--cluster", "emu", "--gpus", "4", "--compare", path)
    assert res.returncode == 1 and "check (2): 2/3 points within 15% -> FAIL" in res.stdout
    res = run_cli("model", "allreduce", "--cluster", "emu", "--compare", path, "--compare-rate", "fast")
    assert res.returncode == 2 and "--compare-rate 'fast': give a shaped link rate" in res.stderr


# ---- the command ----------------------------------------------------------------------------------

def test_cli_inter_node_columns_map_and_output(tmp_path):
    out = str(tmp_path / "m.h5")
    res = run_cli("model", "allreduce", "--cluster", "fire-flyer-2", "--gpus", "16,10000",
                  "--algorithms", "hfreduce,hfreduce_ring", "--inter-node-map", "--output", out)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.split()[:4] == ["16", "2", "hfreduce", "ring"] for line in lines)
    assert any(line.split()[:4] == ["10000", "1250", "hfreduce", "tree"] for line in lines)
    assert any(line.split()[:4] == ["10000", "1250", "hfreduce_ring", "ring"] for line in lines)
    assert "which inter-node algorithm HFReduce's auto rule picks: MODEL OUTPUT" in res.stdout
    table = h5io.read_runs(out)[0].table("allreduce_model")
    pairs = {(a, g): i for a, g, i in zip(table["algorithm"], table["gpus"], table["inter_node"])}
    assert pairs == {("hfreduce", 16): "ring", ("hfreduce", 10000): "tree",
                     ("hfreduce_ring", 16): "ring", ("hfreduce_ring", 10000): "ring"}
    res = run_cli("model", "allreduce", "--cluster", "emu", "--algorithms", "hfreduce_emu_star")
    assert res.returncode == 2 and "--algorithms: unknown 'hfreduce_emu_star'" in res.stderr
