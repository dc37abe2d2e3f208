"""`ffbench run`: points, skips with reasons, failures, resume after a killed sweep, dry runs.

Most tests use a fake program (a Python script that writes an ffbench run with h5io, optionally
sleeping or failing) so they run without the C++ build; one test runs the real
mpi_allreduce_bench under mpirun when it is built.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import pytest


from ffbench.data import h5io  # noqa: E402
from ffbench.data.results import complete_keys, run_index  # noqa: E402
from conftest import BIN, FFBENCH, ROOT, ffbench


FAKE = f"""#!{sys.executable}
# Fake benchmark: --sleep S, --exit N (after writing), --skip (exit 77), --busbw X.
import sys, time
from ffbench.data import h5io
args = sys.argv[1:]
def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default
if "--check-args" in args:  # ffbench run asks every program first (no output, no results)
    if "--no-such-flag" in args:
        sys.stderr.write("fake_bench: error: The following argument was not expected: "
                         "--no-such-flag (see --help)\\n")
        sys.exit(2)
    sys.exit(0)
time.sleep(float(opt("--sleep", 0)))
if "--fail-usage" in args:  # refused at run time only, then Open MPI's closing banner
    sys.stderr.write("fake_bench: error: --fail-usage: refused once running\\n")
    print("-" * 74)
    print("Primary job  terminated normally, but 1 process returned")
    print("a non-zero exit code. Per user-direction, the job has been aborted.")
    print("-" * 74)
    sys.exit(2)
if "--skip" in args:
    print("fake_bench: no GPU on this host, skipping")
    sys.exit(77)
attrs = h5io.provenance("fake_bench", "collective", ["fake_bench"] + args, label=opt("--label", ""))
attrs.update(backend="fake", collective="allreduce")
status = int(opt("--exit", 0))
if status:
    attrs["status"] = "failed"
    print("fake_bench: validation failed on rank 0")
bw = float(opt("--busbw", 1.0))
h5io.append_run(opt("--output"), attrs, {{"collective": {{
    "size": ([1024, 2048], "B"), "busbw": ([bw / 2, bw], "GB/s"), "algbw": ([bw / 2, bw], "GB/s"),
    "placement": (["out-of-place", "out-of-place"], "1"), "type": (["float", "float"], "1"),
    "redop": (["sum", "sum"], "1")}}}})
sys.exit(status)
"""


@pytest.fixture()
def fakebin(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    p = d / "fake_bench"
    p.write_text(FAKE)
    p.chmod(0o755)
    return str(d)


def _procs_with(text):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


def write(tmp_path, text, name="sweep.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


SWEEP = """
name: t
compare: false
probes:
  - {name: a, program: fake_bench, mpi: false, options: {busbw: 2}}
  - {name: b, program: fake_bench, mpi: false, options: {busbw: 3, sleep: %s}}
  - {name: c, program: fake_bench, mpi: false, options: {busbw: 4}}
"""


def test_run_skip_fail_and_resume(tmp_path, fakebin):
    cfg = write(tmp_path, """
name: t
compare: false
probes:
  - {name: ok, program: fake_bench, mpi: false}
  - {name: gpu, program: fake_bench, mpi: false, options: {skip: true}}
  - {name: bad, program: fake_bench, mpi: false, options: {exit: 3}}
  - {name: missing, program: no_such_bench, mpi: false}
  - {name: other, program: fake_bench, mpi: false, launchers: [slurm], options: {busbw: 9}}
""")
    out = str(tmp_path / "r.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin)
    text = res.stdout
    assert res.returncode == 1, text + res.stderr  # one point failed
    assert "ok.r1: running" in text and "complete in" in text
    assert "skipped in" in text and ": fake_bench: no GPU on this host, skipping" in text
    assert "failed in" in text and "exit status 3: fake_bench: validation failed" in text
    assert "missing.r1: skipped: no_such_bench is not built" in text
    assert "other.r1: skipped: only for --launcher slurm" in text
    assert "1 complete, 0 already in the file, 3 skipped, 1 failed" in text
    idx = run_index(out)
    assert sorted(r["status"] for r in idx) == ["complete", "failed"]  # failed runs are kept
    # Rerun: the complete point is skipped, the failed one runs again.
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin)
    assert "1 point(s) already complete" in res.stdout
    assert "0 complete, 1 already in the file" in res.stdout
    assert len(run_index(out)) == 3
    assert not os.listdir(tmp_path / "tmp" / "r" / "points")


def test_killed_sweep_resumes_without_corruption(tmp_path, fakebin):
    cfg = write(tmp_path, SWEEP % 30)
    out = str(tmp_path / "r.h5")
    env = dict(os.environ)
    env.pop("FFB_BIN", None)
    proc = subprocess.Popen([FFBENCH, "run", cfg, "--output", out, "--bin", fakebin],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(out) and len(run_index(out)) >= 1:
            break
        time.sleep(0.1)
    time.sleep(1.0)  # point b is now sleeping inside the fake program
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # The point in flight dies with the sweep (no orphan keeps running and writing).
    deadline = time.time() + 10
    while time.time() < deadline and _procs_with(fakebin):
        time.sleep(0.1)
    assert not _procs_with(fakebin)
    idx = run_index(out)
    assert [r["label"].split("@")[0] for r in idx] == ["a.r1"]
    with h5py.File(out, "r") as f:  # the file is intact
        assert f.attrs["format"] == "ffbench-results"
    cfg2 = write(tmp_path, SWEEP % 0)  # the same points, except b no longer sleeps
    res = ffbench("run", cfg2, "--output", out, "--bin", fakebin)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 point(s) already complete" in res.stdout
    labels = [r["label"].split("@")[0] for r in run_index(out)]
    assert labels == ["a.r1", "b.r1", "c.r1"]
    assert len(complete_keys(out)) == 3


def test_finished_point_recovered_after_kill(tmp_path, fakebin):
    """A point file a killed sweep had finished but not merged is merged on the next run."""
    cfg = write(tmp_path, SWEEP % 0)
    out = str(tmp_path / "r.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    assert res.returncode == 0
    line = [ln for ln in res.stdout.splitlines() if "fake_bench" in ln and "--label a.r1@" in ln][0]
    # Run point a's command by hand, as if the sweep was killed right after it finished.
    argv = line.split()
    subprocess.run(argv, check=True, timeout=60)
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin)
    assert "1 run(s) recovered from a killed sweep" in res.stdout
    assert "1 point(s) already complete" in res.stdout
    assert len(run_index(out)) == 3


def test_dry_run_prints_commands_and_runs_nothing(tmp_path, fakebin):
    cfg = write(tmp_path, SWEEP % 0)
    out = str(tmp_path / "r.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    assert res.returncode == 0
    assert res.stdout.count("fake_bench") >= 3 and "--label b.r1@" in res.stdout
    assert not os.path.exists(out)
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--only", "^c")
    assert len(run_index(out)) == 1
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    assert "c.r1 (key" in res.stdout and "would be skipped" in res.stdout
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--only", "zzz")
    assert res.returncode == 2 and "--only" in res.stderr
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--only", "^c", "--fresh")
    assert "--fresh: the previous results were moved to" in res.stdout
    assert len(run_index(out)) == 1 and len([f for f in os.listdir(tmp_path) if f.startswith("r.")
                                             and f.endswith(".h5")]) == 2


def test_local_sweep_dry_run_without_programs(tmp_path):
    """make bench's config never crashes on missing programs: each gets a one-line reason."""
    empty = tmp_path / "nobin"
    empty.mkdir()
    res = ffbench("run", os.path.join(ROOT, "configs", "sweeps", "local.yaml"), "--dry-run",
                  "--output", str(tmp_path / "l.h5"), "--bin", str(empty))
    assert res.returncode == 0, res.stderr
    skips = [ln for ln in res.stdout.splitlines() if "would be skipped" in ln]
    assert skips and all("not built" in ln or "no GPU" in ln for ln in skips)


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "mpi_allreduce_bench")),
                    reason="mpi_allreduce_bench not built (FFB_BIN)")
def test_real_mpi_points(tmp_path):
    cfg = write(tmp_path, """
name: real
compare: false
collectives:
  - name: mpi
    program: mpi_allreduce_bench
    ranks: [2, 3]
    sizes: {min: 1K, max: 64K, factor: 8}
    iters: 2
    warmup: 1
    variants:
      - name: default
      - name: ring
        env: {OMPI_MCA_coll_tuned_use_dynamic_rules: 1, OMPI_MCA_coll_tuned_allreduce_algorithm: 4}
""")
    out = str(tmp_path / "real.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", BIN, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 complete" in res.stdout and "peak busbw" in res.stdout and "(measured)" in res.stdout
    runs = h5io.read_runs(out)
    assert sorted(int(r.attrs["nranks"]) for r in runs) == [2, 2, 3, 3]
    ring = [r for r in runs if r.attrs["label"].startswith("mpi.ring")]
    assert all('"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"' in r.attrs["environment"]
               or '"OMPI_MCA_coll_tuned_allreduce_algorithm":"4"' in r.attrs["environment"]
               for r in ring)
    res = ffbench("run", cfg, "--output", out, "--bin", BIN)
    assert "4 point(s) already complete" in res.stdout and len(h5io.read_runs(out)) == 4


CEILING = """
name: c
compare: false
storage:
  dir: tmp
  ceiling: {size: 16M, runs: 1, settle: 0, cases: [seq_write_direct]}
"""


def test_ceiling_skipped_without_fio_or_storage_bench(tmp_path, fakebin):
    cfg = write(tmp_path, CEILING)
    out = str(tmp_path / "r.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "storage.ceiling (key" in res.stdout and "storage_bench is not built" in res.stdout
    (tmp_path / "bin" / "storage_bench").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "storage_bench").chmod(0o755)
    nofio = tmp_path / "nofio"
    nofio.mkdir()
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, env={"PATH": str(nofio)})
    assert res.returncode == 0, res.stdout + res.stderr
    line = [ln for ln in res.stdout.splitlines() if "storage.ceiling" in ln][0]
    assert line.endswith("storage.ceiling: skipped: fio is not installed (apt-get install fio); "
                         "storage.ceiling needs it"), line
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    if shutil.which("fio"):
        assert "scripts/fio-crosscheck --dir '$(mktemp -d)' --size 16M --runs 1 --settle 0 " \
            f"--cases seq_write_direct --storage-bench {fakebin}/storage_bench --output" in res.stdout


@pytest.mark.skipif(not (shutil.which("fio") and os.path.exists(os.path.join(BIN, "storage_bench"))),
                    reason="needs fio and storage_bench (FFB_BIN)")
def test_real_ceiling_point(tmp_path):
    """The ceiling lands in the sweep's results file: storage_bench's runs and one crosscheck run
    labelled with the point's key, so a rerun skips it."""
    cfg = write(tmp_path, CEILING)
    out = str(tmp_path / "c.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", BIN, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 complete" in res.stdout
    runs = h5io.read_runs(out)
    cc = [r for r in runs if r.attrs.get("kind") == "crosscheck"]
    assert len(cc) == 1 and cc[0].attrs["label"].startswith("storage.ceiling@")
    assert list(cc[0].tables["crosscheck"]["case"]) == ["seq_write_direct"]
    assert sum(1 for r in runs if r.attrs.get("program") == "storage_bench") == 2  # warm-up + 1
    assert not os.path.exists(cc[0].attrs["dir"])  # the temporary directory is gone
    res = ffbench("run", cfg, "--output", out, "--bin", BIN)
    assert "1 point(s) already complete" in res.stdout


def test_closing_verdict_is_print_verdict(tmp_path, monkeypatch):
    """A non-dry run ends with verdict.print_verdict([output], reference) and returns its status."""
    import argparse
    from ffbench.analysis import verdict
    from ffbench.commands import run as runmod
    calls = []

    def fake(paths, ref):
        calls.append((paths, ref))
        return 1
    monkeypatch.setattr(verdict, "print_verdict", fake, raising=False)
    out = tmp_path / "r.h5"
    out.write_bytes(b"")
    ref = tmp_path / "ref.yaml"
    ref.write_text("references: []\n")
    args = argparse.Namespace(reference=str(ref), no_compare=False)
    ctx = argparse.Namespace(args=args, sweep=argparse.Namespace(compare=False), output=str(out))
    assert runmod._print_comparison(ctx) == 1
    assert calls == [([str(out)], str(ref))]
    args.no_compare = True
    assert runmod._print_comparison(ctx) == 0 and len(calls) == 1


def test_config_refused_by_the_program_before_anything_runs(tmp_path, fakebin):
    """#7: an option the program lacks is refused at config time, by the program itself, with
    the config key and the program's own line; nothing runs."""
    cfg = write(tmp_path, """
name: t
compare: false
probes:
  - {name: ok, program: fake_bench, mpi: false}
  - {name: bad, program: fake_bench, mpi: false, sweep: {no-such-flag: [1, 2]}}
""")
    out = str(tmp_path / "r.h5")
    for extra in (["--dry-run"], []):
        res = ffbench("run", cfg, "--output", out, "--bin", fakebin, *extra)
        assert res.returncode == 2, res.stdout + res.stderr
        assert res.stderr.strip() == (
            f"ffbench run: {cfg}: key 'probes[1].sweep.no-such-flag': fake_bench: error: The "
            f"following argument was not expected: --no-such-flag (see --help)"), res.stderr
        assert res.stdout == "" and not os.path.exists(out)
    assert not os.path.exists(tmp_path / "tmp" / "r" / "logs")


def test_check_adds_nothing_to_a_good_dry_run_and_warns_once_for_old_builds(tmp_path, fakebin):
    cfg = write(tmp_path, SWEEP % 0)
    out = str(tmp_path / "r.h5")
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    assert res.returncode == 0 and "warning" not in res.stdout, res.stdout + res.stderr
    # A build from before --check-args (the flag is nowhere in the program): one warning line,
    # and the points still run.
    old = tmp_path / "bin" / "old_bench"
    old.write_text(FAKE.replace("--check-args", "--checkargs"))
    old.chmod(0o755)
    cfg = write(tmp_path, SWEEP.replace("fake_bench", "old_bench") % 0, "old.yaml")
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin, "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    warnings = [ln for ln in res.stdout.splitlines() if ln.startswith("warning")]
    assert warnings == ["warning: old_bench has no --check-args (built before it?): its options "
                        "are checked only when the points run"], res.stdout
    res = ffbench("run", cfg, "--output", out, "--bin", fakebin)
    assert res.returncode == 0 and "3 complete" in res.stdout, res.stdout + res.stderr


def test_failed_point_quotes_the_programs_own_line(tmp_path, fakebin):
    """#7: the summary of a failed point is the program's error line, not Open MPI's banner."""
    cfg = write(tmp_path, """
name: t
compare: false
probes:
  - {name: bad, program: fake_bench, mpi: false, options: {fail-usage: true}}
""")
    res = ffbench("run", cfg, "--output", str(tmp_path / "r.h5"), "--bin", fakebin)
    assert res.returncode == 1, res.stdout + res.stderr
    line = [ln for ln in res.stdout.splitlines() if "failed in" in ln][0]
    assert "exit status 2: fake_bench: error: --fail-usage: refused once running (log " in line, \
        line
    assert "Primary job" not in res.stdout and "----" not in line


def test_point_summary_picks_the_program_line(tmp_path):
    from ffbench.launch import common as runmod
    log = tmp_path / "p.log"
    banner = ["-" * 74, "Primary job  terminated normally, but 1 process returned",
              "a non-zero exit code. Per user-direction, the job has been aborted.", "-" * 74]
    log.write_text("\n".join([
        runmod.LOG_HEADER + "mpirun -np 2 x_bench", "# x_bench header", "x_bench: note: fine",
        "x_bench: rank 1: error: hfreduce: timeout", "x_bench: rank 0: error: later"] + banner))
    assert runmod.point_summary(str(log), "x_bench") == "x_bench: rank 1: error: hfreduce: timeout"
    log.write_text("\n".join(["ffbench watchdog: rank 0 waited 3.0 s (-T 3) for x"] + banner))
    assert runmod.point_summary(str(log), "x_bench").startswith("ffbench watchdog: rank 0")
    log.write_text("\n".join(["something else went wrong", "and here"] + banner))
    assert runmod.point_summary(str(log), "x_bench") == "something else went wrong | and here"
    log.write_text("\n".join(["x_bench: skipped: no GPU"] + banner))
    assert runmod.point_summary(str(log), "x_bench", "skipped", 1) == "x_bench: skipped: no GPU"


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "mpi_allreduce_bench")),
                    reason="mpi_allreduce_bench not built (FFB_BIN)")
def test_real_program_refuses_at_config_time_and_quotes_itself_at_run_time(tmp_path):
    """#7 with the real program: options {no-such-flag: 1} and an axis it lacks are refused
    before anything runs; a point that fails only once running (an Open MPI algorithm that does
    not exist) reports mpi_allreduce_bench's own line, not mpirun's banner."""
    for body, key in (("options: {no-such-flag: 1}", "collectives[0].options.no-such-flag"),
                      ("sweep: {threads: [1, 2]}", "collectives[0].sweep.threads")):
        cfg = write(tmp_path, f"name: t\ncompare: false\ncollectives:\n  - program: "
                              f"mpi_allreduce_bench\n    ranks: [2]\n    {body}\n")
        res = ffbench("run", cfg, "--dry-run", "--bin", BIN, "--output", str(tmp_path / "r.h5"))
        assert res.returncode == 2, res.stdout + res.stderr
        assert res.stderr.startswith(f"ffbench run: {cfg}: key '{key}': mpi_allreduce_bench: "
                                     f"error: "), res.stderr
        assert len(res.stderr.splitlines()) == 1, res.stderr
    cfg = write(tmp_path, """
name: t
compare: false
collectives:
  - program: mpi_allreduce_bench
    ranks: [2]
    sizes: 1K
    iters: 1
    warmup: 0
    env: {OMPI_MCA_coll_tuned_use_dynamic_rules: 1, OMPI_MCA_coll_tuned_allreduce_algorithm: 9}
""")
    res = ffbench("run", cfg, "--bin", BIN, "--output", str(tmp_path / "r.h5"), timeout=240)
    assert res.returncode == 1, res.stdout + res.stderr
    line = [ln for ln in res.stdout.splitlines() if "failed in" in ln][0]
    assert "exit status 2: mpi_allreduce_bench: error: coll_tuned_allreduce_algorithm=9" in line
    assert "Primary job" not in res.stdout
