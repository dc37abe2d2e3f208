"""`ffbench merge`: runs copied whole, duplicates skipped, OUT untouched when an input is bad."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from ffbenchlib import h5io, merge  # noqa: E402
from ffbenchlib.cli import UsageError  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")


def make(path, label, n=1):
    for i in range(n):
        attrs = h5io.provenance("fake_bench", "collective", ["fake", label, str(i)], label=label)
        h5io.append_run(str(path), attrs, {
            "collective": {"size": ([1024, 2048], "B"), "busbw": ([1.0, 2.0], "GB/s"),
                           "iter_time_max": (np.ones((2, 3)), "us")},
            "ranks": {"rank": ([0, 1], "1"), "pid": ([100 + i, 200 + i], "1"),
                      "host": (["a", "b"], "1")}})


def test_merge_copies_and_dedups(tmp_path):
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "out.h5"
    make(a, "x@0123456789ab", 2)
    make(b, "y@ba9876543210", 1)
    added, skipped = merge.merge_files(str(out), [str(a), str(b)])
    assert (added, skipped) == (3, 0)
    added, skipped = merge.merge_files(str(out), [str(a), str(b)])
    assert (added, skipped) == (0, 3)
    runs = h5io.read_runs(str(out))
    assert [r.id for r in runs] == ["000000", "000001", "000002"]
    assert [r.attrs["label"] for r in runs] == ["x@0123456789ab"] * 2 + ["y@ba9876543210"]
    assert runs[0].tables["collective"]["iter_time_max"].shape == (2, 3)
    assert runs[0].units["collective"]["busbw"] == "GB/s"
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "ffbench-results" and int(f.attrs["schema_version"]) == 1


def test_bad_input_leaves_output_untouched(tmp_path):
    out, good = tmp_path / "out.h5", tmp_path / "good.h5"
    make(good, "g@0123456789ab")
    merge.merge_files(str(out), [str(good)])
    before = out.read_bytes()
    alien = tmp_path / "alien.h5"
    with h5py.File(alien, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(UsageError, match="not an ffbench results file"):
        merge.merge_files(str(out), [str(good), str(alien)])
    assert out.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(UsageError, match="not an HDF5 file"):
        merge.merge_files(str(out), [str(text)])
    with pytest.raises(UsageError, match="no such results file"):
        merge.merge_files(str(out), [str(tmp_path / "missing.h5")])
    with pytest.raises(UsageError, match="output file itself"):
        merge.merge_files(str(out), [str(out)])


def test_merge_cli_with_folder(tmp_path):
    d = tmp_path / "jobs"
    d.mkdir()
    make(d / "job-1.h5", "a@0123456789ab")
    make(d / "job-2.h5", "b@0123456789ac")
    out = tmp_path / "all.h5"
    res = subprocess.run([sys.executable, FFBENCH, "merge", str(out), str(d)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "2 run(s) from 2 file(s) added" in res.stdout
    res = subprocess.run([sys.executable, FFBENCH, "merge", str(out), str(d / "job-1.h5")],
                         capture_output=True, text=True, timeout=60)
    assert "0 run(s)" in res.stdout and "1 already there" in res.stdout
    res = subprocess.run([sys.executable, FFBENCH, "merge", str(out), str(tmp_path / "nope.h5")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
