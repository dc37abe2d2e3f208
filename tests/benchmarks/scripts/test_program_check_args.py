"""The non-collective programs on the one program frame (ffb::run_program): every value check runs
in validate(), so `--check-args` refuses a bad value with exit 2 and one line naming the flag, and
accepts good options silently, without a GPU, an MPI launch or a measurement. The GPU programs are
built only with CUDA; where they are missing their cases skip."""
import os
import subprocess

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("FFB_BIN") or os.path.join(ROOT, "build", "bin")
CRASH_MARKS = ("Traceback", "terminate called", "core dumped", "Aborted", "MPI_ABORT",
               "Segmentation fault")


def run(name, args):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               FFB_ROOT=ROOT)
    return subprocess.run([path, *args], capture_output=True, text=True, errors="replace",
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


BAD = [
    ("gemm_bench", ["--sizes", "8"], "--sizes 8"),
    ("gemm_bench", ["--sizes", ","], "--sizes/--types"),
    ("gemm_bench", ["--types", "int4"], "--types int4"),
    ("gemm_bench", ["-n", "0"], "-n >= 1"),
    ("pcie_bench", ["--bytes", "1K"], "--bytes 1K"),
    ("pcie_bench", ["--memory", "shared"], "--memory shared"),
    ("pcie_bench", ["--devices", "x"], "--devices x"),
    ("pcie_bench", ["-w", "-1"], "-w >= 0"),
    ("interference_bench", ["--backends", "gloo"], "--backends gloo"),
    ("interference_bench", ["--gemm-type", "fp64"], "--gemm-type fp64"),
    ("interference_bench", ["--gemm-n", "100"], "--gemm-n"),
    ("interference_bench", ["-n", "1"], "-n >= 2"),
    ("harness_overhead_bench", ["-r", "0"], "-r/--rounds 0"),
    ("ddp_bench", ["--steps", "0"], "--steps 0"),
]


@pytest.mark.parametrize("name,args,needle", BAD, ids=[f"{b[0]}{' '.join(b[1])}" for b in BAD])
def test_check_args_refuses_bad_values(name, args, needle):
    res = run(name, [*args, "--check-args"])
    text = res.stdout + res.stderr
    assert res.returncode == 2, f"exit {res.returncode}\n{text}"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"{name}: error: ") and needle in lines[0], lines[0]
    for mark in CRASH_MARKS:
        assert mark not in text, text


GOOD = [
    ("gemm_bench", ["--sizes", "512,1024", "--types", "tf32,bf16", "-w", "0", "-n", "1"]),
    ("pcie_bench", ["-b", "32M", "--devices", "0,1", "--memory", "pinned", "--no-groups"]),
    ("interference_bench", ["-b", "8M", "--backends", "hfreduce", "--gemm-n", "1024"]),
    ("harness_overhead_bench", ["-n", "10", "-r", "2"]),
]


@pytest.mark.parametrize("name,args", GOOD, ids=[g[0] for g in GOOD])
def test_check_args_accepts_good_values_silently(name, args):
    res = run(name, [*args, "--check-args"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "" and res.stderr == "", res.stdout + res.stderr
