"""coverage: which references a sweep's planned points can cover (`ffbench run --dry-run`)."""
import os
import subprocess

import yaml

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.analysis import compare  # noqa: E402
from ffbench.data import config
from ffbench.analysis import coverage

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")

# A raw collective reference (GPU buffers, 2 nodes of 8), two storage references, a twin that
# draws from two kinds of run (host memory bandwidth and HFReduce) and a weak-scaling twin.
REFERENCE = """
schema: ffbench-reference/1
name: crafted
references:
  - id: C1.g16
    quantity: HFReduce allreduce busbw, 16 GPUs
    kind: collective
    metric: busbw
    value: 8.1
    unit: GB/s
    lower: -0.2
    upper: null
    match: {backend: hfreduce, collective: allreduce}
    conditions: {device: gpu, gpus: 16, nodes: 2, ranks_per_node: 8, size: 192937984,
                 type: float, redop: sum, placement: out-of-place}
  - id: S1.read
    quantity: sequential read
    kind: storage
    metric: bw
    value: 6.6
    unit: GB/s
    lower: -0.2
    upper: null
    match: {workload: seq, phase: read}
    conditions: {clients: {max: 8}, measured_later: 3}
  - id: S2.3fs
    quantity: sequential read on 3FS
    kind: storage
    metric: bw
    value: 6.6
    unit: GB/s
    lower: -0.2
    upper: null
    match: {workload: seq, phase: read}
    conditions: {filesystem: {contains: 3fs}}
  - id: T1.eff
    quantity: HFReduce algbw / host-memory ceiling
    kind: normalised
    metric: hfreduce_memory_efficiency
    paper: {value: 8.0, limit: 13.3, unit: GB/s, text: "8 of 13.3 GB/s"}
    value: 0.6015
    unit: "1"
    lower: -0.2
    upper: null
    denominator_source: host_membw
    twin_of: [C1.g16]
    needs: [{program: membw_bench}, {backend: hfreduce}]
    match: {backend: hfreduce}
    conditions: {placement: out-of-place, type: float, redop: sum, size: {min: 16M},
                 pseudo_nodes: false}
  - id: W1.x2
    quantity: VGG16 weak scaling x2
    kind: normalised
    metric: weak_scaling_efficiency
    paper: {value: 0.13, limit: 0.133, unit: s, text: "0.13 / 0.133 s"}
    value: 0.9774
    unit: "1"
    lower: -0.1
    upper: null
    denominator_source: same_cluster
    needs: [{program: ddp_bench, model: vgg16}]
    match: {model: vgg16, backend: hfreduce}
    conditions: {scale: 2}
"""


def refs(tmp_path):
    path = tmp_path / "ref.yaml"
    path.write_text(REFERENCE)
    return compare.load_reference(str(path))[1]


def sweep(text, tmp_path):
    path = str(tmp_path / "sweep.yaml")
    with open(path, "w") as fh:
        fh.write(text)
    return config.parse(path, yaml.safe_load(text))


def plan(text, tmp_path):
    s = sweep(text, tmp_path)
    return coverage.plan(s.points, refs(tmp_path)), s


HF_GPU = """
collectives:
  - {name: hf, program: %s, nodes: [2], ranks_per_node: 8, sizes: [184M], requires: [gpu]}
"""


def test_raw_collective_needs_the_gpu_program(tmp_path):
    cov, _ = plan(HF_GPU % "hfreduce_gpu_bench", tmp_path)
    assert cov.coverable == ["C1.g16"] and cov.per_point["hf.n2x8"] == ["C1.g16"]
    # hfreduce_bench reduces host buffers: device host, gpus 0; the same shape covers nothing.
    cov, _ = plan(HF_GPU % "hfreduce_bench", tmp_path)
    assert "C1.g16" not in cov.coverable
    assert cov.total == 5


def test_point_rows_of_a_collective(tmp_path):
    s = sweep("""
collectives:
  - {name: hf, program: hfreduce_bench, ranks: [2], sizes: {min: 1K, max: 16K, factor: 4},
     types: [float, half]}
""", tmp_path)
    rows = coverage.point_rows(s.points[0])
    assert {r["size"] for r in rows} == {1024, 4096, 16384}
    assert {r["type"] for r in rows} == {"float", "half"}
    assert {r["placement"] for r in rows} == {"out-of-place", "in-place"}
    r = rows[0]
    assert (r["backend"], r["kind"], r["device"], r["gpus"], r["nodes"], r["ranks"]) == \
        ("hfreduce", "collective", "host", 0, 1, 2)
    assert config.planned_sizes((1 << 20, 4 << 20, None, 1 << 20)) == [1 << 20, 2 << 20, 3 << 20,
                                                                         4 << 20]


def test_storage_phases_and_unknown_conditions(tmp_path):
    cov, _ = plan("""
storage:
  workloads:
    - {workload: seq, name: both}
    - {workload: seq, name: wonly, options: {phases: write}}
    - loader
""", tmp_path)
    # measured_later is not known before the run: assumed met; clients (ranks) is known.
    assert cov.per_point["both.r1"] == ["S1.read"]
    assert cov.per_point["wonly.r1"] == [] and cov.per_point["storage.loader.r1"] == []
    fs = coverage.filesystem(None)
    if fs and "3fs" not in fs:  # the temporary directory's file system is known: not 3FS
        assert "S2.3fs" not in cov.coverable
    assert coverage.storage_phases("loader", {"epochs": 2}) == ("build", "epoch0", "epoch1")
    assert coverage.storage_phases("checkpoint", {"no-restore": True}) == ("save",)


def test_twin_needs_every_kind_of_run(tmp_path):
    hf = """
collectives:
  - {name: hf, program: hfreduce_bench, ranks: [2], sizes: {min: 1M, max: 64M, factor: 4}}
"""
    cov, _ = plan(hf, tmp_path)
    assert "T1.eff" not in cov.coverable and cov.per_point["hf.r2"] == []
    cov, _ = plan(hf + "probes:\n  - {name: membw, program: membw_bench}\n", tmp_path)
    assert "T1.eff" in cov.coverable
    assert cov.per_point["hf.r2"] == ["T1.eff"] and cov.per_point["membw.r1"] == ["T1.eff"]
    # Too small (the twin wants >= 16M) or on pseudo-nodes: no contribution.
    cov, _ = plan("""
collectives:
  - {name: small, program: hfreduce_bench, ranks: [2], sizes: {min: 1K, max: 1M, factor: 4}}
  - {name: rpn1, program: hfreduce_bench, ranks: [2], sizes: [64M], options: {ranks-per-node: 1}}
probes:
  - {name: membw, program: membw_bench}
""", tmp_path)
    assert "T1.eff" not in cov.coverable


def test_weak_scaling_twin_needs_the_scale(tmp_path):
    ddp = """
probes:
  - {name: vgg, program: ddp_bench, ranks: %s, options: {model: vgg16, compute: emulated,
     backend: [hfreduce, mpi]}}
"""
    cov, _ = plan(ddp % "[1, 2]", tmp_path)
    assert cov.coverable == ["W1.x2"]
    assert cov.per_point == {"vgg.r1": ["W1.x2"], "vgg.r2": ["W1.x2"]}  # r1 is the baseline
    cov, _ = plan(ddp % "[1, 4]", tmp_path)
    assert cov.coverable == []
    cov, _ = plan((ddp % "[1, 2]").replace("hfreduce, mpi", "mpi"), tmp_path)
    assert cov.coverable == []  # the twin's match reads the HFReduce rows


def test_storage_ceiling_rows(tmp_path):
    s = sweep("""
storage:
  ceiling: {cases: [seq_read_direct, rand_read_4k_qd32]}
""", tmp_path)
    rows = coverage.point_rows(s.points[0])
    cc = [r for r in rows if r["kind"] == "crosscheck"]
    assert [(r["case"], r["phase"]) for r in cc] == [("seq_read_direct", "read"),
                                                      ("rand_read_4k_qd32", "randread")]
    assert {r["program"] for r in rows if r["kind"] == "storage"} == {"storage_bench"}


def ffbench(*args):
    env = dict(os.environ)
    env.pop("FFB_BIN", None)
    return subprocess.run([FFBENCH] + list(args), capture_output=True, text=True,
                          timeout=120, env=env)


def test_dry_run_lists_coverage_and_warns(tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text(REFERENCE)
    empty = tmp_path / "nobin"
    empty.mkdir()
    cfg = tmp_path / "hf.yaml"
    cfg.write_text("collectives:\n  - {name: hf, program: hfreduce_bench, ranks: [2], "
                   "sizes: [64M]}\nprobes:\n  - {name: membw, program: membw_bench}\n")
    res = ffbench("run", str(cfg), "--dry-run", "--reference", str(ref), "--bin", str(empty),
                  "--output", str(tmp_path / "r.h5"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "  covers: T1.eff" in lines
    assert lines[-1] == f"# coverable: T1.eff (1 of 5 references in {ref})"
    assert "would be skipped" in res.stdout  # the existing lines stay
    cfg.write_text("probes:\n  - {name: membw, program: membw_bench}\n")
    res = ffbench("run", str(cfg), "--dry-run", "--reference", str(ref), "--bin", str(empty),
                  "--output", str(tmp_path / "r.h5"))
    assert res.returncode == 0, res.stderr
    assert "  covers: -" in res.stdout
    assert res.stdout.splitlines()[-1] == (f"warning: {cfg} can cover none of the 5 references "
                                           f"in {ref}")
    cfg.write_text("compare: false\nprobes:\n  - {name: membw, program: membw_bench}\n")
    res = ffbench("run", str(cfg), "--dry-run", "--bin", str(empty), "--output",
                  str(tmp_path / "r.h5"))
    assert "covers" not in res.stdout and "warning" not in res.stdout


def test_shipped_sweeps_against_the_paper():
    """fire-flyer-fig7 runs the GPU programs, so it can cover R1 and R2; make bench's sweep
    covers something on any host."""
    ref = os.path.join(ROOT, "configs", "reference", "fire-flyer-2.yaml")
    _, paper = compare.load_reference(ref)
    fig7 = config.load(os.path.join(ROOT, "configs", "sweeps", "fire-flyer-fig7.yaml"))
    cov = coverage.plan(fig7.points, paper)
    assert {"R1.g16", "R1.g1280", "R2.g16"} <= set(cov.coverable)
    local = config.load(os.path.join(ROOT, "configs", "sweeps", "local.yaml"))
    cov = coverage.plan(local.points, paper)
    assert cov.coverable and not any(i.startswith(("R1.g", "R2.g")) for i in cov.coverable)
