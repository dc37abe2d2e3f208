"""SIGKILL inside a results append, and damaged results files, never lose runs or end in a traceback.

Each kill case stops a writer at a named moment with FFB_FAULT=<point>@0 (common/include/ffb/fault.h;
the points are listed in results/SCHEMA.md, "Crash safety"), not by timing luck: the C++ writer
inside membw_bench (one rank, no mpirun) and the Python writer (h5io.append_run), on a file that
does not exist yet, a single file (the append that makes it an index) and an index. Each asserts:
the writer died of the signal; every earlier run reads back unchanged; `ffbench export` reports
what the killed writer left in one line; the next append (by the other writer) removes it, so no
temporary is left; nothing outside the job directory was touched.

Damaged files (truncated then padded back to size, bytes flipped in the middle, /runs a dataset,
not HDF5, empty, a damaged or missing segment of an index) given to `ffbench report`, `compare`,
`export` and `merge` end with exit status 2 and exactly one stderr line naming the file, never a
traceback; given to membw_bench as --output they are refused with exit status 2, byte-identical.
"""
import json
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BIN = os.environ.get("FFB_BIN", os.path.join(ROOT, "build", "bin"))
MEMBW = os.path.join(BIN, "membw_bench")
FFBENCH = os.path.join(ROOT, "scripts", "ffbench")

from ffbench.data import h5io  # noqa: E402

TIMEOUT_S = 120
MEMBW_ARGS = ["--threads", "1", "--bytes", "64K", "--repetitions", "1"]
PY_APPEND = """
import sys
from ffbench.data import h5io
attrs = h5io.provenance("py_writer", "probe", ["py_writer", sys.argv[2]], label=sys.argv[2])
try:
    h5io.append_run(sys.argv[1], attrs, {{"membw": {{"kernel": (["copy", "add"], "1"),
                                                   "bandwidth": ([1.5, 2.5], "GB/s")}}}})
except h5io.ResultsFileError as exc:
    sys.exit(f"py_writer: error: {{exc}}")
"""

# Moments a writer passes through, by the state of the file it appends to (SCHEMA.md).
MISSING = ["locked", "table", "written", "synced", "renamed"]
SINGLE = ["locked", "converted", "table", "written", "synced", "segment", "indexed", "renamed"]
INDEX = ["locked", "table", "written", "synced", "segment", "indexed", "renamed"]
CASES = [(w, state, m) for w in ("cpp", "py")
         for state, moments in (("missing", MISSING), ("single", SINGLE), ("index", INDEX))
         for m in moments]

pytestmark = pytest.mark.skipif(not os.path.exists(MEMBW), reason=f"{MEMBW} is not built")


def env_with(fault=None):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self", PYTHONDONTWRITEBYTECODE="1")
    env.pop("FFB_FAULT", None)
    if fault:
        env["FFB_FAULT"] = fault
    return env


def append(writer, path, label, cwd, fault=None):
    """One append by the C++ (membw_bench) or the Python writer; returns the CompletedProcess."""
    if writer == "cpp":
        cmd = [MEMBW, *MEMBW_ARGS, "--output", str(path), "--label", label]
    else:
        cmd = [sys.executable, "-c", PY_APPEND.format(scripts=os.path.join(ROOT, "scripts")),
               str(path), label]
    return subprocess.run(cmd, env=env_with(fault), cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def ffbench(*args, cwd=None):
    return subprocess.run([FFBENCH, *map(str, args)], env=env_with(), cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def labels(path):
    h5io._CHECKED.clear()
    return [(r.id, r.attrs["label"]) for r in h5io.read_runs(str(path))]


def everything_under(d):
    out = []
    for root, dirs, files in os.walk(d):
        out += [os.path.relpath(os.path.join(root, n), d) for n in dirs + files]
    return sorted(out)


@pytest.fixture
def job(tmp_path):
    """(job directory, an empty working directory for the writers)."""
    (tmp_path / "job").mkdir()
    (tmp_path / "cwd").mkdir()
    yield tmp_path / "job", tmp_path / "cwd"
    assert sorted(os.listdir(tmp_path)) == ["cwd", "job"], "a writer touched the test directory"
    assert not os.listdir(tmp_path / "cwd"), "a writer wrote into its working directory"


@pytest.mark.parametrize("writer,state,moment", CASES)
def test_sigkill_at_each_append_moment_loses_nothing(job, writer, state, moment):
    jobdir, cwd = job
    out = jobdir / "r.h5"
    earlier = {"missing": 0, "single": 1, "index": 2}[state]
    for i in range(earlier):
        res = append("py" if writer == "cpp" else "cpp", out, f"earlier{i}", cwd)
        assert res.returncode == 0, res.stderr
    before = labels(out) if earlier else []

    fault = f"results.append.{moment}@0"
    res = append(writer, out, "killed", cwd, fault)
    assert res.returncode == -signal.SIGKILL, f"{fault}: rc {res.returncode}\n{res.stderr}"
    committed = moment == "renamed"
    after = labels(out) if os.path.exists(out) else []
    want = before + ([(f"{len(before):06d}", "killed")] if committed else [])
    assert after == want, f"{fault}: {after} != {want}"

    left = h5io.leftovers(str(out))
    if os.path.exists(out):  # ffbench reports what the killed writer left, in one line
        rep = ffbench("export", out, "--json")
        assert rep.returncode == 0, rep.stderr
        lines = [ln for ln in rep.stderr.splitlines() if ln.strip()]
        assert len(lines) == (1 if left else 0), rep.stderr
        if left:
            assert "leftover(s) of killed writers" in lines[0] and str(out) in lines[0]
        assert [r["run"] for r in json.loads(rep.stdout)["runs"]] == [i for i, _ in want]

    nxt = append("py" if writer == "cpp" else "cpp", out, "next", cwd)
    assert nxt.returncode == 0, nxt.stderr
    if left:
        assert "removed" in nxt.stderr and "leftover(s) of killed writers" in nxt.stderr, nxt.stderr
    assert labels(out) == want + [(f"{len(want):06d}", "next")]
    assert not [p for p in everything_under(jobdir) if ".tmp." in p], everything_under(jobdir)
    assert h5io.leftovers(str(out)) == []
    seg_dirs = [p for p in os.listdir(jobdir) if p != "r.h5"]
    assert len(seg_dirs) == (0 if len(want) == 0 else 1), os.listdir(jobdir)


@pytest.mark.parametrize("moment", ["written", "renamed"])
def test_sigkill_during_compaction_loses_nothing(job, moment):
    jobdir, cwd = job
    out = jobdir / "r.h5"
    for i in range(3):
        assert append("py", out, f"run{i}", cwd).returncode == 0
    before = labels(out)
    res = subprocess.run([FFBENCH, "merge", "--compact", str(out)], cwd=cwd,
                         env=env_with(f"results.compact.{moment}"), capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert res.returncode == -signal.SIGKILL, res.stderr
    assert labels(out) == before
    nxt = append("cpp", out, "next", cwd)
    assert nxt.returncode == 0, nxt.stderr
    assert "removed" in nxt.stderr, nxt.stderr
    assert labels(out) == before + [("000003", "next")]
    assert not [p for p in everything_under(jobdir) if ".tmp." in p]
    assert h5io.leftovers(str(out)) == []


# ------------------------------------------------------------------------------ damaged files

def flip_middle(path, n=64):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(mid + n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_and_pad(path):
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
        fh.truncate(size)


def make_damaged(d, kind, cwd):
    """A damaged results file in d; returns (the path to give, the path the message names)."""
    path = d / f"{kind}.h5"
    if kind in ("truncated", "flipped", "segment_flipped", "segment_missing"):
        for i in range(1 if kind in ("truncated", "flipped") else 3):
            assert append("cpp", path, f"run{i}", cwd).returncode == 0
        if kind == "truncated":
            truncate_and_pad(path)
        elif kind == "flipped":
            flip_middle(path)
        else:
            seg_dir = next(p for p in d.iterdir() if p.name.startswith(f"{kind}.h5.runs-"))
            segment = seg_dir / "000001.h5"
            if kind == "segment_missing":
                segment.unlink()
                return path, path
            flip_middle(segment)
            return path, segment
    elif kind == "runs_dataset":
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "ffbench-results"
            f.attrs["schema_version"] = np.int64(1)
            f.create_dataset("runs", data=np.arange(4))
    elif kind == "not_hdf5":
        path.write_text("these are not the results you are looking for\n")
    elif kind == "empty":
        path.write_bytes(b"")
    return path, path


DAMAGE = ["truncated", "flipped", "runs_dataset", "not_hdf5", "empty", "segment_flipped",
          "segment_missing"]
COMMANDS = ["report", "compare", "export", "merge"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_file_is_one_line_and_exit_2(job, kind):
    jobdir, cwd = job
    path, named = make_damaged(jobdir, kind, cwd)
    for command in COMMANDS:
        args = {"report": ["report", path, "--out", jobdir / "report"],
                "compare": ["compare", path],
                "export": ["export", path, "--json"],
                "merge": ["merge", jobdir / "merged.h5", path]}[command]
        res = ffbench(*args, cwd=cwd)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2, f"{command} {kind}: rc {res.returncode}\n{res.stderr}"
        assert "Traceback" not in res.stderr, f"{command} {kind}:\n{res.stderr}"
        assert len(lines) == 1, f"{command} {kind}: {res.stderr}"
        assert str(named) in lines[0], f"{command} {kind}: {lines[0]}"
        assert not (jobdir / "merged.h5").exists()
        assert not (jobdir / "report").exists() or not os.listdir(jobdir / "report")


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_output_is_refused_and_left_alone(job, kind):
    jobdir, cwd = job
    path, named = make_damaged(jobdir, kind, cwd)
    before = {p: (jobdir / p).read_bytes() for p in everything_under(jobdir)
              if (jobdir / p).is_file()}
    res = append("cpp", path, "refused", cwd)
    assert res.returncode == 2, f"{kind}: rc {res.returncode}\n{res.stdout}{res.stderr}"
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"--output {path}" in lines[0] and str(named) in lines[0], res.stderr
    after = {p: (jobdir / p).read_bytes() for p in everything_under(jobdir)
             if (jobdir / p).is_file()}
    assert after == before
    res = append("py", path, "refused", cwd)
    after = {p: (jobdir / p).read_bytes() for p in everything_under(jobdir)
             if (jobdir / p).is_file()}
    if kind == "segment_flipped":
        # The Python writer checks FILE, its seal and that every segment exists, not what is inside
        # the segments (that would cost the whole file): it adds a segment of its own and never
        # writes into the damaged one; every reader still names it.
        assert res.returncode == 0, res.stderr
        assert all(after[p] == data for p, data in before.items() if p != "segment_flipped.h5")
        with pytest.raises(h5io.ResultsFileError, match=str(named)):
            labels(path)
        return
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1 and str(named) in lines[0], res.stderr
    assert after == before
