"""`ffbench compare`: PASS, FAIL and not-comparable rows against a crafted reference, exit codes,
the shipped reference file, and one results file against another."""
import os
import re
import subprocess

import pytest
import yaml

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.analysis import compare  # noqa: E402
from ffbench.commands import compare as compare_cmd
from ffbench.data import h5io
from ffbench.errors import UsageError  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
PAPER = 192937984


def coll_run(path, backend, nranks, nnodes, gpu, rows, label="", env=None, date=None):
    attrs = h5io.provenance(f"{backend}_bench", "collective", ["x"], label=label)
    attrs.update(backend=backend, collective="allreduce", nranks=nranks, nnodes=nnodes,
                 ranks_per_node=str(nranks // nnodes),
                 hosts=[f"h{i * nnodes // nranks}" for i in range(nranks)])
    if env:
        import json
        attrs["environment"] = json.dumps(env)
    if date:
        attrs["date"] = date
    dev = [f"GPU{i % 8} NVIDIA A100-PCIE-40GB" if gpu else "-" for i in range(nranks)]
    cols = {"size": [], "busbw": [], "algbw": [], "placement": [], "type": [], "redop": []}
    for size, placement, busbw in rows:
        cols["size"].append(size)
        cols["busbw"].append(busbw)
        cols["algbw"].append(busbw * nranks / (2 * (nranks - 1)))
        cols["placement"].append(placement)
        cols["type"].append("float")
        cols["redop"].append("sum")
    units = {"size": "B", "busbw": "GB/s", "algbw": "GB/s"}
    h5io.append_run(str(path), attrs, {
        "collective": {k: (v, units.get(k, "1")) for k, v in cols.items()},
        "ranks": {"rank": (list(range(nranks)), "1"), "device": (dev, "1")}})


REF = """
name: crafted
references:
  - {id: P1, quantity: hfreduce 16 GPUs, kind: collective, metric: busbw, value: 8.1, unit: GB/s,
     lower: -0.2, upper: null, match: {backend: hfreduce},
     conditions: {device: gpu, gpus: 16, nodes: 2, size: 192937984, placement: out-of-place},
     source: crafted}
  - {id: F1, quantity: nccl 16 GPUs, kind: collective, metric: busbw, value: 4.01, unit: GB/s,
     lower: -0.2, upper: null, match: {backend: nccl},
     conditions: {device: gpu, gpus: 16, nodes: 2, size: 192937984, placement: out-of-place},
     source: crafted}
  - {id: N1, quantity: hfreduce 32 GPUs, kind: collective, metric: busbw, value: 8.03, unit: GB/s,
     lower: -0.2, upper: null, match: {backend: hfreduce},
     conditions: {device: gpu, gpus: 32, nodes: 4, size: 192937984, placement: out-of-place},
     source: crafted}
  - {id: Q1, quantity: ratio, kind: collective_ratio, metric: busbw, value: 2.02, unit: x,
     lower: -0.2, upper: 0.2, match: {backend: hfreduce}, denominator: {backend: nccl},
     conditions: {gpus: 16, size: 192937984, placement: out-of-place}, source: crafted}
  - {id: C1, quantity: ceiling, kind: ceiling, metric: hfreduce_memory_ceiling, value: 13.3,
     unit: GB/s, lower: -0.1, upper: 0.1, conditions: {host_membw: {min: 288, max: 352}},
     source: crafted}
  - {id: S1, quantity: 3fs read, kind: storage, metric: bw, value: 8000, unit: GB/s, lower: -0.2,
     match: {workload: seq, phase: read}, conditions: {filesystem: {contains: 3fs}},
     source: crafted}
"""


@pytest.fixture()
def crafted(tmp_path):
    res = tmp_path / "r.h5"
    coll_run(res, "hfreduce", 16, 2, True, [(PAPER, "out-of-place", 7.5), (PAPER, "in-place", 7.0)])
    coll_run(res, "nccl", 16, 2, True, [(PAPER, "out-of-place", 2.0)])
    coll_run(res, "hfreduce", 2, 1, False, [(256 << 20, "out-of-place", 3.0)])
    attrs = h5io.provenance("membw_bench", "probe", ["membw_bench"])
    h5io.append_run(str(res), attrs, {"membw": {"threads": ([1, 2], "count"),
                                                "triad": ([20.0, 30.0], "GB/s")}})
    ref = tmp_path / "ref.yaml"
    ref.write_text(REF)
    return str(res), str(ref)


def test_rows_pass_fail_not_comparable(crafted):
    res, ref = crafted
    from ffbench.data.results import load_runs
    _, refs = compare.load_reference(ref)
    rows, uncovered = compare.compare_reference(load_runs([res]), refs)
    by = {r.ref.id: r for r in rows}
    assert by["P1"].status == "PASS" and by["P1"].measured == pytest.approx(7.5)
    assert by["P1"].ratio == pytest.approx(7.5 / 8.1)
    assert by["F1"].status == "FAIL" and by["F1"].measured == pytest.approx(2.0)
    assert by["N1"].status == "not comparable"
    assert "gpus 16 vs 32" in by["N1"].detail and "nodes 2 vs 4" in by["N1"].detail
    assert by["N1"].ratio is None
    assert by["Q1"].status == "FAIL" and by["Q1"].measured == pytest.approx(3.75)
    assert by["C1"].status == "not comparable" and "host_membw 30 vs >= 288" in by["C1"].detail
    assert [r.id for r in uncovered] == ["S1"]
    assert by["P1"].ref.tolerance_text() == "(8.1, -0.2, None, 'GB/s')"


def test_host_run_not_comparable_reason(tmp_path):
    res = tmp_path / "host.h5"
    coll_run(res, "hfreduce", 2, 1, False, [(256 << 20, "out-of-place", 3.0)])
    ref = tmp_path / "ref.yaml"
    ref.write_text(REF)
    out = subprocess.run([FFBENCH, "compare", str(res), "--reference", str(ref)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr  # not comparable is not a failure
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("P1")][0]
    assert "not comparable" in line and "(3)" in line
    assert "device host vs gpu" in line and "gpus 0 (host buffers, 2 ranks) vs 16" in line
    assert "size 256 MiB vs 184 MiB" in line
    assert "0 PASS, 0 FAIL, 2 not comparable" in out.stdout


def test_cli_exit_status_and_table(crafted, tmp_path):
    res, ref = crafted
    out = subprocess.run([FFBENCH, "compare", res, "--reference", ref],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1  # F1 and Q1 fail
    head = [ln for ln in out.stdout.splitlines() if ln.startswith("ref ")][0]
    for col in ("reference", "measured", "ratio", "tolerance (value, lower, upper, unit)", "status"):
        assert col in head
    assert re.search(r"^P1 .*8\.1 GB/s .*7\.5 .*0\.93 .*PASS", out.stdout, re.M)
    assert re.search(r"^F1 .*FAIL", out.stdout, re.M)
    assert "C1" in out.stdout and "(1.25, model)" in out.stdout
    # one section per machine: the GPU cluster (its host-buffer run on h0 joins it) and the
    # membw host
    assert "raw references: 1 PASS, 2 FAIL, 1 not comparable, 2 not covered" in out.stdout
    assert "raw references: 0 PASS, 0 FAIL, 1 not comparable, 5 not covered" in out.stdout
    md = subprocess.run([FFBENCH, "compare", res, "--reference", ref, "--markdown"],
                        capture_output=True, text=True, timeout=60)
    assert "| P1 |" in md.stdout
    # Without the failing results: exit 0.
    only = tmp_path / "only.h5"
    coll_run(only, "hfreduce", 16, 2, True, [(PAPER, "out-of-place", 8.3)])
    out = subprocess.run([FFBENCH, "compare", str(only), "--reference", ref],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "1 PASS, 0 FAIL" in out.stdout


def test_bad_reference_files(tmp_path, crafted):
    res, _ = crafted
    cases = {
        "references: 3": "expected a list of references",
        "references: [{id: a, kind: collective, metric: busbw, unit: GB/s}]": "'references[0].value'",
        "references: [{id: a, kind: magic, metric: m, value: 1, unit: x}]": "'references[0].kind'",
        "references: [{id: a, kind: collective, metric: m, value: 1, unit: x, lower: 0.2}]":
            "'references[0].lower': expected a fraction <= 0",
        "references: [{id: a, kind: collective, metric: m, value: 1, unit: x, colour: red}]":
            "'references[0].colour': unknown key",
    }
    for text, needle in cases.items():
        p = tmp_path / "bad.yaml"
        p.write_text(text)
        out = subprocess.run([FFBENCH, "compare", res, "--reference", str(p)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, text
        assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = subprocess.run([FFBENCH, "compare", str(tmp_path / "none.h5")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no such results file" in out.stderr


def test_shipped_reference_is_complete_and_honest():
    path = os.path.join(ROOT, "configs", "reference", "fire-flyer-2.yaml")
    data, refs = compare.load_reference(path)
    ids = {r.id.split(".")[0] for r in refs}
    assert ids == {f"R{i}" for i in range(1, 17)}
    for r in refs:
        assert r.source and r.unit
        assert r.lower is None or r.lower <= 0
        assert r.upper is None or r.upper >= 0
    raw_refs = [r for r in refs if not r.is_twin]
    r1 = {r.id: r for r in raw_refs if r.id.startswith("R1.")}
    assert [r1[f"R1.g{g}"].value for g in (16, 32, 64, 128, 256, 512, 1024, 1280)] == \
        [8.10, 8.03, 7.95, 7.78, 7.12, 7.33, 6.31, 6.99]
    assert r1["R1.g16"].conditions["size"] == PAPER and r1["R1.g16"].lower == -0.2
    r2 = [r.value for r in raw_refs if r.id.startswith("R2.")]
    assert r2 == [4.01, 4.41, 4.29, 3.73, 4.83, 4.62, 1.63, 1.65]
    raw = yaml.safe_load(open(path))
    assert raw["schema"] == "ffbench-reference/1"


def test_results_against_results(tmp_path):
    old, new = tmp_path / "old.h5", tmp_path / "new.h5"
    sizes = [(1 << 20, "out-of-place", 2.0), (4 << 20, "out-of-place", 3.0),
             (4 << 20, "in-place", 3.0), (1024, "out-of-place", 0.1)]
    coll_run(old, "mpi", 2, 1, False, sizes, label="mpi.ring.r2@0123456789ab")
    coll_run(old, "mpi", 8, 1, False, sizes, label="mpi.ring.r8@0123456789ac")
    coll_run(new, "mpi", 2, 1, False, [(1 << 20, "out-of-place", 1.9), (4 << 20, "out-of-place", 1.5),
                                      (1024, "out-of-place", 0.01)],
             label="mpi.ring.r2@0123456789ab")
    coll_run(new, "mpi", 4, 1, False, sizes, label="mpi.ring.r4@0123456789ad")
    out = subprocess.run([FFBENCH, "compare", str(new), "--reference", str(old)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    pass_line = [ln for ln in lines if "r2 n1 1 MiB" in ln][0]
    fail_line = [ln for ln in lines if "r2 n1 4 MiB" in ln][0]
    assert "PASS" in pass_line and "FAIL" in fail_line and "0.5" in fail_line
    nc = [ln for ln in lines if "r8 n1" in ln]
    assert nc and all("not comparable" in ln and "ranks 4 vs 8" in ln for ln in nc)
    assert not [ln for ln in lines if " 1 KiB" in ln]  # below --min-size
    assert not [ln for ln in lines if "in-place" in ln.split("  ")[0]]
    out = subprocess.run([FFBENCH, "compare", str(new), "--reference", str(old),
                          "--lower", "-0.6"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    with pytest.raises(UsageError):
        compare_cmd._fraction("lots", "--lower")
