"""`ffbench report`: PNG plots and the Markdown report from a small results file."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from ffbenchlib import h5io  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def coll(path, backend, label, nranks, nnodes, scale, hosts=None):
    attrs = h5io.provenance(f"{backend}_bench", "collective", ["x"], label=label)
    attrs.update(backend=backend, collective="allreduce", nranks=nranks, nnodes=nnodes,
                 ranks_per_node=str(nranks // nnodes),
                 hosts=hosts or ["vm"] * nranks, cpu_model="Test CPU", simd_level="avx2+f16c",
                 mpi_library_version="Open MPI v4.1.4")
    sizes = [1 << k for k in range(10, 29, 3)]
    n = len(sizes)
    busbw = [scale * min(1.0, s / (1 << 22)) for s in sizes]
    h5io.append_run(str(path), attrs, {"collective": {
        "size": (sizes * 2, "B"), "busbw": (busbw * 2, "GB/s"), "algbw": (busbw * 2, "GB/s"),
        "placement": (["out-of-place"] * n + ["in-place"] * n, "1"), "type": (["float"] * 2 * n, "1"),
        "redop": (["sum"] * 2 * n, "1"), "time_p99": ([10.0] * 2 * n, "us")},
        "ranks": {"rank": (list(range(nranks)), "1"), "device": (["-"] * nranks, "1")}})


def storage(path):
    attrs = h5io.provenance("storage_bench", "storage", ["storage_bench"],
                            label="storage.seq.r2@0123456789ab")
    attrs.update(nranks=2, fs_type="ext4", mount_point="/", node_mem_bw_gbps=25.0)
    phases = [("seq", "write", 1.2, 300.0), ("seq", "read", 3.4, 900.0), ("meta", "create", float("nan"), 5000.0)]
    nan = float("nan")
    h5io.append_run(str(path), attrs, {
        "storage_phases": {
            "workload": ([p[0] for p in phases], "1"), "phase": ([p[1] for p in phases], "1"),
            "rep": ([0, 0, 0], "1"), "ranks": ([2, 2, 2], "count"),
            "bw": ([p[2] for p in phases], "GB/s"), "ops_rate": ([p[3] for p in phases], "ops/s"),
            "lat_p50": ([100.0, 50.0, 20.0], "us"), "lat_p99": ([400.0, 200.0, 80.0], "us"),
            "lat_p999": ([900.0, 300.0, 150.0], "us"), "cache_resident": ([nan, 1.0, nan], "1")},
        "storage_ops": {"phase_index": ([0, 1, 2], "1"), "op": (["write", "read", "create"], "1"),
                        "bw": ([1.2, 3.4, nan], "GB/s"), "ops_rate": ([300.0, 900.0, 5000.0], "ops/s")}})


@pytest.fixture()
def results(tmp_path):
    path = tmp_path / "small.h5"
    coll(path, "mpi", "mpi.default.r2@0123456789ab", 2, 1, 2.0)
    coll(path, "mpi", "mpi.ring.r4@0123456789ac", 4, 1, 1.5)
    coll(path, "hfreduce", "hfreduce.node.r2@0123456789ad", 2, 1, 2.5)
    for n in (2, 3):
        coll(path, "hfreduce", f"hfreduce.n{n}x1@01234567890{n}", n, n, 0.3,
             hosts=[f"ffb-node{k}" for k in range(1, n + 1)])
    storage(path)
    attrs = h5io.provenance("membw_bench", "probe", ["membw_bench"])
    h5io.append_run(str(path), attrs, {"membw": {"threads": ([1, 2], "count"),
                                                 "triad": ([20.0, 30.0], "GB/s")}})
    return str(path)


def test_report_pngs_and_markdown(results, tmp_path):
    out = tmp_path / "rep"
    res = subprocess.run([sys.executable, FFBENCH, "report", results, "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    pngs = ["busbw_vs_size.png", "busbw_vs_nodes.png", "storage_throughput.png",
            "storage_latency.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    md = (out / "report.md").read_text()
    for name in pngs:
        assert f"]({name})" in md
    for section in ("## The machine that produced these results", "## Comparison with the paper",
                    "## Allreduce bandwidth against message size (measured)",
                    "## Allreduce bandwidth against nodes, with the paper's points",
                    "## Storage workloads (measured)",
                    "## Analytic ceilings: the 24 S host-memory model (model)",
                    "## What could not be measured here, and why"):
        assert section in md, section
    assert "Test CPU" in md and "avx2+f16c" in md and "\0" not in md
    assert "2 network namespaces (ffb-node1 .. ffb-node3)" in md or "network namespaces" in md
    assert "30.0 (measured)" in md and "1.25 (model)" in md        # 30 GB/s / 24
    assert "13.3 (reference R5)" in md
    assert "not comparable" in md                                    # R1 rows, host buffers
    assert "**No GPU was used.**" in md and "**No 3FS.**" in md
    assert "| 2 | 8.1 | 4.01 | 19.2 |" in md                          # paper points beside ours
    assert "mpi.ring (4 ranks)" in md


def test_report_markdown_elsewhere_links_relative(results, tmp_path):
    out = tmp_path / "results" / "report"
    md_path = tmp_path / "REPORT.md"
    res = subprocess.run([sys.executable, FFBENCH, "report", results, "--out", str(out),
                          "--markdown", str(md_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    md = md_path.read_text()
    assert "](results/report/busbw_vs_size.png)" in md
    assert not (out / "report.md").exists()


def test_report_collectives_only_and_errors(tmp_path):
    path = tmp_path / "c.h5"
    coll(path, "mpi", "mpi.default.r2@0123456789ab", 2, 1, 2.0)
    out = tmp_path / "rep"
    res = subprocess.run([sys.executable, FFBENCH, "report", str(path), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (out / "busbw_vs_size.png").exists() and not (out / "storage_latency.png").exists()
    md = (out / "report.md").read_text()
    assert "No storage results in these files." in md
    assert "host memory bandwidth was not measured" in md
    res = subprocess.run([sys.executable, FFBENCH, "report", str(tmp_path / "none.h5"), "--out",
                          str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "no such results file" in res.stderr


def test_export_json_roundtrip_of_report_input(results):
    res = subprocess.run([sys.executable, FFBENCH, "export", results, "--json"],
                         capture_output=True, text=True, timeout=60)
    data = json.loads(res.stdout)
    assert len(data["runs"]) == 7
