"""`ffbench import KIND FILE... --output R.h5`: nccl-tests, OSU, IOR and fio results as runs.

Samples live in tests/data/peers/ (README.md there says which were produced by the tool and
which were written to its documented format); fio's JSON is produced here by running fio.
Each importer: a good sample reads back with the file's own numbers, a sample with extra columns
imports, a truncated file and another tool's file give one line FILE:LINE: expected ..., exit 2,
and leave the output file as it was.
"""
import hashlib
import json
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench import cli  # noqa: E402
from ffbench.data import h5io
from ffbench.data import results as resmod  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
PEERS = os.path.join(ROOT, "tests", "data", "peers")
MIB = 1 << 20


def peer(*parts):
    return os.path.join(PEERS, *parts)


def ffb_import(capsys, *argv):
    """(exit status, stdout, stderr) of `ffbench import ARGV` run in this process."""
    capsys.readouterr()
    code = cli.main(["import"] + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_run(path, index=-1):
    return h5io.read_runs(str(path))[index]


def col(run, name, table="collective"):
    return run.tables[table][name]


def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def assert_refused(capsys, tmp_path, kind, sample, line, *extra, pattern=""):
    """KIND on `sample` exits 2 with one line FILE:LINE: expected ...; an existing output file
    keeps its bytes and a new one is not created."""
    fresh = tmp_path / "fresh.h5"
    code, out, err = ffb_import(capsys, kind, sample, "--output", fresh, *extra)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ffbench import: {sample}:{line}: expected "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not fresh.exists() and not list(tmp_path.glob("fresh.h5*"))
    kept = tmp_path / "kept.h5"
    if not kept.exists():
        h5io.append_run(str(kept), h5io.provenance("x", "probe", label="before"), {})
    before = digest(kept)
    code, _out, err = ffb_import(capsys, kind, sample, "--output", kept, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert digest(kept) == before
    assert [r.attrs["label"] for r in h5io.read_runs(str(kept))] == ["before"]
    return lines[0]


# ---- nccl-tests ------------------------------------------------------------------------------

def nccl_text_rows(path):
    """Rows of an nccl-tests table written with the classic 13 columns, split here by hand."""
    rows = []
    with open(path) as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                t = line.split()
                for place, (tm, alg, bus, wrong) in (("out-of-place", t[5:9]),
                                                     ("in-place", t[9:13])):
                    rows.append((int(t[0]), int(t[1]), t[2], t[3], place, float(tm), float(alg),
                                 float(bus), int(wrong)))
    return rows


def collective_rows(run):
    c = run.tables["collective"]
    return [(int(c["size"][i]), int(c["count"][i]), c["type"][i], c["redop"][i],
             c["placement"][i], float(c["time"][i]), float(c["algbw"][i]), float(c["busbw"][i]),
             int(c["wrong"][i])) for i in range(len(c["size"]))]


def test_nccl_tests_text(capsys, tmp_path):
    sample = peer("nccl-tests", "all_reduce_perf.txt")
    out = tmp_path / "r.h5"
    code, stdout, err = ffb_import(capsys, "nccl-tests", sample, "--output", out, "--label", "site")
    assert code == 0, err
    assert "/runs/000000" in stdout and "50 rows" in stdout
    run = one_run(out)
    assert collective_rows(run) == nccl_text_rows(sample)
    a = run.attrs
    assert a["program"] == "nccl-tests all_reduce_perf" and a["kind"] == "collective"
    assert a["backend"] == "nccl" and a["collective"] == "allreduce"
    assert a["tool"] == "nccl-tests" and a["tool_version"] == "2.19.6"
    assert a["nccl_version"] == "2.28.3"
    assert a["imported"] == 1 and a["imported_from"] == os.path.abspath(sample)
    assert a["label"] == "site" and a["status"] == "complete"
    assert a["nranks"] == 8 and a["nnodes"] == 1 and a["ranks_per_node"] == "8"
    assert a["hosts"] == ["gpu01"] * 8 and a["hosts_source"] == "the file"
    assert a["busbw_factor"] == pytest.approx(2 * 7 / 8)
    assert a["tool_avg_busbw"] == pytest.approx(87.6798)
    assert a["command_line"] == "" and "command line" in a["command_line_note"]
    assert a["cpu_model"].startswith("unknown")  # another host: the file does not say
    assert json.loads(a["options"])["iterations"] == 20
    ranks = run.tables["ranks"]
    assert list(ranks["rank"]) == list(range(8))
    assert ranks["device"][0] == "GPU0 NVIDIA H100 80GB HBM3 [0000:18:00]"
    assert run.units["collective"]["busbw"] == "GB/s" and run.units["collective"]["time"] == "us"
    # the common provenance attrs are all there
    for k in ("suite_version", "git_commit", "date", "environment", "mpi_library_version",
              "simd_level", "options", "ranks_per_node"):
        assert k in a, k
    # results.load_runs (what compare/report use) reads it too
    rows = resmod.collective_rows(resmod.load_runs([str(out)]))
    assert len(rows) == 50 and rows[0]["backend"] == "nccl"
    # NCCL_DEBUG=INFO lines between the rows (stdout and stderr in one file) are skipped
    lines = open(sample).read().splitlines(keepends=True)
    noisy = tmp_path / "all_reduce_perf_info.txt"
    noisy.write_text("".join(lines[:20] + ["gpu01:41021:41090 [0] NCCL INFO Channel 00/24 : 0 1\n",
                                           "gpu01:41022:41091 [1] NCCL WARN some warning\n"]
                             + lines[20:]))
    code, _, err = ffb_import(capsys, "nccl-tests", noisy, "--output", out)
    assert code == 0, err
    assert collective_rows(one_run(out)) == nccl_text_rows(sample)


def test_nccl_tests_json(capsys, tmp_path):
    sample = peer("nccl-tests", "all_reduce_perf.json")
    out = tmp_path / "r.h5"
    code, _, err = ffb_import(capsys, "nccl-tests", sample, "-o", out)
    assert code == 0, err
    run = one_run(out)
    with open(sample) as fh:
        doc = json.load(fh)
    want = []
    for e in doc["results"]:
        for key, place in (("out_of_place", "out-of-place"), ("in_place", "in-place")):
            p = e[key]
            want.append((e["size"], e["count"], e["type"], e["redop"], place, p["time"],
                         p["alg_bw"], p["bus_bw"], int(p["nwrong"])))
    assert collective_rows(run) == want
    a = run.attrs
    assert a["command_line"] == " ".join(doc["args"])
    assert a["imported_format"] == "nccl-tests json"
    assert json.loads(a["environment"])["NCCL_IB_HCA"] == "mlx5"
    assert "PATH" not in json.loads(a["environment"])  # only what changes a collective
    assert a["date"].startswith("2026-11-28T14:02:11")
    assert a["tool_avg_busbw"] == pytest.approx(doc["average_bus_bandwidth"]["bandwidth"])
    assert list(run.tables["ranks"]["host"]) == ["gpu01"] * 8


def test_nccl_tests_newer_columns_and_keys(capsys, tmp_path):
    # -I per-iteration columns (i_min i_max i_p99 i_cv% in each group): located by name
    sample = peer("nccl-tests", "all_reduce_perf_per_iter.txt")
    out = tmp_path / "r.h5"
    code, _, err = ffb_import(capsys, "nccl-tests", sample, "-o", out)
    assert code == 0, err
    run = one_run(out)
    lines = [ln.split() for ln in open(sample) if ln.strip() and not ln.startswith("#")]
    c = run.tables["collective"]
    assert list(c["busbw"][0::2]) == [float(t[7]) for t in lines]       # out-of-place busbw
    assert list(c["busbw"][1::2]) == [float(t[15]) for t in lines]      # in-place busbw
    assert list(c["time_p99"][1::2]) == [float(t[19]) for t in lines]   # in-place i_p99
    assert list(c["time_min"][0::2]) == [float(t[9]) for t in lines]
    assert run.units["collective"]["time_cv"] == "%"
    # a JSON document with keys nccl-tests does not write yet
    code, _, err = ffb_import(capsys, "nccl-tests", peer("nccl-tests",
                                                         "all_reduce_perf_extra_keys.json"), "-o", out)
    assert code == 0, err
    plain = tmp_path / "plain.h5"
    code, _, err = ffb_import(capsys, "nccl-tests", peer("nccl-tests", "all_reduce_perf.json"),
                              "-o", plain)
    assert code == 0, err
    assert collective_rows(one_run(out)) == collective_rows(one_run(plain))  # same run, more keys


def test_nccl_tests_older_header_and_other_collectives(capsys, tmp_path):
    out = tmp_path / "r.h5"
    old = peer("nccl-tests", "all_reduce_perf_2.13.txt")  # no version line, no program name
    code, _, err = ffb_import(capsys, "nccl-tests", old, "-o", out)
    assert code == 0, err
    run = one_run(out)
    assert run.attrs["collective"] == "allreduce" and run.attrs["tool_version"] == "unknown"
    assert collective_rows(run) == nccl_text_rows(old)
    ag = peer("nccl-tests", "all_gather_perf.txt")
    code, _, err = ffb_import(capsys, "nccl-tests", ag, "-o", out)
    assert code == 0, err
    run = one_run(out)
    assert run.attrs["collective"] == "allgather" and run.attrs["program"].endswith("all_gather_perf")
    assert run.attrs["busbw_factor"] == pytest.approx(7 / 8)
    assert set(col(run, "redop")) == {"none"}
    # a pre-2.19 file whose name does not say the program needs --collective
    renamed = tmp_path / "site-run.txt"
    shutil.copy(old, renamed)
    assert_refused(capsys, tmp_path, "nccl-tests", str(renamed), 1, pattern="--collective")
    code, _, err = ffb_import(capsys, "nccl-tests", renamed, "-o", out, "--collective", "allreduce")
    assert code == 0, err


def test_nccl_tests_truncated_and_wrong_kind(capsys, tmp_path):
    line = assert_refused(capsys, tmp_path, "nccl-tests", peer("nccl-tests",
                                                               "all_reduce_perf_truncated.txt"), 37)
    assert "truncated: no '# Avg bus bandwidth' footer" in line
    assert_refused(capsys, tmp_path, "nccl-tests",
                   peer("nccl-tests", "all_reduce_perf_truncated.json"), 1, pattern="truncated")
    # a row cut in the middle: its own line number
    text = open(peer("nccl-tests", "all_reduce_perf.txt")).read()
    cut = text[:text.index("     2097152")] + "     2097152        524288     float     sum      -1  24.4"
    p = tmp_path / "all_reduce_perf_cut.txt"
    p.write_text(cut)
    assert_refused(capsys, tmp_path, "nccl-tests", str(p), 36, pattern="cut short")
    # another tool's files
    assert_refused(capsys, tmp_path, "nccl-tests", peer("osu", "osu_allreduce_f.txt"), 5,
                   pattern="looks like osu")
    assert_refused(capsys, tmp_path, "nccl-tests", peer("fio", "fio_seq_write_read.json"), 1,
                   pattern="looks like fio")
    # an unparseable cell
    bad = tmp_path / "all_reduce_perf_bad.txt"
    bad.write_text(text.replace("  14.14    0.00", "  14.1x    0.00", 1))
    assert_refused(capsys, tmp_path, "nccl-tests", str(bad), 18, pattern="a number in column 'time'")


# ---- OSU -------------------------------------------------------------------------------------

def osu_rows(path):
    cols, rows, dtype = None, [], None
    for line in open(path):
        if line.startswith("# Datatype:"):
            dtype = line.split(":")[1].strip().rstrip(".")
        elif line.startswith("# Size") or line.startswith("# Avg"):
            cols = re.split(r"\s{2,}", line[1:].strip())
        elif line.strip() and not line.startswith("#"):
            rows.append((dtype, dict(zip(cols, line.split()))))
    return rows


def test_osu_full_format(capsys, tmp_path):
    sample = peer("osu", "osu_allreduce_f.txt")
    out = tmp_path / "r.h5"
    code, stdout, err = ffb_import(capsys, "osu", sample, "-o", out, "--ranks", "2")
    assert code == 0, err
    run = one_run(out)
    want = osu_rows(sample)
    c = run.tables["collective"]
    assert list(c["size"]) == [int(r["Size"]) for _, r in want]
    assert list(c["time"]) == [float(r["Avg Latency(us)"]) for _, r in want]
    assert list(c["time_min"]) == [float(r["Min Latency(us)"]) for _, r in want]
    assert list(c["time_max"]) == [float(r["Max Latency(us)"]) for _, r in want]
    assert list(c["iterations"]) == [int(r["Iterations"]) for _, r in want]
    algbw = [int(r["Size"]) / float(r["Avg Latency(us)"]) / 1e3 for _, r in want]
    assert np.allclose(c["algbw"], algbw)
    assert np.allclose(c["busbw"], algbw)  # allreduce on 2 ranks: 2(n-1)/n = 1
    assert set(c["type"]) == {"char"} and set(c["redop"]) == {"sum"}
    assert set(c["placement"]) == {"out-of-place"} and set(c["wrong"]) == {-1}
    a = run.attrs
    assert a["program"] == "osu_allreduce" and a["backend"] == "mpi"
    assert a["tool"] == "OSU Micro-Benchmarks" and a["tool_version"] == "7.4"
    assert a["nranks"] == 2 and len(a["hosts"]) == 2
    assert a["hosts_source"].startswith("the importing host")
    assert "ranks" not in run.tables  # OSU does not list its ranks
    # without --ranks: busbw unknown (NaN), nranks 0, and a note says so
    code, _, err = ffb_import(capsys, "osu", sample, "-o", out)
    assert code == 0 and "--ranks" in err
    run = one_run(out)
    assert run.attrs["nranks"] == 0 and all(math.isnan(x) for x in col(run, "busbw"))
    assert np.allclose(col(run, "algbw"), algbw)


def test_osu_extra_columns_and_other_benchmarks(capsys, tmp_path):
    out = tmp_path / "r.h5"
    # -z tail latencies (produced by OSU 7.4) and a hand-added column a newer version might print
    for name in ("osu_allreduce_fz.txt", "osu_allreduce_f_extra_column.txt"):
        sample = peer("osu", name)
        code, _, err = ffb_import(capsys, "osu", sample, "-o", out, "--ranks", "2")
        assert code == 0, err
        run = one_run(out)
        want = osu_rows(sample)
        assert list(col(run, "time")) == [float(r["Avg Latency(us)"]) for _, r in want]
        assert list(col(run, "time_max")) == [float(r["Max Latency(us)"]) for _, r in want]
        assert list(col(run, "iterations")) == [int(r["Iterations"]) for _, r in want]
    assert list(col(one_run(out, 0), "time_p99")) == \
        [float(r["P99 Tail Lat(us)"]) for _, r in osu_rows(peer("osu", "osu_allreduce_fz.txt"))]
    assert set(col(one_run(out, 0), "type")) == {"float"}
    # -c: Validation Pass -> wrong 0
    code, _, _ = ffb_import(capsys, "osu", peer("osu", "osu_allreduce_fc.txt"), "-o", out,
                            "--ranks", "2")
    assert code == 0 and set(col(one_run(out), "wrong")) == {0}
    # -T all: one block per type
    code, _, _ = ffb_import(capsys, "osu", peer("osu", "osu_allreduce_all.txt"), "-o", out,
                            "--ranks", "2")
    run = one_run(out)
    assert code == 0 and list(dict.fromkeys(col(run, "type"))) == ["char", "int32", "float"]
    assert list(col(run, "count"))[9:11] == [1, 2]  # MPI_INT: 4 B per element
    for name, coll, program, factor in (("osu_allgather_f.txt", "allgather", "osu_allgather", 0.5),
                                        ("osu_bcast_f.txt", "broadcast", "osu_bcast", 1.0),
                                        ("osu_alltoall_f.txt", "alltoall", "osu_alltoall", 0.5),
                                        ("osu_reduce_scatter_f.txt", "reduce_scatter",
                                         "osu_reduce_scatter", 0.5),
                                        ("osu_barrier_f.txt", "barrier", "osu_barrier", None)):
        code, _, err = ffb_import(capsys, "osu", peer("osu", name), "-o", out, "--ranks", "2")
        assert code == 0, err
        run = one_run(out)
        assert run.attrs["collective"] == coll and run.attrs["program"] == program
        if factor is None:
            assert list(col(run, "size")) == [0] and math.isnan(col(run, "busbw")[0])
        else:
            assert np.allclose(col(run, "busbw"), col(run, "algbw") * factor)


def test_osu_truncated_and_wrong_kind(capsys, tmp_path):
    assert_refused(capsys, tmp_path, "osu", peer("osu", "osu_allreduce_f_truncated.txt"), 18,
                   "--ranks", "2", pattern="cut short")
    # cut at the end of a number (no newline): the missing newline gives it away
    text = open(peer("osu", "osu_allreduce.txt")).read().rstrip("\n")
    p = tmp_path / "osu_cut.txt"
    p.write_text(text[:-1])
    assert_refused(capsys, tmp_path, "osu", str(p), 21, pattern="truncated")
    p = tmp_path / "osu_header_only.txt"
    p.write_text("\n".join(text.splitlines()[:4]) + "\n")
    assert_refused(capsys, tmp_path, "osu", str(p), 4, pattern="at least one row")
    assert_refused(capsys, tmp_path, "osu", peer("nccl-tests", "all_reduce_perf.txt"), 1,
                   pattern="looks like nccl-tests")
    assert_refused(capsys, tmp_path, "osu", peer("ior", "ior_fpp.txt"), 1, pattern="looks like ior")


# ---- IOR -------------------------------------------------------------------------------------

def ior_results(path):
    """The per-iteration Results rows of an IOR text report, by header name."""
    rows, head = [], None
    for line in open(path):
        t = line.split()
        if t[:1] == ["access"]:
            head = t
        elif head and t[:1] in (["write"], ["read"]) and len(t) == len(head):
            rows.append(dict(zip(head, t)))
        elif head and not t:
            head = None
    return rows


def test_ior_text(capsys, tmp_path):
    out = tmp_path / "r.h5"
    for name in ("ior_fpp.txt", "ior_fpp_extra_columns.txt"):
        sample = peer("ior", name)
        code, _, err = ffb_import(capsys, "ior", sample, "-o", out)
        assert code == 0, err
        run = one_run(out)
        want = ior_results(sample)
        t = run.tables["storage_phases"]
        assert list(t["phase"]) == [r["access"] for r in want]
        assert list(t["rep"]) == [int(r["iter"]) for r in want]
        assert np.allclose(t["bw"], [float(r["bw(MiB/s)"]) * MIB / 1e9 for r in want])
        assert list(t["ops_rate"]) == [float(r["IOPS"]) for r in want]
        assert list(t["time"]) == [float(r["total(s)"]) for r in want]
        assert np.allclose(t["lat_mean"], [float(r["Latency(s)"]) * 1e6 for r in want])
        assert set(t["workload"]) == {"seq"} and set(t["ranks"]) == {2}
        assert set(t["bytes"]) == {32 * MIB} and set(t["ops"]) == {32}
        s = run.tables["ior_summary"]
        assert list(s["op"]) == ["write", "read"]
        assert s["bw_mean"][0] == pytest.approx(5180.94 * MIB / 1e9)
        assert s["ops_std"][1] == pytest.approx(8094.48)  # the second StdDev: OPs
        a = run.attrs
        assert a["program"] == "ior" and a["kind"] == "storage" and a["tool_version"] == "4.1.0+dev"
        assert a["command_line"].startswith("/tmp/imp/ior/src/ior -a POSIX -t 1m -b 16m -F")
        assert a["hosts"] == ["vm", "vm"] and a["nranks"] == 2
        assert json.loads(a["options"])["transfer"] == MIB
        assert json.loads(a["options"])["pattern"] == "seq"
    code, _, err = ffb_import(capsys, "ior", peer("ior", "ior_random_shared.txt"), "-o", out,
                              "--fs-type", "ext4")
    assert code == 0, err
    run = one_run(out)
    assert json.loads(run.attrs["options"])["pattern"] == "random"
    assert json.loads(run.attrs["options"])["file_per_process"] == 0
    assert run.attrs["fs_type"] == "ext4"
    rows = resmod.storage_rows(resmod.load_runs([str(out)]))
    assert {r["phase"] for r in rows} == {"write", "read"}


def test_ior_json(capsys, tmp_path):
    out = tmp_path / "r.h5"
    for name in ("ior_fpp_summary.json", "ior_fpp_summary_extra_keys.json"):
        sample = peer("ior", name)
        code, _, err = ffb_import(capsys, "ior", sample, "-o", out)
        assert code == 0, err
        with open(sample) as fh:
            doc = json.load(fh)
        res = doc["tests"][0]["Results"]
        t = one_run(out).tables["storage_phases"]
        assert list(t["phase"]) == [r["access"] for r in res]
        assert list(t["rep"]) == [0, 0, 1, 1]
        assert np.allclose(t["bw"], [r["bwMiB"] * MIB / 1e9 for r in res])
        assert list(t["time"]) == [r["totalTime"] for r in res]
        assert list(t["ops_rate"]) == [r["iops"] for r in res]
        a = one_run(out).attrs
        assert a["command_line"] == doc["Command line"] and a["imported_format"] == "ior json"
        assert one_run(out).tables["ior_summary"]["bw_max"][1] == \
            pytest.approx(doc["summary"][1]["bwMaxMIB"] * MIB / 1e9)


def test_ior_truncated_and_wrong_kind(capsys, tmp_path):
    assert_refused(capsys, tmp_path, "ior", peer("ior", "ior_fpp_truncated.txt"), 38,
                   pattern="truncated: no summary")
    assert_refused(capsys, tmp_path, "ior", peer("ior", "ior_fpp_summary_truncated.json"), 106,
                   pattern="truncated")
    text = open(peer("ior", "ior_fpp.txt")).read()
    p = tmp_path / "ior_no_finished.txt"
    p.write_text(text[:text.index("Finished")])
    assert_refused(capsys, tmp_path, "ior", str(p), 42, pattern="no 'Finished' line")
    assert_refused(capsys, tmp_path, "ior", peer("osu", "osu_allreduce.txt"), 2,
                   pattern="looks like osu")
    assert_refused(capsys, tmp_path, "ior", peer("fio", "fio_seq_write_read.json"), 1,
                   pattern="looks like fio")


# ---- fio -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fio_json(tmp_path_factory):
    """Real fio JSON: a sequential write then a read (two processes each), run here."""
    if not shutil.which("fio"):
        pytest.skip("fio is not installed")
    d = tmp_path_factory.mktemp("fio")
    res = subprocess.run(
        ["fio", f"--directory={d}", "--size=8M", "--bs=1M", "--numjobs=2", "--group_reporting",
         "--output-format=json", "--name=seqwrite", "--rw=write", "--end_fsync=1",
         "--name=seqread", "--stonewall", "--rw=read"],
        capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    path = d / "fio.json"
    path.write_text(res.stdout)
    return path


def test_fio_json(capsys, tmp_path, fio_json):
    out = tmp_path / "r.h5"
    code, stdout, err = ffb_import(capsys, "fio", fio_json, "-o", out)
    assert code == 0, err
    doc = json.loads(fio_json.read_text())
    want = [(j["jobname"], d, j[d]) for j in doc["jobs"] for d in ("read", "write")
            if j[d]["io_bytes"] > 0]
    run = one_run(out)
    t = run.tables["storage_phases"]
    assert list(t["phase"]) == [d for _, d, _ in want] == ["write", "read"]
    assert list(t["job"]) == ["seqwrite", "seqread"]
    assert list(t["bytes"]) == [s["io_bytes"] for _, _, s in want] == [16 * MIB] * 2
    assert list(t["bw"]) == [s["bw_bytes"] / 1e9 for _, _, s in want]
    assert list(t["ops_rate"]) == [s["iops"] for _, _, s in want]
    assert list(t["ops"]) == [s["total_ios"] for _, _, s in want]
    assert list(t["time"]) == [s["runtime"] / 1e3 for _, _, s in want]
    assert list(t["lat_p50"]) == [s["clat_ns"]["percentile"]["50.000000"] / 1e3 for _, _, s in want]
    assert list(t["lat_p99"]) == [s["clat_ns"]["percentile"]["99.000000"] / 1e3 for _, _, s in want]
    assert list(t["ranks"]) == [2, 2]  # group_reporting: one entry for numjobs=2
    a = run.attrs
    assert a["program"] == "fio" and a["tool_version"] == doc["fio version"].removeprefix("fio-")
    assert a["engine"] == "psync" and a["nranks"] == 2
    assert json.loads(a["options"])["transfer"] == MIB
    assert json.loads(a["tool_job_options"])["seqread"]["rw"] == "read"
    assert a["date"] and a["date_source"] == "fio's timestamp"
    assert run.units["storage_phases"]["lat_p99"] == "us"


def test_fio_extra_keys_truncated_wrong_kind(capsys, tmp_path, fio_json):
    doc = json.loads(fio_json.read_text())
    doc["fio new top-level key"] = {"x": 1}
    for j in doc["jobs"]:
        j["write"]["bw_p99_bytes"] = 123
        j["read"]["clat_ns"]["stddev_of_something"] = 4.5
    extra = tmp_path / "fio_extra.json"
    extra.write_text("note: a line fio printed before its JSON\n" + json.dumps(doc, indent=2))
    out = tmp_path / "r.h5"
    code, _, err = ffb_import(capsys, "fio", extra, "-o", out)
    assert code == 0, err
    assert list(one_run(out).tables["storage_phases"]["phase"]) == ["write", "read"]
    text = fio_json.read_text()
    cut = tmp_path / "fio_cut.json"
    cut.write_text(text[:len(text) // 2])
    line = text[:len(text) // 2].rstrip().count("\n") + 1
    assert_refused(capsys, tmp_path, "fio", str(cut), line, pattern="truncated")
    assert_refused(capsys, tmp_path, "fio", peer("fio", "fio_randread_truncated.json"), 128,
                   pattern="truncated")
    assert_refused(capsys, tmp_path, "fio", peer("ior", "ior_fpp_summary.json"), 1,
                   pattern="looks like ior")
    assert_refused(capsys, tmp_path, "fio", peer("osu", "osu_allreduce.txt"), 2,
                   pattern="looks like osu")


def test_committed_fio_sample(capsys, tmp_path):
    out = tmp_path / "r.h5"
    code, _, err = ffb_import(capsys, "fio", peer("fio", "fio_seq_write_read.json"), "-o", out)
    assert code == 0, err
    assert list(one_run(out).tables["storage_phases"]["bw"]) == [1.458888347, 1.6777216]


# ---- all kinds: nothing written on any error --------------------------------------------------

def test_one_bad_file_writes_nothing(capsys, tmp_path):
    out = tmp_path / "r.h5"
    code, _, err = ffb_import(capsys, "osu", peer("osu", "osu_allreduce_f.txt"),
                              peer("osu", "osu_allreduce_f_truncated.txt"), "-o", out,
                              "--ranks", "2")
    assert code == 2 and "osu_allreduce_f_truncated.txt:18:" in err
    assert not out.exists()
    code, stdout, err = ffb_import(capsys, "ior", peer("ior", "ior_fpp.txt"),
                                   peer("ior", "ior_fpp_summary.json"), "-o", out)
    assert code == 0 and stdout.count("/runs/") == 2
    assert [r.id for r in h5io.read_runs(str(out))] == ["000000", "000001"]


def test_cli_usage(tmp_path):
    res = subprocess.run([FFBENCH, "import", "mdtest", peer("osu", "osu_allreduce.txt"),
                          "-o", str(tmp_path / "r.h5")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "invalid choice: 'mdtest'" in res.stderr
    assert not (tmp_path / "r.h5").exists()
    res = subprocess.run([FFBENCH, "import", "osu", str(tmp_path / "missing.txt"),
                          "-o", str(tmp_path / "r.h5")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "missing.txt:0: expected an existing file" in res.stderr
    assert "Traceback" not in res.stderr


# ---- compare and report show imported runs beside ours ---------------------------------------

def hfreduce_run(path, hosts, cpu):
    """An HFReduce run of the kind hfreduce_bench writes (2 ranks on one host)."""
    sizes = [1 << k for k in range(20, 27, 2)]
    n = len(sizes)
    attrs = h5io.provenance("hfreduce_bench", "collective", ["hfreduce_bench"], label="")
    attrs.update(backend="hfreduce", collective="allreduce", nranks=2, nnodes=1,
                 ranks_per_node="2", hosts=hosts, cpu_model=cpu, simd_level="avx2+f16c",
                 mpi_library_version="Open MPI v4.1.4", busbw_factor=1.0)
    algbw = [1.0 + 0.1 * i for i in range(n)]
    h5io.append_run(str(path), attrs, {"collective": {
        "size": (sizes * 2, "B"), "count": ([s // 4 for s in sizes] * 2, "count"),
        "type": (["float"] * 2 * n, "1"), "redop": (["sum"] * 2 * n, "1"),
        "placement": (["out-of-place"] * n + ["in-place"] * n, "1"),
        "time": ([s / a / 1e3 for s, a in zip(sizes, algbw)] * 2, "us"),
        "algbw": (algbw * 2, "GB/s"), "busbw": (algbw * 2, "GB/s"), "wrong": ([0] * 2 * n, "count"),
        "time_p99": ([10.0] * 2 * n, "us")},
        "ranks": {"rank": ([0, 1], "1"), "host": (hosts, "1"), "device": (["-", "-"], "1")}})


@pytest.fixture
def side_by_side(capsys, tmp_path):
    ours, imported = tmp_path / "ours.h5", tmp_path / "imported.h5"
    hfreduce_run(ours, ["gpu01"] * 2, "Test CPU")
    code, _, err = ffb_import(capsys, "nccl-tests", peer("nccl-tests", "all_reduce_perf.txt"),
                              "-o", imported, "--cpu-model", "Test CPU")
    assert code == 0, err
    code, _, err = ffb_import(capsys, "ior", peer("ior", "ior_fpp.txt"), "-o", imported)
    assert code == 0, err
    return ours, imported


def test_compare_runs_on_imported(side_by_side):
    ours, imported = side_by_side
    for argv in ([str(imported)], [str(imported), str(ours)],
                 [str(ours), "--reference", str(imported)]):
        res = subprocess.run([FFBENCH, "compare"] + argv, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode in (0, 1), res.stderr
        assert "Traceback" not in res.stderr


def test_report_draws_imported_beside_ours(side_by_side, tmp_path):
    pytest.importorskip("matplotlib")
    ours, imported = side_by_side
    out = tmp_path / "report"
    res = subprocess.run([FFBENCH, "report", str(imported), str(ours), "--out",
                          str(out)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    md = (out / "report.md").read_text()
    nccl_run = next(r for r in h5io.read_runs(str(imported)) if r.attrs["kind"] == "collective")
    nccl_series = resmod.series_name(nccl_run)
    # one machine holds the imported nccl-tests run (host gpu01 from the file, --cpu-model) and
    # our HFReduce run (same host and CPU); the imported IOR run is on this host: its own section
    sections = re.split(r"^## Machine: ", md, flags=re.M)[1:]
    gpu01 = [s for s in sections if s.startswith("gpu01 ")]
    assert len(gpu01) == 1, [s.splitlines()[0] for s in sections]
    assert "Test CPU" in gpu01[0].splitlines()[0] and "H100" in gpu01[0].splitlines()[0]
    legend = [ln for ln in gpu01[0].splitlines() if ln.startswith("- legend")]
    assert legend, gpu01[0]
    assert "hfreduce (2 ranks)" in legend[0] and f"{nccl_series} (8 ranks)" in legend[0], legend
    assert list(out.glob("busbw_vs_size*.png"))
    res = subprocess.run([FFBENCH, "export", "--csv", str(imported), str(ours)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "nccl-tests all_reduce_perf" in res.stdout and "hfreduce_bench" in res.stdout
