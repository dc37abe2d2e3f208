"""python/ffbench/analysis/ddp.py: weak-scaling rows from ddp_bench results, the plot, the R11/R12
MODEL, the ddp sweeps; and, when ddp_bench is built (FFB_BIN), its HDF5 table end to end."""
import math
import os
import subprocess

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))

from ffbench.analysis import compare, ddp  # noqa: E402
from ffbench.data import config, h5io  # noqa: E402

BIN = os.environ.get("FFB_BIN") or os.path.join(ROOT, "build", "bin")
DDP_BENCH = os.path.join(BIN, "ddp_bench")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(path, ranks, step_times, label="", date="2026-01-01T00:00:00+00:00", backends=None,
             model="vgg16", scale=0.01, gpu=False):
    backends = backends or ["hfreduce", "mpi"]
    attrs = h5io.provenance("ddp_bench", "ddp", ["ddp_bench"], label=label)
    attrs.update(nranks=ranks, nnodes=1, ranks_per_node=str(ranks), date=date, model=model,
                 compute="cublas" if gpu else "emulated", compute_emulated=0 if gpu else 1,
                 emulated_tflops=107.0, emulated_efficiency=1.0, dtype="float",
                 bucket_bytes=262144, first_bucket_bytes=10486, optimizer="none",
                 image_size=224, param_scale=scale, compute_scale=1.0)
    n = len(backends)
    cols = {"model": ([model] * n, "1"), "backend": (backends, "1"),
            "compute": (["cublas" if gpu else "emulated"] * n, "1"),
            "ranks": ([ranks] * n, "count"), "nodes": ([1] * n, "count"),
            "batch_per_gpu": ([50] * n, "count"), "step_time": (step_times, "s"),
            "step_time_p99": ([t * 1.1 for t in step_times], "s"),
            "exposed_comm": ([0.001] * n, "s"), "comm_alone": ([0.01] * n, "s"),
            "comm_overhead": ([0.002] * n, "s"), "overlap": ([0.8] * n, "1"),
            "param_scale": ([scale] * n, "1"), "compute_scale": ([1.0] * n, "1"),
            "wrong": ([0] * n, "count"), "step_times": ([[t] * 3 for t in step_times], "s")}
    dev = [("GPU%d H100" % r) if gpu else "-" for r in range(ranks)]
    h5io.append_run(str(path), attrs, {"ddp": cols, "ranks": {"rank": (list(range(ranks)), "1"),
                                                              "device": (dev, "1")}})


def test_weak_scaling_efficiency_series_and_latest_run(tmp_path):
    f = tmp_path / "r.h5"
    fake_run(f, 1, [0.100, 0.120])
    fake_run(f, 2, [0.110, 0.150])
    fake_run(f, 4, [0.125, 0.200], date="2026-01-01T00:00:00+00:00")
    fake_run(f, 4, [0.120, 0.240], date="2026-02-01T00:00:00+00:00")  # later run wins
    fake_run(f, 2, [0.300], backends=["hfreduce"], scale=1.0)  # another series (scale 1)
    rows = ddp.weak_scaling(str(f))
    hf = [r for r in rows if r["backend"] == "hfreduce" and r["param_scale"] == 0.01]
    assert [r["ranks"] for r in hf] == [1, 2, 4]
    assert [round(r["weak_scaling_efficiency"], 6) for r in hf] == [1.0, round(0.1 / 0.11, 6),
                                                                     round(0.1 / 0.12, 6)]
    mpi = [r for r in rows if r["backend"] == "mpi"]
    assert [r["step_time"] for r in mpi] == [0.12, 0.15, 0.24]
    assert all(r["emulated"] and r["gpus"] == 0 for r in rows)
    lone = [r for r in rows if r["param_scale"] == 1.0]
    assert len(lone) == 1 and lone[0]["weak_scaling_efficiency"] == 1.0
    assert "emulated 107 TFLOPS" in hf[0]["series"] and "scale 0.01" in hf[0]["series"]
    text = ddp.format_rows(rows)
    assert "weak eff" in text and "0.833" in text


def test_gpu_runs_count_gpus(tmp_path):
    f = tmp_path / "g.h5"
    fake_run(f, 8, [0.13], backends=["hfreduce"], gpu=True, scale=1.0)
    (r,) = ddp.weak_scaling(str(f))
    assert r["gpus"] == 8 and not r["emulated"]


def test_paper_points_and_plot(tmp_path):
    pts = ddp.paper_points()
    assert pts["paper VGG16 HFReduce (R9)"] == [(32, 0.13), (64, 0.133), (128, 0.139),
                                                (256, 0.149), (512, 0.15)]
    assert len(pts["paper GPT2-medium HaiScale FSDP (R10)"]) == 4
    f = tmp_path / "r.h5"
    fake_run(f, 1, [0.1, 0.12])
    fake_run(f, 2, [0.11, 0.15])
    pytest.importorskip("matplotlib")
    out = tmp_path / "steps.png"
    ddp.plot_step_time_vs_gpus(ddp.weak_scaling(str(f)), pts, str(out))
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_strong_scaling_model_is_labelled_and_fitted_at_the_smallest_point():
    rows = ddp.paper_strong_scaling_model()
    assert {r["reference"] for r in rows} == {"R11", "R12"}
    assert all(r["label"] == "MODEL" for r in rows)
    for ref in ("R11", "R12"):
        rr = sorted((r for r in rows if r["reference"] == ref), key=lambda r: r["gpus"])
        assert abs(rr[0]["rel_error"]) < 1e-9  # the one fitted parameter
        assert 0 < rr[0]["fitted_efficiency"] <= 1
        # predictions: strong scaling, each within 35 % of the paper (a sanity bound, not a claim)
        assert all(a["model_step_time"] > b["model_step_time"] for a, b in zip(rr, rr[1:]))
        assert all(abs(r["rel_error"]) < 0.35 for r in rr)
        assert all(r["bubble_fraction"] >= 0 and r["allreduce_s"] > 0 for r in rr)


@pytest.mark.parametrize("name", ["ddp-local", "ddp-vgg16-slurm", "ddp-gpt2-slurm"])
def test_ddp_sweeps_parse(name):
    sweep = config.load(os.path.join(ROOT, "configs", "sweeps", f"{name}.yaml"))
    assert sweep.points
    assert all(p.program == "ddp_bench" for p in sweep.points)
    if name == "ddp-vgg16-slurm":
        assert sorted({p.ranks for p in sweep.points}) == [32, 64, 128, 256, 512]
        assert all("--compute" in p.args and "cublas" in p.args for p in sweep.points)
    if name == "ddp-gpt2-slurm":
        assert sorted({p.ranks for p in sweep.points}) == [16, 32, 64, 128]


def _mpirun(np_, *args, timeout=180):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", FFB_ROOT=ROOT)
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(np_), DDP_BENCH, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.skipif(not os.path.exists(DDP_BENCH), reason="ddp_bench not built (FFB_BIN)")
def test_ddp_bench_results_end_to_end(tmp_path):
    out = tmp_path / "ddp.h5"
    common = ["--model", "vgg16", "--scale", "0.002", "--compute-scale", "0.05", "--steps", "3",
              "--warmup", "1", "--comm-steps", "1", "--backend", "hfreduce,none",
              "--output", str(out)]
    for np_ in (1, 2):
        p = _mpirun(np_, *common, "--label", f"ddp-test.r{np_}")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "EMULATED" in p.stdout and "# check: OK" in p.stdout
    runs = h5io.read_runs(str(out), kind="ddp")
    assert len(runs) == 2
    run = runs[0]
    assert run.attrs["model"] == "vgg16" and run.attrs["compute"] == "emulated"
    assert run.attrs["compute_emulated"] == 1 and run.attrs["image_size"] == 224
    t = run.table("ddp")
    assert list(t["backend"]) == ["hfreduce", "none"]
    assert run.units["ddp"]["step_time"] == "s"
    assert t["step_times"].shape == (2, 3)
    assert int(t["wrong"][0]) == 0 and int(t["wrong"][1]) == -1
    b = run.table("ddp_buckets")
    assert set(b["backend"]) == {"hfreduce", "none"}
    rows = ddp.weak_scaling(str(out))
    assert {(r["backend"], r["ranks"]) for r in rows} == {("hfreduce", 1), ("hfreduce", 2),
                                                          ("none", 1), ("none", 2)}
    for r in rows:
        assert r["emulated"] and r["gpus"] == 0 and math.isfinite(r["weak_scaling_efficiency"])
    # configs/reference sees the rows (kind ddp) but never compares emulated steps with R9.
    _data, refs = compare.load_reference(os.path.join(ROOT, "configs", "reference",
                                                      "fire-flyer-2.yaml"))
    cmp_rows, _unc = compare.compare_reference(h5io.read_runs(str(out)),
                                               [r for r in refs if r.id.startswith("R9.hfreduce")])
    assert cmp_rows and all(r.status == compare.NC for r in cmp_rows)
    assert all("gpus 0" in r.detail for r in cmp_rows)
