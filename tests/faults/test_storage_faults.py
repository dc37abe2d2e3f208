"""storage_bench on bad input and under faults: refused names and numbers, a corruption that
--verify must catch, and SIGINT to mpirun while I/O is in flight.

Every case runs real mpirun jobs (1 or 2 ranks, small sizes) with DIR a fresh directory inside a
fresh temporary PARENT that also holds a sibling directory and file. Each case asserts:
- the exit code: 2 for bad input (one line naming the flag and the value), 1 for a failed verify,
  130 for a SIGINT that reaches storage_bench, and Open MPI's mpirun's own 1 for a SIGINT sent to
  mpirun (it answers with SIGCONT + SIGTERM to every rank and exits 1 whatever they return);
- nothing outside DIR changed: every entry of PARENT (files, directories, sizes, mtimes, PARENT's
  own mtime) is as it was, except a results file a case asks for;
- DIR is left as it was (empty): storage_bench removes its job directory (a --keep run keeps
  exactly that directory);
- no /dev/shm entry is left: mpirun runs in a private mount namespace whose /dev/shm is a fresh
  directory (root and unshare(1)), checked to be empty afterwards; elsewhere the shared memory of
  Open MPI goes to a private btl_vader_backing_directory and /dev/shm is compared before and after;
- no traceback or crash report in the output.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

BIN = os.environ.get("FFB_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
BENCH = os.path.join(BIN, "storage_bench")
TIMEOUT_S = 90
FAST = ["--mem-bw", "10"]  # skip the memory-bandwidth probe: these cases are about faults
CRASH = re.compile(r"Traceback|Segmentation fault|core dumped|\*\*\* Process received signal|"
                   r"terminate called|Floating point exception|Aborted")

pytestmark = pytest.mark.skipif(not os.path.exists(BENCH), reason=f"{BENCH} is not built")


def _private_shm_works():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = tempfile.mkdtemp(prefix="sb-faults-shm-probe-")
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            f"mount --bind {probe} /dev/shm && touch /dev/shm/x"],
                           capture_output=True, timeout=20)
        return r.returncode == 0 and os.path.exists(os.path.join(probe, "x"))
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _is_open_mpi():
    if shutil.which("mpirun") is None:
        return False
    r = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, timeout=20)
    return "Open MPI" in r.stdout + r.stderr


PRIVATE_SHM = _private_shm_works()
OPEN_MPI = _is_open_mpi()


def snapshot(root):
    """Every entry under root: relative path -> (kind, size, mtime_ns); root itself as '.'."""
    out = {".": ("d", 0, os.lstat(root).st_mtime_ns)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = "d" if os.path.isdir(p) and not os.path.islink(p) else "l" if os.path.islink(
                p) else "f"
            out[os.path.relpath(p, root)] = (kind, st.st_size if kind == "f" else 0,
                                             st.st_mtime_ns)
    return out


@dataclass
class Job:
    rc: int
    out: str
    err: str
    seconds: float


class Sandbox:
    """PARENT (fresh temp dir) holding DIR (empty), a sibling directory and a sibling file."""

    def __init__(self):
        self.parent = tempfile.mkdtemp(prefix="sb-faults-")
        self.dir = os.path.join(self.parent, "dir")
        os.mkdir(self.dir)
        os.mkdir(os.path.join(self.parent, "sibling"))
        with open(os.path.join(self.parent, "sibling", "keep.txt"), "w") as f:
            f.write("precious")
        with open(os.path.join(self.parent, "neighbour.txt"), "w") as f:
            f.write("precious too")
        self.shm = tempfile.mkdtemp(prefix="sb-faults-shm-")
        self.vader = tempfile.mkdtemp(prefix="sb-faults-vader-")
        self.outdir = tempfile.mkdtemp(prefix="sb-faults-out-")  # results files, outside PARENT
        time.sleep(0.01)  # mtimes below are compared at nanosecond resolution
        self.before = snapshot(self.parent)
        self.dev_shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()

    def close(self):
        for p in (self.parent, self.shm, self.vader, self.outdir):
            shutil.rmtree(p, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.parent, *parts)

    def command(self, ranks, args, mpirun=True):
        launch = [BENCH, *args]
        if mpirun:
            launch = ["mpirun", "-np", str(ranks), "--mca", "btl_vader_backing_directory",
                      self.vader, *launch]
        if not PRIVATE_SHM:
            return launch
        # exec keeps the pid: the Popen pid is mpirun's (or storage_bench's) own.
        quoted = " ".join(shlex.quote(a) for a in launch)
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"mount --bind {shlex.quote(self.shm)} /dev/shm && exec {quoted}"]

    def run(self, ranks, args, interrupt=None, mpirun=True):
        """Runs storage_bench ARGS DIR; interrupt(proc, sandbox) may signal it mid-run."""
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1")
        env.pop("FFB_FAULT", None)
        cmd = self.command(ranks, [*args, *FAST, self.dir], mpirun)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            if interrupt:
                interrupt(proc, self)
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(cmd)} still running after {TIMEOUT_S} s")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything mpirun may have left behind
            except ProcessLookupError:
                pass
            proc.wait()
        return Job(proc.returncode, out, err, time.monotonic() - t0)

    def results(self):
        return os.path.join(self.outdir, "results.h5")

    def assert_clean(self, job):
        """Nothing outside DIR changed, DIR empty, no shared memory left."""
        after = snapshot(self.parent)
        before = dict(self.before)
        # DIR's own mtime moves when the job directory is made and removed inside it.
        before.pop("dir")
        after_dir = after.pop("dir", None)
        assert after_dir is not None and after_dir[0] == "d", "DIR itself is gone"
        left = sorted(k for k in after if k.startswith("dir" + os.sep))
        assert not left, f"left in DIR: {left}\n{job.err}"
        changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                   if before.get(k) != after.get(k)}
        assert not changed, f"outside DIR changed: {changed}\n{job.err}"
        assert not os.listdir(self.vader), f"Open MPI left {os.listdir(self.vader)}"
        if PRIVATE_SHM:
            assert not os.listdir(self.shm), f"/dev/shm entries left: {os.listdir(self.shm)}"
        else:
            new = set(os.listdir("/dev/shm")) - self.dev_shm_before
            time.sleep(1)  # ignore what concurrent jobs create and remove
            new &= set(os.listdir("/dev/shm"))
            assert not new, f"new /dev/shm entries: {sorted(new)}"
        assert not CRASH.search(job.out + job.err), job.out + job.err


@pytest.fixture
def box():
    b = Sandbox()
    yield b
    b.close()


def error_lines(job):
    return [line for line in job.err.splitlines() if line.startswith("storage_bench")]


def assert_refused(job, *needles):
    assert job.rc == 2, f"exit {job.rc}, expected 2\n{job.out}\n{job.err}"
    lines = error_lines(job)
    assert len(lines) == 1, f"expected one error line: {job.err}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    assert not re.search(r"\d{40,}", lines[0]), f"a giant number: {lines[0]}"
    assert len(lines[0]) < 400, lines[0]


# ---- #2: --job-name must be a bare name; nothing is made, written or removed outside DIR ----

JOB_NAMES = ["../escaped", "..", "", "a/b", "x" * 256, "ABS"]


@pytest.mark.parametrize("name", JOB_NAMES, ids=[n[:12] or "empty" for n in JOB_NAMES])
def test_job_name_that_is_not_a_bare_name_is_refused(box, name):
    if name == "ABS":
        name = box.path("abs-target")
    job = box.run(2, ["seq", "-b", "1M", "-t", "256K", "--job-name", name])
    assert_refused(job, "--job-name", "bare directory name")
    assert not os.path.exists(box.path("escaped")) and not os.path.exists(box.path("abs-target"))
    box.assert_clean(job)


def test_job_name_bare_name_runs_inside_dir_and_is_removed(box):
    job = box.run(2, ["seq", "-b", "1M", "-t", "256K", "--verify", "--job-name", "run1"])
    assert job.rc == 0, job.err
    assert os.path.join(box.dir, "run1") in job.out
    box.assert_clean(job)


def test_keep_leaves_exactly_the_job_directory(box):
    job = box.run(1, ["seq", "-b", "1M", "-t", "256K", "--job-name", "kept", "--keep"])
    assert job.rc == 0, job.err
    kept = os.path.join(box.dir, "kept")
    assert os.listdir(box.dir) == ["kept"] and os.listdir(kept) == ["seq.shared"]
    shutil.rmtree(kept)
    box.assert_clean(job)


# ---- #13: numbers: zero, negative, NaN/inf, overflowing, not fitting in memory ----

NUMBERS = [
    (["checkpoint", "--ckpt-size", "0"], "--ckpt-size", "0"),
    (["seq", "-D", "-1"], "--stonewall", "-1"),
    (["kvcache", "--rate", "-1"], "--rate", "-1"),
    (["seq", "--qd", "0"], "--qd", "0"),
    (["seq", "-d", "nan"], "--delay", "nan"),
    (["kvcache", "--zipf", "inf"], "--zipf", "inf"),
    (["checkpoint", "--model-params", "1e300"], "--model-params", "1e300"),
    (["seq", "-b", "0"], "--block", "0"),
    (["seq", "--seed", "-1"], "--seed", "-1"),
    (["seq", "-b", "1000T", "-t", "1M", "-s", "100000"], "--segments", "100000"),
    (["meta", "-w", "2G"], "--file-size", "2G"),
    (["seq", "--qd", "4096", "-t", "2G", "-b", "2G", "--ignore-free-space"], "--qd x --transfer",
     "memory"),
]


@pytest.mark.parametrize("args,flag,value", NUMBERS, ids=[" ".join(n[0]) for n in NUMBERS])
def test_bad_number_is_refused_in_one_line(box, args, flag, value):
    job = box.run(2, args)
    assert_refused(job, flag, value)
    box.assert_clean(job)


# ---- #14: --self-test-corrupt really corrupts, --verify catches it, the run fails ----

def test_self_test_corrupt_without_verify_is_refused(box):
    for args in (["seq", "--self-test-corrupt"], ["kvcache", "--self-test-corrupt"],
                 ["kvcache", "--verify", "--self-test-corrupt", "-D", "1"]):
        job = box.run(2, args)
        assert_refused(job, "--self-test-corrupt")
        assert "verify: 0 errors" not in job.out
    box.assert_clean(job)


CORRUPT = [
    (2, ["seq", "-b", "1M", "-t", "64K", "-F"]),
    (1, ["seq", "-b", "1M", "-t", "64K", "--pattern", "random", "--engine", "io_uring",
         "--qd", "4"]),
    (2, ["loader", "--samples", "64", "--sample-size", "fixed:5000", "--shard-size", "64K"]),
    (2, ["checkpoint", "--ckpt-size", "1M", "--chunk", "128K"]),
    (2, ["kvcache", "--block-size", "64K", "--blocks-per-file", "4", "--blocks-per-rank", "24",
         "--ops", "40", "--rounds", "3"]),
    (2, ["meta", "-n", "10", "-w", "40"]),
]


@pytest.mark.parametrize("ranks,args", CORRUPT, ids=[f"{c[1][0]}-{c[0]}" for c in CORRUPT])
def test_self_test_corruption_is_caught(box, ranks, args):
    results = box.results()
    job = box.run(ranks, [*args, "--verify", "--self-test-corrupt", "--output", results])
    assert job.rc == 1, f"exit {job.rc}, expected 1\n{job.out}\n{job.err}"
    assert "# self-test: " in job.out, job.out
    assert re.search(r"^# VERIFY \S+: \d+ bad block", job.out, re.M), job.out
    assert re.search(r"^# verify: \d+ bad block\(s\) of \d+ checked: FAILED", job.out, re.M)
    assert "verify: 0 errors" not in job.out
    if os.path.exists(results):  # the run record says so too
        h5py = pytest.importorskip("h5py")
        with h5py.File(results, "r") as f:
            statuses = [f["runs"][r].attrs["status"] for r in f["runs"]]
        assert [s.decode() if isinstance(s, bytes) else s for s in statuses] == ["failed"]
    box.assert_clean(job)


def test_verify_line_never_claims_what_was_not_checked(box):
    job = box.run(1, ["seq", "-b", "1M", "-t", "256K"])
    assert job.rc == 0 and "# verify: off" in job.out and "0 errors" not in job.out, job.out
    job = box.run(1, ["seq", "-b", "1M", "-t", "256K", "--verify", "--phases", "write"])
    assert job.rc == 0 and "nothing was checked" in job.out and "0 errors" not in job.out
    job = box.run(1, ["seq", "-b", "1M", "-t", "256K", "--verify"])
    assert job.rc == 0 and "# verify: 0 errors in 4 block(s) checked" in job.out, job.out
    box.assert_clean(job)


# ---- #16: SIGINT while I/O is in flight ----

def signal_when_writing(sig, pattern):
    """Waits until the job directory holds a file matching pattern, then signals the Popen pid."""

    def interrupt(proc, box):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            found = [os.path.join(d, f) for d, _, fs in os.walk(box.dir) for f in fs
                     if re.fullmatch(pattern, f)]
            if found and os.path.getsize(found[0]) > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        with open(f"/proc/{proc.pid}/comm") as f:  # the signal goes to mpirun, not to the ranks
            interrupt.target = f.read().strip()
        time.sleep(0.2)
        os.kill(proc.pid, sig)

    return interrupt


def assert_interrupted(box, job, rc):
    assert job.rc == rc, f"exit {job.rc}, expected {rc}\n{job.out}\n{job.err}"
    assert "interrupted by signal" in job.err and "removed the" in job.err, job.err
    assert "# cleaned up" not in job.out and "# verify:" not in job.out
    assert not os.path.exists(box.results()), "an interrupted run wrote results"
    box.assert_clean(job)


# What reaches the user from mpirun: Open MPI's mpirun turns a SIGINT into SIGCONT + SIGTERM to
# every rank (SIGKILL after odls_base_sigkill_timeout, 1 s) and exits 1 whatever the ranks return
# (its abort path sets the job's exit status before any rank can report one).
MPIRUN_SIGINT_RC = 1 if OPEN_MPI else 130


def test_sigint_to_mpirun_during_a_long_write_cleans_up(box):
    interrupt = signal_when_writing(signal.SIGINT, r"seq\.\d+")
    job = box.run(2, ["seq", "-b", "4G", "-t", "1M", "-F", "--output", box.results()],
                  interrupt=interrupt)
    assert interrupt.target == "mpirun"
    assert_interrupted(box, job, MPIRUN_SIGINT_RC)
    if OPEN_MPI:  # the ranks saw mpirun's SIGTERM, and the line says where the 1 comes from
        assert "signal 15" in job.err and "mpirun itself exits 1" in job.err, job.err


def test_sigint_to_mpirun_during_a_long_pause_cleans_up_at_once(box):
    # A 60 s --interval between checkpoints: the ranks must not sleep through mpirun's SIGTERM
    # (it sends SIGKILL a second later, which would leave the checkpoint behind).
    interrupt = signal_when_writing(signal.SIGINT, r"shard\.\d+")
    job = box.run(2, ["checkpoint", "--ckpt-size", "1M", "--chunk", "256K", "--steps", "3",
                      "--interval", "60"], interrupt=interrupt)
    assert interrupt.target == "mpirun"
    assert_interrupted(box, job, MPIRUN_SIGINT_RC)
    assert job.seconds < 20, f"took {job.seconds:.1f} s"


def test_sigint_to_storage_bench_itself_exits_130(box):
    # Without mpirun (an MPI singleton), or under a launcher that forwards SIGINT, the signal
    # reaches storage_bench: exit 130 = 128 + SIGINT, after the same clean-up.
    interrupt = signal_when_writing(signal.SIGINT, r"seq\.\d+")
    job = box.run(1, ["seq", "-b", "4G", "-t", "1M", "-F", "--output", box.results()],
                  interrupt=interrupt, mpirun=False)
    assert interrupt.target == "storage_bench"
    assert_interrupted(box, job, 130)
    assert "signal 2" in job.err, job.err
