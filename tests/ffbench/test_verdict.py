"""Matching that is proven to decide: every reference kind (raw and normalised) PASSes, FAILs and
is "not comparable" / "not measured" with its reason on small synthetic results files written
with the real writer (h5io.append_run); a Fire-Flyer-2-shaped file decides every raw R1-R7 row;
the loader refuses bad reference files with one line; machines never share denominators;
results-file mode tells hardware from software; the committed H100 results decide the GPU twins.

Every synthetic run sets hosts, cpu_model, nranks, nnodes, ranks_per_node and status explicitly,
so that machine grouping (machines.group) is deterministic."""
import json
import os
import re
import subprocess

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.analysis import compare  # noqa: E402
from ffbench.data import h5io
from ffbench.data import machines
from ffbench.data import merge
from ffbench.data import results
from ffbench.analysis import verdict
from ffbench.errors import UsageError

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
FF2_YAML = os.path.join(ROOT, "configs", "reference", "fire-flyer-2.yaml")
H100_H5 = os.path.join(ROOT, "results", "gpu", "gpu-check-h100.h5")
PAPER = 192937984          # 46 x 1024 x 1024 floats
M64 = 64 << 20
A100 = "NVIDIA A100-PCIE-40GB"
A100_SXM = "NVIDIA A100-SXM4-80GB"
EPYC = "AMD EPYC 7742 64-Core Processor"
XEON = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
DAY1 = "2026-01-01T00:00:00+00:00"
DAY2 = "2026-01-02T00:00:00+00:00"
PASS, FAIL, NC, NM = "PASS", "FAIL", "not comparable", "not measured"

_REFS = None


def ff2_refs():
    global _REFS
    if _REFS is None:
        _REFS = compare.load_reference(FF2_YAML)[1]
    return _REFS


def ff2_ref(ref_id):
    return {r.id: r for r in ff2_refs()}[ref_id]


# ---- synthetic-run builders (the real writer) ------------------------------------------------

def _attrs(program, kind, hosts, cpu, date=None, env=None, label="", **extra):
    """Provenance with every attr machine grouping reads set explicitly."""
    hosts = list(hosts)
    nodes = len(dict.fromkeys(hosts))
    per = {h: hosts.count(h) for h in hosts}
    rpn = sorted(set(per.values()))
    a = h5io.provenance(program, kind, [program], label=label)
    a.update(hosts=hosts, cpu_model=cpu, nranks=len(hosts), nnodes=nodes,
             ranks_per_node=str(rpn[0]) if len(rpn) == 1 else ",".join(str(per[h]) for h in per),
             status="complete", environment=json.dumps(env or {}), simd_level="avx2+f16c")
    if date:
        a["date"] = date
    a.update(extra)
    return a


def node_hosts(nodes, rpn, prefix="ff-n"):
    return [f"{prefix}{1 + i // rpn:03d}" for i in range(nodes * rpn)]


def gpu_devices(hosts, model=A100):
    out, seen = [], {}
    for h in hosts:
        k = seen.get(h, 0)
        seen[h] = k + 1
        out.append(f"GPU{k} {model} [0000:{0x1b + 0x20 * k:02x}:00.0]")
    return out


def _ranks_table(hosts, devices):
    return {"rank": (list(range(len(hosts))), "1"), "host": (list(hosts), "1"),
            "device": (list(devices), "1")}


def coll(path, backend, hosts, rows, gpu=True, cpu=EPYC, gpu_model=A100, program=None,
         date=None, env=None, label="", **extra):
    """One collective run; rows: (size, busbw[, placement[, type]])."""
    n = len(hosts)
    program = program or {"hfreduce": "hfreduce_gpu_bench" if gpu else "hfreduce_bench",
                          "nccl": "nccl_allreduce_bench", "mpi": "mpi_allreduce_bench"}[backend]
    a = _attrs(program, "collective", hosts, cpu, date=date, env=env, label=label,
               backend=backend, collective="allreduce", busbw_factor=2 * (n - 1) / n, **extra)
    factor = 2 * (n - 1) / n if n > 1 else 1.0
    cols = {k: [] for k in ("size", "count", "type", "redop", "placement", "time", "algbw",
                            "busbw")}
    for row in rows:
        size, busbw = row[0], row[1]
        placement = row[2] if len(row) > 2 else "out-of-place"
        dtype = row[3] if len(row) > 3 else "float"
        algbw = busbw / factor
        cols["size"].append(int(size))
        cols["count"].append(int(size) // 4)
        cols["type"].append(dtype)
        cols["redop"].append("sum")
        cols["placement"].append(placement)
        cols["time"].append(size / (algbw * 1e3) if algbw else 0.0)
        cols["algbw"].append(algbw)
        cols["busbw"].append(busbw)
    units = {"size": "B", "count": "count", "time": "us", "algbw": "GB/s", "busbw": "GB/s"}
    devices = gpu_devices(hosts, gpu_model) if gpu else ["-"] * n
    h5io.append_run(str(path), a, {
        "collective": {k: (v, units.get(k, "1")) for k, v in cols.items()},
        "ranks": _ranks_table(hosts, devices)})


def membw(path, add_bw, hosts=("vm",), cpu=EPYC, threads=(1, 4, 8)):
    """membw_bench: kernels copy and add per thread count; `add` peaks at add_bw."""
    k, bw, th = [], [], []
    for t in threads:
        for kern, scale in (("copy", 0.9), ("add", 1.0)):
            k.append(kern)
            th.append(t)
            bw.append(add_bw * scale * t / max(threads))
    a = _attrs("membw_bench", "probe", hosts, cpu, membw_size_rule="4 x LLC")
    h5io.append_run(str(path), a, {
        "membw": {"kernel": (k, "1"), "threads": (th, "count"), "bandwidth": (bw, "GB/s")},
        "ranks": _ranks_table(list(hosts), ["-"] * len(hosts))})


def gemm(path, rows, hosts=("ff-n001",), cpu=EPYC, gpu_model=A100):
    """gemm_bench: rows (type, n, tflops) on GPU0 of the first host."""
    dev = gpu_devices(list(hosts), gpu_model)[0]
    a = _attrs("gemm_bench", "probe", hosts, cpu)
    h5io.append_run(str(path), a, {
        "gemm": {"device": ([dev] * len(rows), "1"), "rank": ([0] * len(rows), "1"),
                 "type": ([r[0] for r in rows], "1"), "n": ([r[1] for r in rows], "count"),
                 "tflops": ([float(r[2]) for r in rows], "TFLOPS"),
                 "time": ([2.0 * r[1] ** 3 / (r[2] * 1e12) * 1e6 for r in rows], "us")},
        "ranks": _ranks_table(list(hosts), gpu_devices(list(hosts), gpu_model))})


def pcie(path, rows, hosts=("ff-n001",), cpu=EPYC, gpu_model=A100, speed="16.0 GT/s PCIe",
         width=16, gbps=31.5):
    """pcie_bench: rows (scenario, gpus, memory, direction, GB/s); 8 GPUs, pairs on root ports."""
    topo = {"device": (list(range(8)), "1"),
            "name": ([f"GPU{i} {gpu_model}" for i in range(8)], "1"),
            "bus_id": ([f"0000:{0x1b + 0x20 * i:02x}:00.0" for i in range(8)], "1"),
            "link_speed": ([speed] * 8, "1"), "link_width": ([width] * 8, "1"),
            "link_gbps": ([gbps] * 8, "GB/s"),
            "root_port": ([f"0000:{0x10 + i // 2:02x}:01.1" for i in range(8)], "1")}
    a = _attrs("pcie_bench", "probe", hosts, cpu)
    h5io.append_run(str(path), a, {
        "pcie": {"scenario": ([r[0] for r in rows], "1"), "gpus": ([r[1] for r in rows], "1"),
                 "memory": ([r[2] for r in rows], "1"), "direction": ([r[3] for r in rows], "1"),
                 "bandwidth": ([float(r[4]) for r in rows], "GB/s")},
        "pcie_topology": topo,
        "ranks": _ranks_table(list(hosts), gpu_devices(list(hosts), gpu_model))})


def ddp(path, backend, ranks, step_time, model="vgg16", batch=50, rpn=8, cpu=EPYC,
        cond=None, date=None, host=None):
    """ddp_bench run: one `ddp` row; cuBLAS compute on A100s, or with `host` emulated compute
    on that one host (ranks table device "-")."""
    hosts = [host] * ranks if host else node_hosts(max(1, ranks // rpn), rpn)[:ranks]
    compute = "emulated" if host else "cublas"
    cond = {"image_size": 224} if cond is None else cond
    a = _attrs("ddp_bench", "ddp", hosts, cpu, date=date, model=model, compute=compute,
               compute_emulated=int(bool(host)), dtype="float", optimizer="none", **cond)
    h5io.append_run(str(path), a, {
        "ddp": {"model": ([model], "1"), "backend": ([backend], "1"), "compute": ([compute], "1"),
                "ranks": ([ranks], "count"), "nodes": ([max(1, ranks // rpn)], "count"),
                "batch_per_gpu": ([batch], "count"), "step_time": ([float(step_time)], "s"),
                "step_time_p50": ([float(step_time)], "s"),
                "samples_per_s": ([batch * ranks / step_time], "samples/s")},
        "ranks": _ranks_table(hosts, ["-"] * ranks if host else gpu_devices(hosts))})


def crosscheck(path, cases, hosts=("vm",), cpu=EPYC, fs_type="ext4"):
    """fio-crosscheck run (kind crosscheck): cases (case, storage_bench GB/s, fio GB/s)."""
    a = h5io.provenance("fio-crosscheck", "crosscheck", ["fio-crosscheck"])
    a.update(hosts=list(hosts), cpu_model=cpu, nranks=1, nnodes=1, ranks_per_node="1",
             status="complete", dir="/scratch/x", fs_type=fs_type, environment="{}")
    h5io.append_run(str(path), a, {"crosscheck": {
        "case": ([c[0] for c in cases], "1"),
        "storage_bench_bw": ([float(c[1]) for c in cases], "GB/s"),
        "fio_bw": ([float(c[2]) for c in cases], "GB/s"),
        "ratio": ([c[1] / c[2] for c in cases], "1"),
        "within_tolerance": ([int(abs(c[1] / c[2] - 1) <= 0.05) for c in cases], "1")}})


def storage(path, rows, fs_type="ext4", hosts=("vm",), cpu=EPYC):
    """storage_bench run: rows (workload, phase, GB/s)."""
    a = _attrs("storage_bench", "storage", hosts, cpu, fs_type=fs_type, engine="posix")
    n = len(rows)
    h5io.append_run(str(path), a, {"storage_phases": {
        "workload": ([r[0] for r in rows], "1"), "phase": ([r[1] for r in rows], "1"),
        "rep": ([0] * n, "1"), "ranks": ([len(hosts)] * n, "count"),
        "bytes": ([1 << 30] * n, "B"), "time": ([(1 << 30) / (r[2] * 1e9) for r in rows], "s"),
        "bw": ([float(r[2]) for r in rows], "GB/s"), "ops_rate": ([1000.0] * n, "ops/s")},
        "ranks": _ranks_table(list(hosts), ["-"] * len(hosts))})


def generic(path, kind, table, columns, hosts=("vm",), cpu=EPYC, options=None, **extra):
    """A run of any kind with one table {column: values}."""
    a = _attrs(kind, kind, hosts, cpu, **extra)
    if options is not None:
        a["options"] = json.dumps(options)
    h5io.append_run(str(path), a, {table: {c: (v, "1") for c, v in columns.items()}})


def ffbench(*args):
    env = dict(os.environ, FFB_ROOT=ROOT)
    return subprocess.run([FFBENCH, *args], capture_output=True, text=True,
                          timeout=60, env=env)


def one_machine_runs(path):
    runs = results.load_runs([str(path)])
    ms = machines.group(runs)
    assert len(ms) == 1, [m.name for m in ms]
    return ms[0].runs


def twin(path, ref_id, refs=None):
    """The verdict row of twin `ref_id` for the one machine in `path`."""
    rows = verdict.verdicts(one_machine_runs(path), refs or ff2_refs())
    return {r.ref_id: r for r in rows}[ref_id]


def raw_rows(path, refs):
    rows, uncovered = compare.compare_reference(results.load_runs([str(path)]), refs)
    return {r.ref.id: r for r in rows}, {r.id for r in uncovered}


# ---- a Fire-Flyer-2-shaped file decides the raw R1-R7 rows -------------------------------------

R1_NODES = (2, 4, 8, 16, 32, 64, 128, 160)
R4_NODES = (2, 4, 8, 16, 32, 64, 128)
ZONE_NODES = (16, 32, 64, 128)
FF2_FAILS = {"R1.g1024", "R3.g1024", "R4.zones.g512", "R7.fp16.pcie"}   # built to fail


@pytest.fixture(scope="module")
def ff2_file(tmp_path_factory):
    """The FF2 cluster (8 x A100-PCIe per node, EPYC, ff-n001..ff-n160) at 95 % of the paper's
    numbers, except the FF2_FAILS points at 50 %; a DGX node's GEMM run covers the SXM rows."""
    path = tmp_path_factory.mktemp("ff2") / "ff2.h5"
    ref = {r.id: r for r in ff2_refs()}
    g = {n: 8 * n for n in R1_NODES}
    # NVLink runs first (older), so that the plain runs are the latest at shared points.
    for n in R4_NODES:
        coll(path, "hfreduce", node_hosts(n, 8), [(PAPER, 0.95 * ref[f"R4.g{g[n]}"].value)],
             date=DAY1, nvlink=1, zones=1)
    for n in ZONE_NODES:
        f = 0.5 if f"R4.zones.g{g[n]}" in FF2_FAILS else 0.95
        coll(path, "hfreduce", node_hosts(n, 8),
             [(PAPER, f * ref[f"R4.zones.g{g[n]}"].value)], date=DAY1, nvlink=1, zones=2)
    for n in R1_NODES:
        f = 0.5 if f"R1.g{g[n]}" in FF2_FAILS else 0.95
        coll(path, "hfreduce", node_hosts(n, 8),
             [(PAPER, f * ref[f"R1.g{g[n]}"].value), (PAPER, 1.0, "in-place")], date=DAY2)
        coll(path, "nccl", node_hosts(n, 8), [(PAPER, 0.95 * ref[f"R2.g{g[n]}"].value)],
             date=DAY2)
    membw(path, 320.0, hosts=["ff-n001"], cpu=EPYC, threads=(1, 32, 128))
    pcie(path, [("alone", "0", "pinned", "d2h", 27.5), ("alone", "0", "pinned", "h2d", 26.0),
                ("root port 0000:12:01.1", "5,6", "pinned", "d2h", 37.5),
                ("alone", "0", "pinned", "gpu-nic", 9.5)])
    gemm(path, [("tf32", 8192, 105.0), ("fp16", 8192, 150.0)])
    gemm(path, [("tf32", 8192, 130.0), ("fp16", 8192, 260.0)], hosts=["dgx-n001"],
         gpu_model=A100_SXM)
    return str(path)


def r1_to_r7_raw_ids():
    return [r.id for r in ff2_refs() if not r.is_twin
            and re.match(r"R[1-7]\.", r.id)]


def test_ff2_shape_decides_every_raw_r1_to_r7(ff2_file):
    ids = r1_to_r7_raw_ids()
    assert {i.split(".")[0] for i in ids} == {f"R{k}" for k in range(1, 8)}
    assert any(i.startswith("R4.zones.") for i in ids)
    assert {"R5.memory", "R5.measured", "R6.d2h", "R6.rootport", "R6.p2p"} <= set(ids)
    rows, uncovered = raw_rows(ff2_file, ff2_refs())
    assert not (set(ids) & uncovered), sorted(set(ids) & uncovered)
    got = {i: rows[i].status for i in ids}
    want = {i: FAIL if i in FF2_FAILS else PASS for i in ids}
    assert got == want, {i: (got[i], rows[i].detail) for i in ids if got[i] != want[i]}
    # the values that decided are the ones built for the point
    assert rows["R1.g16"].measured == pytest.approx(0.95 * 8.1)
    assert rows["R4.g16"].measured == pytest.approx(0.95 * 19.18)
    assert rows["R4.zones.g128"].measured == pytest.approx(0.95 * 9.27)
    assert rows["R3.g16"].measured == pytest.approx(8.1 / 4.01)
    assert rows["R5.memory"].measured == pytest.approx(320 / 24)
    assert rows["R6.rootport"].measured == pytest.approx(37.5)
    assert rows["R6.p2p"].measured == pytest.approx(9.5)
    assert rows["R7.tf32.sxm"].measured == pytest.approx(130)


def test_ff2_shape_per_machine_sections(ff2_file):
    """`ffbench compare --all`: grouped by machine, every R1-R7 raw row is decided in the section
    of the machine that measured it, with the status built for it."""
    out = ffbench("compare", ff2_file, "--all")
    assert out.returncode == 1, out.stdout + out.stderr   # FF2_FAILS fail
    sections = re.split(r"^== ", out.stdout, flags=re.M)[1:]
    # the FF2 cluster (its GPU-less membw run joins it: same hosts) and the separate SXM node
    assert len(sections) == 2, [s.splitlines()[0] for s in sections]
    decided = {}
    raw_ids = set(r1_to_r7_raw_ids())  # --all also lists every twin: not raw rows
    for sec in sections:
        for line in sec.splitlines():
            m = re.match(r"(R[1-7]\.\S+)\s.*\s(PASS|FAIL)\s", line + " ")
            if m and m.group(1) in raw_ids:
                assert m.group(1) not in decided, m.group(1)
                decided[m.group(1)] = m.group(2)
    ids = r1_to_r7_raw_ids()
    assert decided == {i: FAIL if i in FF2_FAILS else PASS for i in ids}
    ff2 = [s for s in sections if s.startswith("ff-n001 .. ff-n160")][0]
    for i in ids:
        if ".sxm" not in i:
            assert re.search(rf"^{re.escape(i)}\s.*\s(PASS|FAIL)\s", ff2 + "\n", re.M), i


def test_nvlink_run_is_not_comparable_with_r1(tmp_path):
    path = tmp_path / "nvlink.h5"
    coll(path, "hfreduce", node_hosts(2, 8), [(PAPER, 19.0)], nvlink=1, zones=1)
    rows, _ = raw_rows(path, ff2_refs())
    assert rows["R4.g16"].status == PASS
    assert rows["R1.g16"].status == NC and "nvlink" in rows["R1.g16"].detail


# ---- raw kinds, on a crafted reference --------------------------------------------------------

RAW_REFS = {
    "collective": dict(metric="busbw", value=8.0, unit="GB/s", lower=-0.2, upper=None,
                       match={"backend": "hfreduce", "collective": "allreduce"},
                       conditions={"device": "gpu", "gpus": 16, "nodes": 2, "ranks_per_node": 8,
                                   "size": PAPER, "placement": "out-of-place"}),
    "collective_ratio": dict(metric="busbw", value=2.0, unit="x", lower=-0.2, upper=0.2,
                             match={"backend": "hfreduce"}, denominator={"backend": "nccl"},
                             conditions={"gpus": 16, "size": PAPER, "placement": "out-of-place"}),
    "storage": dict(metric="bw", value=2.0, unit="GB/s", lower=-0.2, upper=None,
                    match={"workload": "seq", "phase": "read"},
                    conditions={"filesystem": {"contains": "ext4"}, "nodes": 1}),
    "ceiling": dict(metric="hfreduce_memory_ceiling", value=13.3, unit="GB/s", lower=-0.1,
                    upper=0.1, conditions={"host_membw": {"min": 100, "max": 400}}),
    "gemm": dict(metric="tflops", value=100, unit="TFLOPS", lower=-0.1, upper=0.1,
                 match={"type": "tf32"},
                 conditions={"gpu_model": {"contains": "A100-PCIE"}, "n": {"min": 2048}}),
    "pcie": dict(metric="bandwidth", value=25, unit="GB/s", lower=-0.2, upper=0.2,
                 match={"direction": "d2h", "memory": "pinned", "scenario": "alone"},
                 conditions={"pcie_gen": 4, "lanes": 16}),
    "ddp": dict(metric="step_time", value=0.13, unit="s", lower=None, upper=0.2,
                match={"model": "vgg16", "backend": "hfreduce"},
                conditions={"gpus": 32, "batch_per_gpu": 50, "image_size": 224}),
    "model": dict(metric="node_price_ratio", value=0.6, unit="1", lower=-0.05, upper=0.05,
                  table="cost", match={"model": "cost", "cluster": "Fire-Flyer 2"},
                  conditions={"baseline": "DGX-A100, 3-layer"}),
    "graysort": dict(metric="throughput", value=3.66, unit="TiB/min", lower=-0.2, upper=None,
                     conditions={"storage_nodes": 25, "data_tib": 110.5}),
    "fleet": dict(metric="share", value=42.57, unit="%", lower=-0.2, upper=0.2,
                  conditions={"gpu_xid_errors_per_year": 12970}),
}
# kind: the reason a run that differs in one named condition is not comparable
RAW_NC_REASON = {
    "collective": "nodes 4 vs 2",
    "collective_ratio": "denominator: size 64 MiB vs 184 MiB",
    "storage": "filesystem xfs vs 'ext4'",
    "ceiling": "host_membw 45 vs >= 100 and <= 400",
    "gemm": "gpu_model NVIDIA H100 80GB HBM3 vs 'A100-PCIE'",
    "pcie": "pcie_gen 3 vs 4",
    "ddp": "batch_per_gpu 25 vs 50",
    "model": "baseline PCIe A100, 3-layer vs DGX-A100, 3-layer",
    "graysort": "storage_nodes 10 vs 25",
    "fleet": "gpu_xid_errors_per_year 5000 vs 12970",
}


def raw_ref_file(tmp_path, kind):
    entry = {"id": f"K.{kind}", "quantity": f"crafted {kind}", "kind": kind, "source": "crafted"}
    entry.update(RAW_REFS[kind])
    p = tmp_path / f"ref-{kind}.yaml"
    p.write_text(json.dumps({"name": "crafted", "references": [entry]}))   # JSON is YAML
    return str(p)


def build_raw(path, kind, case):
    """A results file for `kind`: case pass (matching, in tolerance), fail (matching, out of
    tolerance) or nc (one condition differs)."""
    ok = case != "nc"
    good = case == "pass"
    if kind == "collective":
        coll(path, "hfreduce", node_hosts(2 if ok else 4, 8), [(PAPER, 8.0 if good else 4.0)])
    elif kind == "collective_ratio":
        coll(path, "hfreduce", node_hosts(2, 8), [(PAPER, 8.0)])
        coll(path, "nccl", node_hosts(2, 8), [(PAPER if ok else M64, 4.0 if good else 8.0)])
    elif kind == "storage":
        storage(path, [("seq", "write", 1.0), ("seq", "read", 2.0 if good else 1.0)],
                fs_type="ext4" if ok else "xfs")
    elif kind == "ceiling":
        membw(path, {"pass": 320.0, "fail": 160.0, "nc": 45.0}[case])
    elif kind == "gemm":
        gemm(path, [("tf32", 8192, 100.0 if good else 50.0), ("fp16", 8192, 200.0)],
             gpu_model=A100 if ok else "NVIDIA H100 80GB HBM3")
    elif kind == "pcie":
        pcie(path, [("alone", "0", "pinned", "d2h", 25.0 if good else 10.0)],
             speed="16.0 GT/s PCIe" if ok else "8.0 GT/s PCIe", gbps=31.5 if ok else 15.75)
    elif kind == "ddp":
        ddp(path, "hfreduce", 32, 0.13 if good else 0.3, batch=50 if ok else 25)
    elif kind == "model":
        generic(path, "model", "cost",
                {"cluster": ["Fire-Flyer 2", "DGX-A100, 3-layer"],
                 "node_price_ratio": [0.6 if good else 0.4, 1.0]},
                options={"baseline": "DGX-A100, 3-layer" if ok else "PCIe A100, 3-layer"},
                model="cost")
    elif kind == "graysort":
        generic(path, "graysort", "graysort", {"throughput": [3.7 if good else 1.0]},
                storage_nodes=25 if ok else 10, data_tib=110.5)
    elif kind == "fleet":
        generic(path, "fleet", "fleet", {"share": [42.0 if good else 10.0]},
                gpu_xid_errors_per_year=12970 if ok else 5000)
    return str(path)


@pytest.mark.parametrize("case", ["pass", "fail", "nc"])
@pytest.mark.parametrize("kind", sorted(RAW_REFS))
def test_raw_kind(tmp_path, kind, case):
    _, refs = compare.load_reference(raw_ref_file(tmp_path, kind))
    path = build_raw(tmp_path / f"{kind}-{case}.h5", kind, case)
    rows, uncovered = raw_rows(path, refs)
    assert not uncovered, f"{kind} {case}: not covered"
    row = rows[f"K.{kind}"]
    want = {"pass": PASS, "fail": FAIL, "nc": NC}[case]
    assert row.status == want, (row.status, row.measured, row.detail)
    if case == "nc":
        assert RAW_NC_REASON[kind] in row.detail, row.detail
        assert row.ratio is None
    else:
        assert row.measured is not None and row.ratio == pytest.approx(
            row.measured / RAW_REFS[kind]["value"])
    if kind in ("model", "ceiling") and case != "nc":
        table = "\n".join(compare.table_lines([row]))
        assert "(model)" in table


def test_raw_kind_exit_status(tmp_path):
    ref = raw_ref_file(tmp_path, "collective")
    for case, rc in (("pass", 0), ("fail", 1), ("nc", 0)):
        path = build_raw(tmp_path / f"cli-{case}.h5", "collective", case)
        out = ffbench("compare", path, "--reference", ref)
        assert out.returncode == rc, (case, out.stdout, out.stderr)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("K.collective")][0]
        assert {"pass": "PASS", "fail": "FAIL", "nc": "not comparable"}[case] in line
        if case == "nc":
            assert "nodes 4 vs 2" in line and "(4)" in line


def test_generic_kind_reads_runs_of_that_kind_only(tmp_path):
    """A fleet run does not cover a graysort reference, and vice versa."""
    _, refs = compare.load_reference(raw_ref_file(tmp_path, "graysort"))
    path = build_raw(tmp_path / "fleet.h5", "fleet", "pass")
    rows, uncovered = raw_rows(path, refs)
    assert uncovered == {"K.graysort"} and not rows


# ---- loader refusals ----------------------------------------------------------------------------

TWIN_OK = {"id": "t", "kind": "normalised", "metric": "hfreduce_memory_efficiency",
           "value": 0.6015, "unit": "1", "paper": {"value": 8.0, "limit": 13.3},
           "denominator_source": "host_membw", "quantity": "q", "source": "s"}
RAW_OK = {"id": "a", "kind": "collective", "metric": "busbw", "value": 8.0, "unit": "GB/s",
          "match": {"backend": "hfreduce"}, "quantity": "q", "source": "s"}


def _with(base, **kw):
    d = json.loads(json.dumps(base))
    for k, v in kw.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


REFUSALS = [
    ("unknown metric", [_with(RAW_OK, metric="speed")], "'references[0].metric'",
     "is not a collective metric"),
    ("unit", [_with(RAW_OK, unit="MB/s")], "'references[0].unit'", "'GB/s'"),
    ("no denominator_source", [_with(TWIN_OK, denominator_source=None)],
     "'references[0].denominator_source'", "missing"),
    ("wrong denominator_source", [_with(TWIN_OK, denominator_source="link_rate")],
     "'references[0].denominator_source'", "host_membw"),
    ("twin value", [_with(TWIN_OK, value=0.9)], "'references[0].value'",
     "paper.value / paper.limit"),
    ("twin_of missing", [RAW_OK, _with(TWIN_OK, twin_of=["nope"])], "'t.twin_of'", "'nope'"),
    ("bound not a number", [_with(RAW_OK, conditions={"size": {"min": "abc"}})],
     "'references[0].conditions.size.min'", "abc"),
]


@pytest.fixture(scope="module")
def small_results(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "r.h5"
    coll(path, "hfreduce", ["vm"] * 2, [(2048, 0.5), (M64, 3.0)], gpu=False, cpu=EPYC)
    return str(path)


@pytest.mark.parametrize("name,entries,key,text", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_loader_refuses(tmp_path, small_results, name, entries, key, text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"name": "bad", "references": entries}))
    with pytest.raises(UsageError):
        compare.load_reference(str(bad))
    out = ffbench("compare", small_results, "--reference", str(bad))
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1, out.stderr
    assert key in err[0] and text in err[0], err[0]
    assert "Traceback" not in out.stderr


def test_loader_accepts_size_bounds_and_matches(tmp_path, small_results):
    ref = tmp_path / "sizes.yaml"
    ref.write_text("name: sizes\nreferences:\n"
                   "  - {id: s, quantity: q, source: s, kind: collective, metric: busbw,\n"
                   "     value: 0.5, unit: GB/s, lower: -0.2, match: {backend: hfreduce},\n"
                   "     conditions: {size: {min: 1K, max: 4K}}}\n")
    _, refs = compare.load_reference(str(ref))
    assert refs[0].conditions["size"] == {"min": 1024, "max": 4096}
    rows, _ = raw_rows(small_results, refs)
    assert rows["s"].status == PASS and rows["s"].measured == pytest.approx(0.5)
    out = ffbench("compare", small_results, "--reference", str(ref))
    assert out.returncode == 0, out.stdout + out.stderr


def test_scalar_size_condition_with_suffix(tmp_path):
    path = tmp_path / "r.h5"
    coll(path, "hfreduce", ["vm"] * 2, [(4 << 20, 3.0)], gpu=False)
    ref = tmp_path / "s.yaml"
    ref.write_text("references:\n  - {id: s, kind: collective, metric: busbw, value: 3.0,\n"
                   "     unit: GB/s, lower: -0.2, match: {backend: hfreduce},\n"
                   "     conditions: {size: 4M}}\n")
    _, refs = compare.load_reference(str(ref))
    rows, _ = raw_rows(path, refs)
    assert rows["s"].status == PASS, rows["s"].detail


# ---- normalised twins: PASS, FAIL, not measured (with the reason) -------------------------------

def host_hf(path, busbw, size=M64, hosts=("vm",) * 4, cpu=EPYC, traffic=24.0, **kw):
    coll(path, "hfreduce", list(hosts), [(size, busbw)], gpu=False, cpu=cpu,
         hfreduce_memory_traffic_per_node=traffic, **kw)


@pytest.mark.parametrize("case", ["pass", "fail", "no_membw", "small"])
def test_twin_hfreduce_memory_efficiency(tmp_path, case):
    """R5.eff: algbw / (membw add 45 GB/s / 24 S) against 0.6015, at least 80 % of it."""
    path = tmp_path / "r.h5"
    ceiling = 45.0 / 24
    eff = {"pass": 0.6, "fail": 0.3, "no_membw": 0.6, "small": 0.6}[case]
    host_hf(path, eff * ceiling * 1.5, size=(1 << 20) if case == "small" else M64)  # busbw
    if case != "no_membw":
        membw(path, 45.0)
    v = twin(path, "R5.eff")
    if case in ("pass", "fail"):
        assert v.status == (PASS if case == "pass" else FAIL)
        assert v.measured == pytest.approx(eff) and v.ratio == pytest.approx(eff / 0.6015)
        assert v.paper == pytest.approx(0.6015) and not v.proxy
        assert "45.0 GB/s host memory" in v.detail
    else:
        assert v.status == NM and v.measured is None
        assert ("membw_bench" if case == "no_membw" else "size 1 MiB vs >= 16 MiB") in v.reason


@pytest.mark.parametrize("case", ["pass", "fail", "no_nccl", "other_point"])
def test_twin_hfreduce_nccl_ratio(tmp_path, case):
    """R3.ratio: HFReduce / NCCL busbw at the same point against 1.837, at least 80 %."""
    path = tmp_path / "r.h5"
    hosts = node_hosts(2, 8)
    coll(path, "hfreduce", hosts, [(PAPER, 8.0 if case != "fail" else 4.0)])
    if case != "no_nccl":
        coll(path, "nccl", hosts, [(PAPER if case != "other_point" else M64, 4.0)])
    v = twin(path, "R3.ratio")
    if case in ("pass", "fail"):
        assert v.status == (PASS if case == "pass" else FAIL)
        assert v.measured == pytest.approx(2.0 if case == "pass" else 1.0)
        assert not v.proxy
    else:
        assert v.status == NM
        assert ("no NCCL run" if case == "no_nccl" else "never ran the same point") in v.reason


@pytest.mark.parametrize("case", ["pass", "fail", "no_mpi"])
def test_twin_hfreduce_mpi_ratio_is_a_labelled_proxy(tmp_path, case):
    """R3.proxy: HFReduce / best MPI busbw stands in for R3 and says so."""
    path = tmp_path / "r.h5"
    host_hf(path, 3.0 if case != "fail" else 1.5)
    if case != "no_mpi":
        coll(path, "mpi", ["vm"] * 4, [(M64, 1.5)], gpu=False, label="")
        coll(path, "mpi", ["vm"] * 4, [(M64, 1.0)], gpu=False,
             env={"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"})
    rows = verdict.verdicts(one_machine_runs(path), ff2_refs())
    v = {r.ref_id: r for r in rows}["R3.proxy"]
    if case == "no_mpi":
        assert v.status == NM and "no MPI run" in v.reason
        return
    assert v.status == (PASS if case == "pass" else FAIL)
    assert v.measured == pytest.approx(2.0 if case == "pass" else 1.0)   # the best MPI: 1.5
    assert v.proxy is True and "proxy" in v.detail
    line = [ln for ln in verdict.verdict_lines(rows) if ln.startswith(v.capability[:20])][0]
    assert "(proxy" in line and v.status in line
    md = [ln for ln in verdict.verdict_lines(rows, markdown=True) if v.capability in ln][0]
    assert "(proxy" in md
    assert "(1 by proxy)" in verdict.summary([v])


@pytest.mark.parametrize("case", ["pass", "fail", "scale", "one_count"])
def test_twin_busbw_retention(tmp_path, case):
    """R1.ret.x2: busbw at 4 nodes / at 2 nodes against 0.9914, at least 90 %."""
    path = tmp_path / "r.h5"
    coll(path, "hfreduce", node_hosts(2, 8), [(PAPER, 8.0)])
    if case != "one_count":
        n = 3 if case == "scale" else 4
        coll(path, "hfreduce", node_hosts(n, 8), [(PAPER, 7.9 if case != "fail" else 4.0)])
    v = twin(path, "R1.ret.x2")
    if case in ("pass", "fail"):
        assert v.status == (PASS if case == "pass" else FAIL)
        assert v.measured == pytest.approx((7.9 if case == "pass" else 4.0) / 8.0)
        assert "2 -> 4 nodes" in v.reason
    else:
        assert v.status == NM
        assert ("scale 1.5 vs 2" if case == "scale" else "two or more multi-node counts") \
            in v.reason


@pytest.mark.parametrize("case", ["pass_attr", "fail_attr", "pass_env", "fail_env", "no_rate"])
def test_twin_link_efficiency(tmp_path, case):
    """R1.link: HFReduce algbw at 2 nodes / (link rate / 8 / the tree's 1 S), against 0.64."""
    path = tmp_path / "r.h5"
    extra, env, bound = {}, {}, None
    if case.endswith("attr"):
        extra = {"link_rate_gbit": 200.0, "link_rate_source": "sysfs mlx5_0 port 1: 200 Gb/sec"}
        bound = 25.0
    elif case.endswith("env"):
        env = {"FFB_EMU_LINK_RATE": "1gbit"}
        bound = 0.125
    else:
        extra = {"link_rate_source": "none found (no FFB_EMU_LINK_RATE, no active InfiniBand "
                                     "port)"}
    eff = 0.64 if case.startswith("pass") else 0.3
    n = 16
    algbw = eff * (bound or 1.0)
    coll(path, "hfreduce", node_hosts(2, 8), [(PAPER, algbw * 2 * (n - 1) / n)], env=env,
         **extra)
    v = twin(path, "R1.link")
    if case == "no_rate":
        assert v.status == NM and "none found" in v.reason
        return
    assert v.status == (PASS if case.startswith("pass") else FAIL)
    assert v.measured == pytest.approx(eff)
    assert ("FFB_EMU_LINK_RATE=1gbit" if case.endswith("env") else "200 Gb/s") in v.reason


@pytest.mark.parametrize("case", ["pass_fail", "no_gemm", "unknown_gpu", "small_n"])
def test_twin_gemm_peak_efficiency(tmp_path, case):
    """R7.eff.*: TFLOPS / the dense peak in gpu-peaks.yaml (A100 PCIe: 156 TF32, 312 FP16)."""
    path = tmp_path / "r.h5"
    model = "NVIDIA Quadro X9000" if case == "unknown_gpu" else A100
    n = 1024 if case == "small_n" else 8192
    if case == "no_gemm":
        pcie(path, [("alone", "0", "pinned", "d2h", 27.0)])
    else:
        gemm(path, [("tf32", n, 107.0), ("fp16", n, 100.0)], gpu_model=model)
    tf, fp = twin(path, "R7.eff.tf32"), twin(path, "R7.eff.fp16")
    if case == "pass_fail":
        assert tf.status == PASS and tf.measured == pytest.approx(107 / 156)
        assert fp.status == FAIL and fp.measured == pytest.approx(100 / 312)
        assert "A100 PCIe" in tf.reason and "tf32 N=8192" in tf.reason
        return
    for v in (tf, fp):
        assert v.status == NM
        assert {"no_gemm": "no gemm_bench run", "unknown_gpu": "gpu-peaks.yaml",
                "small_n": "n 1024 vs >= 2048"}[case] in v.reason, v.reason


@pytest.mark.parametrize("case", ["pass", "fail", "no_pcie", "no_root_port"])
def test_twin_pcie_link_efficiency(tmp_path, case):
    """R6.eff.d2h: pinned D2H / 31.5 GB/s against 0.857; R6.eff.rootport: two GPUs on a port."""
    path = tmp_path / "r.h5"
    if case == "no_pcie":
        gemm(path, [("tf32", 8192, 107.0)])
    else:
        rows = [("alone", "0", "pinned", "d2h", 27.0 if case != "fail" else 15.0)]
        if case != "no_root_port":
            rows.append(("root port 0000:12:01.1", "5,6", "pinned", "d2h",
                         37.0 if case == "pass" else 20.0))
        pcie(path, rows)
    d2h, port = twin(path, "R6.eff.d2h"), twin(path, "R6.eff.rootport")
    if case in ("pass", "fail"):
        want = PASS if case == "pass" else FAIL
        assert d2h.status == want and port.status == want
        assert d2h.measured == pytest.approx((27.0 if case == "pass" else 15.0) / 31.5)
        assert port.measured == pytest.approx((37.0 if case == "pass" else 20.0) / 31.5)
    elif case == "no_pcie":
        assert d2h.status == NM and "no pcie_bench run" in d2h.reason
    else:
        assert d2h.status == PASS
        assert port.status == NM and "scenario root port" in port.reason


@pytest.mark.parametrize("case", ["pass", "fail", "scale", "no_ddp"])
def test_twin_weak_scaling_efficiency(tmp_path, case):
    """R9.ws.x2: step time at 32 / at 64 ranks against 0.9774, at least 90 %."""
    path = tmp_path / "r.h5"
    if case == "no_ddp":
        gemm(path, [("tf32", 8192, 107.0)])
    else:
        ddp(path, "hfreduce", 32, 0.13)
        ddp(path, "hfreduce", 48 if case == "scale" else 64, 0.3 if case == "fail" else 0.133)
    v = twin(path, "R9.ws.x2")
    if case in ("pass", "fail"):
        assert v.status == (PASS if case == "pass" else FAIL)
        assert v.measured == pytest.approx(0.13 / (0.133 if case == "pass" else 0.3))
        assert "32 -> 64 ranks" in v.reason and not v.proxy
    else:
        assert v.status == NM
        assert ("scale 1.5 vs 2" if case == "scale" else "ddp_bench") in v.reason


def test_twin_weak_scaling_proxy_r10(tmp_path):
    """R10.ws.x2: HFReduce DDP stands in for HaiScale FSDP, and the verdict says proxy."""
    path = tmp_path / "r.h5"
    ddp(path, "hfreduce", 16, 0.57, model="gpt2-medium", batch=32, cond={"context": 256})
    ddp(path, "hfreduce", 32, 0.58, model="gpt2-medium", batch=32, cond={"context": 256})
    v = twin(path, "R10.ws.x2")
    assert v.status == PASS and v.proxy is True and "HaiScale" in v.detail


@pytest.mark.parametrize("case", ["pass", "fail", "no_fio", "write_only"])
def test_twin_storage_tool_ratio(tmp_path, case):
    """R13.eff: storage_bench sequential read / fio on the same directory against 0.889."""
    path = tmp_path / "r.h5"
    if case == "no_fio":
        storage(path, [("seq", "read", 2.0)])
    elif case == "write_only":
        crosscheck(path, [("seq_write_direct", 1.9, 2.0)])
    else:
        crosscheck(path, [("seq_write_direct", 1.9, 2.0),
                          ("seq_read_direct", 1.9 if case == "pass" else 1.0, 2.0)])
    v = twin(path, "R13.eff")
    if case in ("pass", "fail"):
        assert v.status == (PASS if case == "pass" else FAIL)
        assert v.measured == pytest.approx(0.95 if case == "pass" else 0.5)
        assert "seq_read_direct" in v.reason
    else:
        assert v.status == NM
        assert ("fio" if case == "no_fio" else "workload seq, phase read") in v.reason


def test_every_normalised_metric_is_tested():
    from ffbench.analysis import twins
    here = open(os.path.abspath(__file__), encoding="utf-8").read()
    for metric in twins.METRICS:
        assert f"def test_twin_{metric}" in here or f"test_twin_{metric}_" in here, metric
    used = {r.metric for r in ff2_refs() if r.is_twin}
    assert used == set(twins.METRICS)


# ---- machines ---------------------------------------------------------------------------------

def test_two_machines_in_a_merged_file(tmp_path):
    a, b, merged = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "merged.h5"
    host_hf(a, 0.6 * 45 / 24 * 1.5, cpu="AMD EPYC")
    membw(a, 45.0, cpu="AMD EPYC")
    host_hf(b, 0.6 * 45 / 24 * 1.5, cpu="Intel Xeon", date=DAY2)  # not merge's duplicate
    merge.merge_files(str(merged), [str(a), str(b)])
    runs = results.load_runs([str(merged)])
    ms = machines.group(runs)
    assert sorted(m.cpu for m in ms) == ["AMD EPYC", "Intel Xeon"]
    by_cpu = {m.cpu: {v.ref_id: v for v in verdict.verdicts(m.runs, ff2_refs())} for m in ms}
    assert by_cpu["AMD EPYC"]["R5.eff"].status == PASS
    intel = by_cpu["Intel Xeon"]["R5.eff"]
    assert intel.status == NM and "membw_bench" in intel.reason
    out = ffbench("compare", str(merged))
    assert out.returncode == 0, out.stdout + out.stderr
    heads = [ln for ln in out.stdout.splitlines() if ln.startswith("== ")]
    assert len(heads) == 2 and all(h.startswith("== vm (") for h in heads), heads
    assert any("AMD EPYC" in h for h in heads) and any("Intel Xeon" in h for h in heads)
    intel_sec = out.stdout.split([h for h in heads if "Intel" in h][0])[1].split("\n== ")[0]
    assert re.search(rf"not measured \(no membw_bench run[^\n]*\n?[^\n]*{_cap('R5.eff')}",
                     intel_sec), intel_sec


# ---- results-file mode: hardware or software ---------------------------------------------------

B_HF, B_MPI = 3.0, 1.5


@pytest.fixture()
def old_file(tmp_path):
    old = tmp_path / "old.h5"
    membw(old, 45.0, hosts=["old-host"], cpu=EPYC)
    host_hf(old, B_HF, hosts=["old-host"] * 4)
    coll(old, "mpi", ["old-host"] * 4, [(M64, B_MPI)], gpu=False)
    return str(old)


def _new(tmp_path, bw, scale):
    new = tmp_path / "new.h5"
    membw(new, bw, hosts=["new-host"], cpu=XEON)
    host_hf(new, B_HF * scale, hosts=["new-host"] * 4, cpu=XEON)
    coll(new, "mpi", ["new-host"] * 4, [(M64, B_MPI * scale)], gpu=False, cpu=XEON)
    return str(new)


def _cap(ref_id):
    """The start of a twin's capability as the text table shows it."""
    return re.escape(ff2_ref(ref_id).capability[:30])


def _paired_lines(stdout):
    return [ln for ln in stdout.splitlines() if ln.startswith("run ")]


def test_results_file_mode_hardware(tmp_path, old_file):
    new = _new(tmp_path, 12.5, 12.5 / 45)
    out = ffbench("compare", new, "--reference", old_file)
    lines = _paired_lines(out.stdout)
    fails = [ln for ln in lines if " FAIL " in ln]
    assert len(fails) == 2, out.stdout
    assert all("hardware" in ln and "host memory bandwidth 12.5 vs 45" in ln for ln in fails)
    assert "of 2 FAIL row(s): 2 show a hardware difference, 0 a software regression" in out.stdout
    assert out.returncode == 0, out.stdout + out.stderr
    # the twins, the old machine playing the paper: as efficient on this hardware
    twins_part = out.stdout.split("normalised twins")[1]
    assert re.search(rf"^{_cap('R5.eff')}.*PASS", twins_part, re.M), twins_part


def test_results_file_mode_software(tmp_path, old_file):
    new = _new(tmp_path, 45.0, 0.5)
    out = ffbench("compare", new, "--reference", old_file)
    fails = [ln for ln in _paired_lines(out.stdout) if " FAIL " in ln]
    assert len(fails) == 2 and all("software" in ln for ln in fails), out.stdout
    assert "of 2 FAIL row(s): 0 show a hardware difference, 2 a software regression" in out.stdout
    assert out.returncode == 1, out.stdout + out.stderr
    twins_part = out.stdout.split("normalised twins")[1]
    assert re.search(rf"^{_cap('R5.eff')}.*FAIL", twins_part, re.M), twins_part


def test_diagnose_summary_direct(tmp_path, old_file):
    new = _new(tmp_path, 12.5, 12.5 / 45)
    nr, orr = results.load_runs([new]), results.load_runs([old_file])
    rows, _ = compare.compare_files(nr, orr, -0.2, None, 1 << 20, "out-of-place")
    verdict.diagnose(rows, nr, orr)
    assert rows and all(r.status == FAIL and r.shows.startswith("hardware") for r in rows)
    assert verdict.diagnosis_summary(rows).startswith(
        f"of {len(rows)} FAIL row(s): {len(rows)} show a hardware difference")


# ---- the committed H100 results ----------------------------------------------------------------

def test_committed_h100_decides_gpu_twins():
    runs = results.load_runs([H100_H5])
    groups = verdict.machine_verdicts(runs, ff2_refs())
    rows = {v.ref_id: v for _, vs in groups for v in vs}
    for ref_id in ("R7.eff.tf32", "R7.eff.fp16", "R6.eff.d2h"):
        assert rows[ref_id].status in (PASS, FAIL), (ref_id, rows[ref_id].reason)
        assert rows[ref_id].measured is not None and 0 < rows[ref_id].measured < 1.5
    assert "H100" in rows["R7.eff.tf32"].reason


# ---- the text table fits ----------------------------------------------------------------------

def typical_one_host(path):
    """What `make bench` (configs/sweeps/local.yaml) leaves on one host: MPI default and pinned
    ring at 2 and 4 ranks, HFReduce on the node and on 1-rank pseudo-nodes, 1K..256M by 4,
    membw_bench, the fio cross-check, DDP with emulated compute at 1, 2 and 4 ranks."""
    sizes = [1 << k for k in range(10, 29, 2)]
    membw(path, 45.0)
    for n in (2, 4):
        hs = ["vm"] * n
        coll(path, "mpi", hs, [(s, 0.5 + s / (256 << 20)) for s in sizes], gpu=False)
        coll(path, "mpi", hs, [(s, 0.4 + s / (256 << 20)) for s in sizes], gpu=False,
             env={"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"})
        coll(path, "hfreduce", hs, [(s, 0.3 + 1.2 * s / (256 << 20), p) for s in sizes
                                    for p in ("out-of-place", "in-place")], gpu=False,
             hfreduce_memory_traffic_per_node=6.0 * n, hfreduce_nodes=1)
        coll(path, "hfreduce", hs, [(s, 0.2 + s / (256 << 20)) for s in sizes], gpu=False,
             hfreduce_memory_traffic_per_node=6.0, hfreduce_nodes=n, label="")
    crosscheck(path, [("seq_write_direct", 1.9, 2.0), ("seq_read_direct", 1.8, 2.0)])
    for model, cond in (("vgg16", {"image_size": 224}), ("gpt2-medium", {"context": 256})):
        for n, t in ((1, 0.10), (2, 0.105), (4, 0.11)):
            ddp(path, "hfreduce", n, t, model=model, batch=50 if model == "vgg16" else 32,
                cond=cond, host="vm")
    return str(path)


def test_verdict_lines_fit_120_columns(tmp_path):
    path = typical_one_host(tmp_path / "one-host.h5")
    for p in (path, H100_H5):
        runs = results.load_runs([p])
        groups = verdict.machine_verdicts(runs, ff2_refs())
        assert len(groups) == 1, [m.name for m, _ in groups]
        lines = verdict.verdict_lines(groups[0][1])
        assert len(lines) <= 20, "\n".join(lines)
        assert all(len(ln) <= 120 for ln in lines), \
            "\n".join(ln for ln in lines if len(ln) > 120)
        assert any(re.search(r"\s(PASS|FAIL)\s", ln) for ln in lines)
    rows = {v.ref_id: v for v in groups[0][1]}   # the H100: GEMM and PCIe decided
    assert rows["R7.eff.tf32"].status in (PASS, FAIL)
    text = verdict_lines_of(path)
    for ref_id in ("R5.eff", "R3.proxy", "R13.eff", "R9.ws.x2", "R9.ws.x4"):
        assert re.search(rf"^{_cap(ref_id)}.*\s(PASS|FAIL)\s", text, re.M), (ref_id, text)


def verdict_lines_of(path):
    runs = results.load_runs([str(path)])
    return "\n".join(ln for _m, rows in verdict.machine_verdicts(runs, ff2_refs())
                     for ln in verdict.verdict_lines(rows))


def test_not_measured_line_with_long_reason_fits(tmp_path):
    path = tmp_path / "r.h5"
    membw(path, 45.0)
    coll(path, "hfreduce", ["vm"] * 4, [(1 << 20, 1.0, "in-place", "half")], gpu=False,
         hfreduce_memory_traffic_per_node=6.0, hfreduce_nodes=4)
    coll(path, "hfreduce", ["vm"] * 4, [(1 << 20, 1.0, "in-place", "half")], gpu=False,
         hfreduce_memory_traffic_per_node=6.0, hfreduce_nodes=2)
    lines = verdict_lines_of(path).splitlines()
    assert any("measured only under other conditions" in ln for ln in lines)
    assert all(len(ln) <= 120 for ln in lines), [ln for ln in lines if len(ln) > 120]


def test_ratio_reason_when_nccl_ran_on_one_rank(tmp_path):
    path = tmp_path / "r.h5"
    coll(path, "hfreduce", ["vm"] * 2, [(M64, 5.0)], gpu_model="NVIDIA H100 80GB HBM3")
    coll(path, "nccl", ["vm"], [(M64, 0.0)], gpu_model="NVIDIA H100 80GB HBM3")
    v = twin(path, "R3.ratio")
    assert v.status == NM
    assert "no NCCL run" not in v.reason, v.reason


def test_retention_on_pseudo_nodes(tmp_path):
    path = tmp_path / "r.h5"
    for n, b in ((2, 1.0), (4, 0.99)):
        coll(path, "hfreduce", ["vm"] * n, [(M64, b)], gpu=False, hfreduce_nodes=n,
             hfreduce_ranks_per_node_option=1)
    v = twin(path, "R1.ret.x2")
    assert v.status == PASS, v.reason
    assert "pseudo-nodes" in v.reason
