"""scripts/perf-hfreduce: the figures of the emulated series and of the small-message table
(read back from results files written with the real Python writer), the report's perf section,
the argument checks, the small table end to end (small_message_bench under real mpirun, 2
ranks), and the emulated quick mode end to end, interrupted included (root and network
namespaces; skipped otherwise)."""
import json
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from ffbench.analysis import report
from ffbench.data import h5io
from ffbench.tools import perf_hfreduce as perf
from conftest import BIN, ROOT

SCRIPT = os.path.join(ROOT, "scripts", "perf-hfreduce")
NAME = f"p{os.getpid() % 10000000}"  # emulated cluster of this test run (1-8 characters)


def table(rows, algorithm=None, fallback=None):
    """A collective table from (size, type, busbw, time_p50) rows: every row out-of-place, plus an
    in-place row with other figures that the readers must ignore."""
    cols = {k: [] for k in ("size", "type", "placement", "busbw", "algbw", "time_p50")}
    extra = {"algorithm": [], "fallback": []}
    for i, (size, dtype, busbw, t50) in enumerate(rows):
        for place, scale in (("out-of-place", 1.0), ("in-place", 7.0)):
            cols["size"].append(size)
            cols["type"].append(dtype)
            cols["placement"].append(place)
            cols["busbw"].append(busbw * scale)
            cols["algbw"].append(busbw * scale / 2)
            cols["time_p50"].append(t50 * scale)
            if algorithm is not None:
                extra["algorithm"].append(algorithm[i] if place == "out-of-place" else "mpi")
            if fallback is not None:
                extra["fallback"].append(fallback[i])
    units = {"size": "B", "type": "1", "placement": "1", "busbw": "GB/s", "algbw": "GB/s",
             "time_p50": "us", "algorithm": "1", "fallback": "1"}
    out = {k: (v, units[k]) for k, v in cols.items()}
    out.update({k: (v, units[k]) for k, v in extra.items() if v})
    return {"collective": out}


def attrs(label, program, nodes, ranks, env, **more):
    a = {"program": program, "kind": "collective", "label": label, "status": "complete",
         "nnodes": nodes, "nranks": ranks, "hosts": [f"ffb-node{1 + k // (ranks // nodes)}"
                                                     for k in range(ranks)],
         "environment": json.dumps(env), "cpu_model": "Test CPU", "git_commit": "abc123",
         "mpi_library_version": "Open MPI v4.1.4", "date": "2026-12-02T01:00:00+00:00"}
    a.update(more)
    return a


def emu_run(path, variant, nodes, rpn, busbw, algorithm=None, env=None, rate="1gbit"):
    """One run of the series; busbw: {size: GB/s}."""
    program = "hfreduce_bench" if variant.startswith("hfreduce.") else "mpi_allreduce_bench"
    env = {"FFB_PERF_SERIES": f"emu-{rate}", "FFB_EMU_LINK_RATE": rate} if env is None else env
    more = {"link_rate_gbit": perf.rate_gbit(rate)}
    if program == "hfreduce_bench":
        more["hfreduce_nodes"] = nodes
    h5io.append_run(str(path), attrs(f"emu{rate}.{variant}.n{nodes}x{rpn}@0123456789ab",
                                     program, nodes, nodes * rpn, env, **more),
                    table([(size, "float", v, 1.0) for size, v in busbw.items()],
                          algorithm=None if algorithm is None else [algorithm] * len(busbw)))


M1, M4 = 1 << 20, 4 << 20


def write_emu_series(path, with_algorithm=True):
    alg = (lambda a: a) if with_algorithm else (lambda a: None)
    emu_run(path, "hfreduce.auto", 3, 1, {M1: 0.5, M4: 0.5}, alg("ring"))  # replaced below
    for variant, v, v4 in (("hfreduce.tree", 0.08, 0.07), ("hfreduce.ring", 0.11, 0.11),
                           ("hfreduce.auto", 0.112, 0.099), ("mpi.default", 0.09, 0.08),
                           ("mpi.ring", 0.10, 0.10), ("mpi.rabenseifner", 0.05, 0.05)):
        emu_run(path, variant, 3, 1, {M1: v, M4: v4},
                alg("ring") if variant == "hfreduce.auto" else None)
    for variant, v in (("hfreduce.tree", 0.10), ("hfreduce.ring", 0.09), ("hfreduce.auto", 0.10),
                       ("mpi.default", 0.12), ("mpi.ring", 0.11), ("mpi.rabenseifner", 0.08)):
        emu_run(path, variant, 3, 2, {M1: v}, alg("tree") if variant == "hfreduce.auto" else None)
    # Not of the series: a sweep run with a look-alike label but no FFB_PERF_SERIES.
    emu_run(path, "mpi.ring", 3, 1, {M1: 9.0}, env={"FFB_EMU_LINK_RATE": "1gbit"})


def test_emu_points_ratios_and_bounds(tmp_path):
    path = tmp_path / "emu.h5"
    write_emu_series(path)
    points = perf.emu_points(perf.emu_series_runs(h5io.read_runs(str(path))))
    assert [(p.nodes, p.rpn, p.size) for p in points] == [(3, 1, M1), (3, 1, M4), (3, 2, M1)]
    one, four, two = points
    assert one.busbw["hfreduce.auto"] == pytest.approx(0.112)   # the latest run of the label
    assert one.busbw["mpi.ring"] == pytest.approx(0.10)         # not the look-alike's 9.0
    assert one.chosen == "ring"
    assert one.auto_vs_mpi == pytest.approx(1.12)
    assert one.auto_vs_hf == pytest.approx(0.112 / 0.11)
    assert one.bound == pytest.approx(0.125)                    # ring: the link rate (1 gbit)
    assert one.auto_vs_bound == pytest.approx(0.896)
    assert four.auto_vs_mpi == pytest.approx(0.99)
    # 3 nodes x 2 ranks, tree: algbw <= B/2, busbw = algbw x 2(N-1)/N with N = 6 ranks
    assert two.chosen == "tree"
    assert two.bound == pytest.approx(0.125 / 2 * 10 / 6)
    assert two.auto_vs_mpi == pytest.approx(0.10 / 0.12)
    summary = perf.emu_summary(points)
    assert summary[0] == ("auto >= best Open MPI at 1 of 3 points; 0.98-1 at 1: 1gbit 3x1 4M "
                          "0.990; below 0.98 at 1: 1gbit 3x2 1M 0.833")
    assert summary[1] == ("auto >= 0.9 of its algorithm's bound at 1 of 3 points; below at 2: "
                          "1gbit 3x1 1M 0.896, 1gbit 3x1 4M 0.792")
    assert len(summary) == 2
    text = perf.emu_text(points)
    assert text[0].split()[:3] == ["rate", "layout", "size"]
    assert text[1].split() == ["1gbit", "3x1", "1M", "0.080", "0.110", "0.112", "0.090", "0.100",
                               "0.050", "1.12", "1.02", "ring", "0.125", "0.90"]


def test_emu_points_incomplete(tmp_path):
    path = tmp_path / "emu.h5"
    emu_run(path, "hfreduce.auto", 2, 1, {M1: 0.1}, "tree")
    emu_run(path, "mpi.ring", 2, 1, {M1: 0.1})
    points = perf.emu_points(perf.emu_series_runs(h5io.read_runs(str(path))))
    assert perf.emu_summary(points)[-1] == ("incomplete at 1 points (a run failed or is missing): "
                                            "1gbit 2x1 1M lacks hfreduce.tree hfreduce.ring "
                                            "mpi.default mpi.rabenseifner")


def test_emu_points_without_algorithm_column(tmp_path):
    path = tmp_path / "emu.h5"
    write_emu_series(path, with_algorithm=False)
    points = perf.emu_points(perf.emu_series_runs(h5io.read_runs(str(path))))
    assert all(p.chosen is None and p.bound is None for p in points)
    assert "auto's algorithm unknown at 3 points" in perf.emu_summary(points)[2]
    assert perf.emu_summary(points)[1] == "auto >= 0.9 of its algorithm's bound at 0 of 0 points"


def test_row_algorithm_column_kinds():
    import numpy as np
    assert perf.row_algorithm({}, 0) is None
    assert perf.row_algorithm({"algorithm": np.array(["ring"], dtype=object)}, 0) == "ring"
    assert perf.row_algorithm({"algorithm": np.array([3.0])}, 0) == "tree"
    assert perf.row_algorithm({"algorithm": np.array([3.5])}, 0) == "mixed (3.5)"


def small_run(path, session, ranks, rows, env=None, status="complete"):
    """A small_message_bench run: rows of (round, type, size, candidate, time_p50, path)."""
    series = f"small.{session}"
    cols = {k: [] for k in ("round", "type", "size", "candidate", "measured_type", "time_p50",
                            "path")}
    for rnd, dtype, size, cand, t50, path_ in rows:
        measured = "uint8" if cand == "mpi" and dtype in perf.MPI_STAND_IN else dtype
        for k, v in zip(cols, (rnd, dtype, size, cand, measured, t50, path_)):
            cols[k].append(v)
    units = {"round": "1", "size": "B", "time_p50": "us"}
    h5io.append_run(str(path), attrs(perf.small_label(series, ranks), "small_message_bench", 1,
                                     ranks, {"FFB_PERF_SERIES": series} if env is None else env,
                                     kind=perf.SMALL_KIND, status=status),
                    {perf.SMALL_KIND: {k: (v, units.get(k, "1")) for k, v in cols.items()}})


def small_rounds(triples, dtype, size, path_="shm"):
    """Rows of one point: per round (hfreduce, hfmpi, mpi) us."""
    return [(rnd, dtype, size, cand, t, path_ if cand != "mpi" else "mpi")
            for rnd, times in enumerate(triples)
            for cand, t in zip(("hfreduce", "hfmpi", "mpi"), times)]


def test_small_points_paired_ratios_and_stand_in(tmp_path):
    path = tmp_path / "small.h5"
    small_run(path, "20261201T000000", 2, small_rounds([(1000.0, 1.0, 1.0)], "float", 4))  # old
    # Round 1 is a slow state for all three: the paired ratio stays at 0.5, where the ratio of the
    # medians (12/22) would not.
    flt = [(10.0, 24.0, 20.0), (30.0, 62.0, 60.0), (12.0, 20.0, 22.0)]
    fp8 = [(5.0, 30.0, 40.0), (15.0, 90.0, 20.0), (6.0, 36.0, 44.0)]
    small_run(path, "20261202T000000", 2,
              small_rounds(flt, "float", 4) + small_rounds(fp8, "fp8_e4m3", 4))
    small_run(path, "20261202T000000", 4, small_rounds([(1.0, 1.0, 1.0)], "float", 4),
              status="failed")  # not complete: left out
    small_run(path, "20261203T000000", 2, small_rounds([(1.0, 1.0, 1.0)], "float", 4),
              env={})  # not ours
    points = perf.small_points(perf.small_series_runs(h5io.read_runs(str(path))))
    assert [(p.ranks, p.datatype, p.size) for p in points] == [(2, "float", 4), (2, "fp8_e4m3", 4)]
    f, e = points
    assert f.hf == [10.0, 30.0, 12.0]                         # the old session is left out
    assert f.hf_median == 12.0 and f.mpi_median == 22.0
    assert f.ratio == pytest.approx(0.5) and f.paired_rounds == 3
    assert f.mpi_path_ratio == pytest.approx(62.0 / 60.0) and f.stand_in_ratio is None
    assert f.carried_by == {"shm"}
    # fp8: MPI's figure is MPI_Allreduce with the user-defined op (hfmpi); uint8 is the lower bound
    assert e.mpi_type == perf.USER_OP and e.mpi_median == 36.0 and e.hf_median == 6.0
    assert e.ratio == pytest.approx(1 / 6) and e.mpi_path_ratio is None
    assert e.stand_in_ratio == pytest.approx(6.0 / 44.0)     # per round 0.125, 0.75, 0.136
    head, body = perf.small_matrix(points, 2, stand_in=True)
    assert head == ["type", "4"] and body == [["fp8_e4m3 (MPI: uint8)", "0.14"]]
    head, body = perf.small_matrix(points, 2)
    assert head == ["type", "4"] and body == [["float", "0.50"], ["fp8_e4m3 (MPI: user-op)", "0.17"]]
    line = perf.small_summary(points)[0]
    assert line.startswith("2 ranks: median ratio 0.33 over 2 points, HFReduce faster or equal "
                           "at 2; highest 0.50 (float, 4)")
    assert "fp8 against MPI's uint8 on the same bytes (a lower bound): faster or equal at 1 of 1" \
        in line


def test_report_section(tmp_path):
    emu_path, small_path = tmp_path / "emu.h5", tmp_path / "small.h5"
    write_emu_series(emu_path)
    small_run(small_path, "20261202T000000", 2, small_rounds([(5.0, 9.0, 10.0)], "half", 64))
    runs = h5io.read_runs(str(emu_path)) + h5io.read_runs(str(small_path))
    text = "\n".join(report.perf_hfreduce_section(runs))
    assert "## HFReduce against Open MPI: `scripts/perf-hfreduce` (measured)" in text
    assert "ffb-node1, ffb-node2, ffb-node3 (emulated nodes, Test CPU" in text  # the machine
    assert "| 1gbit | 3x1 | 1M | 0.080 | 0.110 | 0.112 | 0.090 | 0.100 | 0.050 | 1.12 |" in text
    assert "- auto >= best Open MPI at 1 of 3 points" in text
    assert "| type | 64 |" in text and "| half | 0.50 |" in text
    assert report.perf_hfreduce_section(h5io.read_runs(str(small_path))[:0]) == []


@pytest.mark.parametrize("argv, message", [
    (["--emulated", "--layouts", "3"], "--layouts '3': '3' is not NODESxRANKS"),
    (["--emulated", "--layouts", "1x2"], "'1x2' is not NODESxRANKS with NODES >= 2"),
    (["--emulated", "--rates", "fast"], "--rates 'fast': 'fast' is not a tc rate"),
    (["--emulated", "--sizes", "1M,2M,8M"], "--sizes '1M,2M,8M': give increasing sizes a constant"),
    (["--emulated", "--sizes", "1.5M"], "--sizes '1.5M'"),
    (["--emulated", "--emu-name", "Bad_Name"], "--emu-name 'Bad_Name'"),
    (["--small", "--rounds", "0"], "--rounds 0: give at least 1"),
    (["--sizes", "1M"], "--sizes: only with --emulated"),
    (["--small", "--bin", "/nonexistent"], "--bin /nonexistent: small_message_bench is missing"),
])
def test_bad_arguments(argv, message, capsys):
    assert perf.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("perf-hfreduce: ") and message in err and err.count("\n") == 1, err


def test_emu_sweep_config_is_valid(tmp_path):
    """The generated sweep passes the config checks and names its points as the readers expect."""
    from ffbench.data import config
    data = perf.emu_sweep("10gbit", [(2, 1), (3, 2)], [256 << 10, 1 << 20, 4 << 20], 5, 2, "ffb",
                          600)
    sweep = config.parse(str(tmp_path / "x.yaml"), json.loads(json.dumps(data)))
    names = [p.name for p in sweep.points]
    assert names[:6] == ["emu10gbit.hfreduce.tree.n2x1", "emu10gbit.hfreduce.ring.n2x1",
                         "emu10gbit.hfreduce.auto.n2x1", "emu10gbit.mpi.default.n2x1",
                         "emu10gbit.mpi.ring.n2x1", "emu10gbit.mpi.rabenseifner.n2x1"]
    assert len(names) == 12 and all(perf.EMU_LABEL_RE.match(n) for n in names)
    auto = sweep.points[2]
    assert "--inter-node" not in auto.args and "--chunk-size" not in auto.args  # the defaults
    assert auto.args[:6] == ["-b", "262144", "-e", "4194304", "-f", "4"]
    assert sweep.points[5].env["OMPI_MCA_coll_tuned_allreduce_algorithm"] == "6"
    assert all(p.env["FFB_PERF_SERIES"] == "emu-10gbit" for p in sweep.points)


def programs_built():
    return all(os.access(os.path.join(BIN, p), os.X_OK)
               for p in ("hfreduce_bench", "mpi_allreduce_bench"))


def test_small_quick_end_to_end(tmp_path):
    if not os.access(os.path.join(BIN, "small_message_bench"), os.X_OK) or not shutil.which(
            "mpirun"):
        pytest.skip("small_message_bench not built (FFB_BIN) or no mpirun")
    out, txt = tmp_path / "small.h5", tmp_path / "small.txt"
    res = subprocess.run([SCRIPT, "--small", "--quick", "--bin", BIN, "--output", str(out),
                          "--text", str(txt), "--iters", "5", "--warmup", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    runs = h5io.read_runs(str(out))
    assert len(runs) == 1 and runs[0].attrs["kind"] == perf.SMALL_KIND   # one run: 2 ranks
    assert runs[0].attrs["program"] == "small_message_bench" and runs[0].attrs["nranks"] == 2
    t = runs[0].tables[perf.SMALL_KIND]
    cands = [c.decode() if isinstance(c, bytes) else c for c in t["candidate"]]
    # every point measures the three back to back, forwards in round 0, backwards in round 1
    assert cands[:3] == ["hfreduce", "hfmpi", "mpi"] and cands[-3:] == ["mpi", "hfmpi", "hfreduce"]
    assert sorted(set(int(r) for r in t["round"])) == [0, 1]
    assert all(int(w) == 0 for w in t["wrong"])            # validated: -c 1 by default
    text = txt.read_text()
    assert "## ratio HFReduce / MPI, 2 ranks" in text
    points = perf.small_points(perf.small_series_runs(runs))
    assert {p.datatype for p in points} == set(perf.SMALL_QUICK_TYPES)
    assert {p.size for p in points} == {4 << (2 * k) for k in range(8)}   # 4 B .. 64 KiB, x4
    assert all(len(p.hf) == 2 and p.paired_rounds == 2 and p.ratio > 0 for p in points)
    assert all(p.mpi_path_ratio > 0 for p in points if not p.fp8)
    assert all(p.stand_in_ratio > 0 and len(p.times("mpi")) == 2 for p in points if p.fp8)
    # one node: below 16 KiB the shared-memory path carries HFReduce's calls, above it the pipeline;
    # fp8 keeps the shared-memory path up to 64 KiB
    assert {next(iter(p.carried_by)) for p in points if p.size < 16 << 10 or p.fp8} == {"shm"}
    assert {next(iter(p.carried_by)) for p in points if p.size >= 16 << 10 and not p.fp8} \
        == {"intra-node"}
    assert {p.mpi_type for p in points if p.datatype == "fp8_e4m3"} == {perf.USER_OP}
    # the fp8 rows of the MPI candidate reduced uint8 on the same bytes
    types = [x.decode() if isinstance(x, bytes) else x for x in t["type"]]
    measured = [x.decode() if isinstance(x, bytes) else x for x in t["measured_type"]]
    assert {m for ty, c, m in zip(types, cands, measured) if ty == "fp8_e4m3" and c == "mpi"} \
        == {"uint8"}


def need_emu():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    for tool in ("ip", "tc", "unshare", "mpirun"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def netns_of(name):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{name}-")]


@pytest.fixture()
def cluster_name():
    need_emu()
    yield NAME
    subprocess.run([os.path.join(ROOT, "scripts", "ffbench"), "emu", "down", "--name", NAME],
                   capture_output=True, timeout=120)


def test_emulated_quick_end_to_end(cluster_name, tmp_path):
    if not programs_built():
        pytest.skip("hfreduce_bench / mpi_allreduce_bench not built (FFB_BIN)")
    out, txt = tmp_path / "emu.h5", tmp_path / "emu.txt"
    res = subprocess.run([SCRIPT, "--emulated", "--quick", "--emu-name", cluster_name, "--bin", BIN,
                          "--output", str(out), "--text", str(txt), "--iters", "3", "--warmup",
                          "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert netns_of(cluster_name) == []                        # taken down at the end
    runs = h5io.read_runs(str(out))
    assert len(runs) == 12 and len({r.attrs["label"] for r in runs}) == 12
    for r in runs:
        env = json.loads(r.attrs["environment"])
        assert env["FFB_EMU_LINK_RATE"] == "1gbit" and env["FFB_PERF_SERIES"] == "emu-1gbit"
        assert int(r.attrs["nnodes"]) in (2, 3) and int(r.tables["collective"]["wrong"].max()) == 0
    points = perf.emu_points(perf.emu_series_runs(runs))
    assert [(p.nodes, p.rpn, p.size) for p in points] == [(2, 1, 1 << 20), (3, 1, 1 << 20)]
    assert all(len(p.busbw) == 6 and min(p.busbw.values()) > 0 for p in points)
    text = txt.read_text()
    assert "# MPI: Open MPI" in text and "auto >= best Open MPI at" in text


def running(pids):
    """The pids that are still running (a zombie has ended: only its parent has not reaped it)."""
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def test_emulated_interrupt_takes_the_cluster_down(cluster_name, tmp_path):
    """SIGTERM while a point runs: the point's processes stop and the namespaces are removed."""
    fake = tmp_path / "bin"
    fake.mkdir()
    marks = tmp_path / "marks"
    marks.mkdir()
    for prog in ("hfreduce_bench", "mpi_allreduce_bench"):
        p = fake / prog
        # exec: the rank is the sleep, and its pid is in the mark's name
        p.write_text(f"#!/bin/sh\ntouch {marks}/$$\nexec sleep 120\n")
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    proc = subprocess.Popen([SCRIPT, "--emulated", "--quick", "--emu-name", cluster_name, "--bin",
                             str(fake), "--output", str(tmp_path / "emu.h5"), "--text",
                             str(tmp_path / "emu.txt")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while not os.listdir(marks) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert os.listdir(marks), "the fake program never started"
        assert netns_of(cluster_name)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert f"cluster '{cluster_name}' down" in output
    assert netns_of(cluster_name) == []
    pids = [int(p) for p in os.listdir(marks)]
    deadline = time.time() + 10   # a remote rank's daemon may take a moment
    while running(pids) and time.time() < deadline:
        time.sleep(0.5)
    alive = running(pids)
    for pid in alive:  # ours (the fake ranks): stop them before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"ranks of the interrupted point still ran after it: {alive}"
