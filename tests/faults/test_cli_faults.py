"""Bad input to the real programs and to `ffbench run`: exit status 2 and exactly one line on
stderr that names the flag or key and the value, never a traceback, "terminate called", an abort
or a core dump; `--check-args` with good arguments exits 0 without a word.

Rows: #6 (a non-UTF-8 sweep config), #7 (options a program lacks refused at config time by asking
the program; a failed point quotes the program's own line), #11 (harness_overhead_bench reads its
options with the shared parser), #12 (ddp model-file bounds), #13 (numeric options of ddp_bench
and the collective programs), #15 (mpi_allreduce_bench offers only the types its backend reduces),
#17 (small_message_bench).
The programs run as single processes (MPI singletons, no mpirun), as `ffbench run` checks them.
"""
import os
import subprocess

import pytest

BIN = os.environ.get("FFB_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
TIMEOUT_S = 60
CRASH_MARKS = ("Traceback", "terminate called", "core dumped", "Aborted", "MPI_ABORT",
               "Segmentation fault")


def program(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    return path


def env():
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
             OMPI_MCA_rmaps_base_oversubscribe="1", FFB_ROOT=ROOT)
    e.pop("FFB_BIN", None)
    return e


def run(cmd, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                          timeout=TIMEOUT_S, env=env(), stdin=subprocess.DEVNULL, cwd=cwd)


def assert_one_line_usage(res, *needles):
    """Exit 2, one line on stderr containing every needle, no crash marks anywhere."""
    text = res.stdout + res.stderr
    assert res.returncode == 2, f"exit {res.returncode}\n{text}"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines:\n{res.stderr}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    for mark in CRASH_MARKS:
        assert mark not in text, text


# ---- #11: harness_overhead_bench ----

@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "--bogus"),
    (["-n", "0"], "-n/--iters 0"),
    (["--iters", "abc"], "--iters"),
    (["-n", "-5"], "-n/--iters -5"),
    (["-r", "0"], "-r/--rounds 0"),
    (["-T", "nan"], "-T/--timeout nan"),
    (["2000"], "2000"),  # the old positional form is not silently taken
])
def test_harness_overhead_bad_options(args, needle):
    assert_one_line_usage(run([program("harness_overhead_bench"), *args]),
                          "harness_overhead_bench: error:", needle)


# ---- #17: small_message_bench ----

@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "--bogus"),
    (["-b", "0"], "-b/--minbytes 0"),
    (["-e", "2M"], "-e/--maxbytes 2M"),
    (["-b", "64K", "-e", "4"], "-b/--minbytes"),
    (["-b", "4x"], "4x"),
    (["-f", "1"], "-f/--stepfactor 1"),
    (["-d", "int4"], "-d/--datatype 'int4'"),
    (["-d", ","], "-d/--datatype"),
    (["-n", "0"], "-n/--iters 0"),
    (["-w", "-1"], "-w/--warmup_iters -1"),
    (["-r", "0"], "-r/--rounds 0"),
    (["-c", "2"], "-c/--check 2"),
    (["-T", "nan"], "-T/--timeout nan"),
])
@pytest.mark.parametrize("check", [False, True], ids=["run", "check-args"])
def test_small_message_bad_options(args, needle, check):
    extra = ["--check-args"] if check else []
    assert_one_line_usage(run([program("small_message_bench"), *args, *extra]),
                          "small_message_bench: error:", needle)


def test_small_message_bad_output_dir_writes_nothing(tmp_path):
    out = tmp_path / "missing" / "r.h5"
    res = run([program("small_message_bench"), "-d", "float", "-e", "8", "-r", "1",
               "--output", str(out)])
    assert_one_line_usage(res, "--output", str(out))
    assert not out.parent.exists()


# ---- #13 (collective programs) and #15 ----

COLLECTIVE_BAD = [
    (["-n", "0"], "-n/--iters 0"),
    (["-n", "-1"], "-n/--iters -1"),
    (["-n", "abc"], "--iters"),
    (["-n", "100000000"], "-n/--iters 100000000"),
    (["-w", "-1"], "-w/--warmup_iters -1"),
    (["-T", "0"], "-T/--timeout 0"),
    (["-T", "nan"], "-T/--timeout nan"),
    (["-T", "inf"], "-T/--timeout inf"),
    (["-f", "0.5", "-b", "1K", "-e", "1M"], "-f/--stepfactor 0.5"),
    (["-f", "nan"], "-f/--stepfactor nan"),
    (["-b", "2M", "-e", "1M"], "-b/--minbytes 2M"),
    (["-b", "-1"], "-b/--minbytes"),
    (["-b", "1", "-e", "1M", "-f", "1", "-i", "0"], "-i/--stepbytes 0"),
    (["-b", "0", "-e", "1G", "-f", "1", "-i", "1"], "-i/--stepbytes"),
    (["-c", "2"], "-c/--check 2"),
    (["-a", "7"], "-a/--average 7"),
    (["-z", "3"], "-z/--blocking 3"),
    (["-d", "fp8_e4m3"], "-d/--datatype 'fp8_e4m3'"),
    (["-d", "float17"], "-d/--datatype 'float17'"),
    (["-o", "mean"], "-o/--op 'mean'"),
    (["--no-such-flag", "1"], "--no-such-flag"),
    (["--threads", "2"], "--threads"),
]


@pytest.mark.parametrize("args,needle", COLLECTIVE_BAD)
@pytest.mark.parametrize("check", [False, True], ids=["run", "check-args"])
def test_collective_bad_options(args, needle, check):
    extra = ["--check-args"] if check else []
    assert_one_line_usage(run([program("mpi_allreduce_bench"), *args, *extra]),
                          "mpi_allreduce_bench: error:", needle)


def test_mpi_allreduce_offers_only_what_it_reduces():
    bench = program("mpi_allreduce_bench")
    res = run([bench, "--help"])
    assert res.returncode == 0 and "fp8" not in res.stdout, res.stdout
    assert "float|double|half|bfloat16|int32|int64|uint8|int8|uint32|uint64|all" in res.stdout, res.stdout
    res = run([bench, "-d", "fp8_e5m2"])
    assert_one_line_usage(res, "use float, double, half, bfloat16, int32, int64, uint8, int8, uint32, uint64 or all")
    # -d all: the ten types MPI reduces, none refused or skipped at run time.
    res = run([bench, "-d", "all", "-o", "sum", "-b", "8", "-e", "8", "-n", "1", "-w", "0"])
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    assert sorted(r[2] for r in rows) == sorted(
        ["float", "double", "half", "bfloat16", "int32", "int64", "uint8", "int8", "uint32",
         "uint64"]), res.stdout
    assert "fp8" not in res.stdout and "skipped" not in res.stdout, res.stdout


# ---- #12 and #13: ddp_bench ----

MODEL_HEAD = "schema: ffbench-model/1\nname: m\nbatch_per_gpu: 4\nlayers:\n"
BAD_MODELS = [
    ("  - {name: a, params: 10, fwd_flops: 1e300}\n", "layers[0].fwd_flops", "1e300"),
    ("  - {name: a, params: 10, fwd_flops: .nan}\n", "layers[0].fwd_flops", ".nan"),
    ("  - {name: a, params: 10, fwd_flops: .inf}\n", "layers[0].fwd_flops", ".inf"),
    ("  - {name: a, params: 10, fwd_flops: 1, bwd_flops: -1}\n", "layers[0].bwd_flops", "-1"),
    ("  - {name: a, params: -3, fwd_flops: 1}\n", "layers[0].params", "-3"),
    ("  - {name: a, params: 1e15, fwd_flops: 1}\n", "layers[0].params", "1e15"),
    ("  - {name: a, params: 1.5, fwd_flops: 1}\n", "layers[0].params", "1.5"),
    ("  - {name: a, params: 10, gemm: [0, 4, 4]}\n", "layers[0].gemm[0]", "0"),
    ("  - {name: a, params: 10, gemm: [1000000, 1000000, 1000000]}\n", "layers[0].gemm", ""),
    ("  - {name: a, params: 10, gemm: [16, 16, 16, 1e9]}\n", "layers[0].gemm[3]", "1e9"),
    ("  - repeat: 100000000\n    layers:\n      - {name: 'l{i}', params: 1, fwd_flops: 1}\n",
     "layers[0].repeat", "100000000"),
    ("  - repeat: 60000\n    layers:\n      - {name: 'a{i}', params: 1, fwd_flops: 1}\n"
     "      - {name: 'b{i}', params: 1, fwd_flops: 1}\n", "layers[0].repeat", "60000"),
]


@pytest.mark.parametrize("layers,key,value", BAD_MODELS)
@pytest.mark.parametrize("check", [False, True], ids=["run", "check-args"])
def test_ddp_model_file_bounds(tmp_path, layers, key, value, check):
    model = tmp_path / "m.yaml"
    model.write_text(MODEL_HEAD + layers)
    extra = ["--check-args"] if check else []
    res = run([program("ddp_bench"), "--model", str(model), "--compute", "emulated",
               "--backend", "none", *extra])
    assert_one_line_usage(res, "ddp_bench: error:", f"key '{key}'", value)


def test_ddp_model_batch_bound(tmp_path):
    model = tmp_path / "m.yaml"
    model.write_text(MODEL_HEAD.replace("batch_per_gpu: 4", "batch_per_gpu: 0")
                     + "  - {name: a, params: 10, fwd_flops: 1}\n")
    assert_one_line_usage(run([program("ddp_bench"), "--model", str(model)]),
                          "key 'batch_per_gpu'")


DDP_BAD = [
    (["--batch", "-1"], "--batch -1"),
    (["--batch", "2000000"], "--batch 2000000"),
    (["--batch", "x"], "--batch"),
    (["--steps", "0"], "--steps 0"),
    (["--steps", "100000000"], "--steps 100000000"),
    (["--warmup", "-1"], "--warmup -1"),
    (["--comm-steps", "-1"], "--comm-steps -1"),
    (["--tflops", "0"], "--tflops 0"),
    (["--tflops", "nan"], "--tflops nan"),
    (["--tflops", "inf"], "--tflops inf"),
    (["--efficiency", "1.5"], "--efficiency 1.5"),
    (["--scale", "0"], "--scale 0"),
    (["--compute-scale", "-1"], "--compute-scale -1"),
    (["--compute-scale", "inf"], "--compute-scale inf"),
    (["--device-membw", "0"], "--device-membw 0"),
    (["--progress-us", "-1"], "--progress-us -1"),
    (["--hfreduce-timeout", "0"], "--hfreduce-timeout 0"),
    (["--chunk-size", "1"], "--chunk-size 1"),
    (["--depth", "1"], "--depth 1"),
    (["--threads", "0"], "--threads 0"),
    (["--fallback-bytes", "4G"], "--fallback-bytes 4G"),
    (["--ranks-per-node", "-1"], "--ranks-per-node -1"),
    (["--device", "-2"], "--device -2"),
    (["--max-params", "0"], "--max-params 0"),
    (["--bucket-size", "0"], "--bucket-size 0"),
    (["--baseline-step-ms", "inf"], "--baseline-step-ms 'inf'"),
    (["--baseline-step-ms", "gloo=3"], "'gloo'"),
    (["--compute", "gpu"], "--compute 'gpu'"),
    (["--bogus"], "--bogus"),
    (["--tflops", "0.000001", "--compute", "emulated"], "--tflops"),  # a step of years
]


@pytest.mark.parametrize("args,needle", DDP_BAD)
@pytest.mark.parametrize("check", [False, True], ids=["run", "check-args"])
def test_ddp_bad_options(args, needle, check):
    extra = ["--check-args"] if check else []
    res = run([program("ddp_bench"), "--backend", "none", *args, *extra])
    assert_one_line_usage(res, "ddp_bench: error:", needle)


# ---- --check-args with good arguments: exit 0, nothing on stderr ----

@pytest.mark.parametrize("name,args", [
    ("harness_overhead_bench", ["-n", "10", "-r", "2"]),
    ("small_message_bench", ["-b", "8", "-e", "1M", "-f", "4", "-d", "float,fp8", "-r", "3"]),
    ("ddp_bench", ["--model", "vgg16", "--compute", "emulated", "--scale", "0.01",
                   "--backend", "hfreduce,mpi,none", "--ranks-per-node", "2"]),
    ("ddp_bench", ["--model", "llama-13b"]),  # far too big to run here, and valid
    ("mpi_allreduce_bench", ["-b", "1K", "-e", "256M", "-f", "4", "-d", "all", "-o", "all"]),
    ("mpi_allreduce_bench", ["-b", "1T", "-e", "1T"]),  # memory is a run-time question
    ("hfreduce_bench", ["-b", "1K", "-e", "1M", "--ranks-per-node", "1", "--chunk-size", "8K"]),
])
def test_check_args_good_is_silent(name, args):
    res = run([program(name), *args, "--check-args"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == "", res.stderr
    # Nothing, or (collective programs until collective_main tests check_args itself) one line.
    assert len(res.stdout.splitlines()) <= 1, res.stdout
    if name != "mpi_allreduce_bench" and name != "hfreduce_bench":
        assert res.stdout == "", res.stdout


# ---- #6 and #7: ffbench run ----

def ffbench(*args, cwd=None):
    return run([FFBENCH, *args], cwd=cwd)


def test_non_utf8_config_is_one_line(tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("name: t\ndescription: caf\u00e9\nprobes: [{program: membw_bench}]\n"
                    .encode("latin-1"))
    for extra in (["--dry-run"], []):
        res = ffbench("run", str(cfg), "--output", str(tmp_path / "r.h5"), *extra)
        assert_one_line_usage(res, str(cfg), "not UTF-8", "line 2")
    ref = tmp_path / "ref.yaml"
    ref.write_bytes(b"references: []\n# \xff\n")
    good = tmp_path / "good.yaml"
    good.write_text("name: t\nprobes: [{program: membw_bench}]\n")
    res = ffbench("run", str(good), "--dry-run", "--reference", str(ref), "--bin", str(tmp_path),
                  "--output", str(tmp_path / "r.h5"))
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr


@pytest.mark.parametrize("entry,key,needle", [
    ("collectives:\n  - {program: mpi_allreduce_bench, ranks: [2], options: {no-such-flag: 1}}",
     "collectives[0].options.no-such-flag", "--no-such-flag"),
    ("collectives:\n  - {program: mpi_allreduce_bench, ranks: [2], sweep: {threads: [1, 2]}}",
     "collectives[0].sweep.threads", "--threads"),
    ("collectives:\n  - {program: mpi_allreduce_bench, ranks: [2], types: [fp8_e4m3]}",
     "collectives[0].types", "fp8_e4m3"),
    ("collectives:\n  - {program: mpi_allreduce_bench, ranks: [2], variants: [{name: a}, "
     "{name: b, options: {depth: 3}}]}", "collectives[0].variants[1].options.depth", "--depth"),
    ("probes:\n  - {program: ddp_bench, options: {model: vgg16, batch: -1}}",
     "probes[0].options.batch", "--batch -1"),
])
def test_config_refused_by_the_program(tmp_path, entry, key, needle):
    program(entry.split("program: ")[1].split(",")[0])
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"name: t\ncompare: false\n{entry}\n")
    for extra in (["--dry-run"], []):
        res = ffbench("run", str(cfg), "--bin", BIN, "--output", str(tmp_path / "r.h5"), *extra)
        assert_one_line_usage(res, f"{cfg}: key '{key}':", needle)
        assert not (tmp_path / "r.h5").exists()
