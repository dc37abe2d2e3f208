"""`ffbench merge`: runs copied whole, duplicates skipped, OUT untouched when an input is bad."""
import os
import subprocess

import h5py
import numpy as np
import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.data import h5io  # noqa: E402
from ffbench.data import merge
from ffbench.errors import UsageError  # noqa: E402

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
    res = subprocess.run([FFBENCH, "merge", str(out), str(d)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "2 run(s) from 2 file(s) added" in res.stdout
    res = subprocess.run([FFBENCH, "merge", str(out), str(d / "job-1.h5")],
                         capture_output=True, text=True, timeout=60)
    assert "0 run(s)" in res.stdout and "1 already there" in res.stdout
    res = subprocess.run([FFBENCH, "merge", str(out), str(tmp_path / "nope.h5")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


def crosscheck_file(path):
    """Two storage_bench runs and the fio-crosscheck run that refers to them by id."""
    ids = []
    for label in ("crosscheck:seq:0", "crosscheck:seq:1"):
        attrs = h5io.provenance("storage_bench", "storage", ["sb", label], label=label)
        ids.append(h5io.append_run(str(path), attrs, {"storage_phases": {"bw": ([1.0], "GB/s")}}))
    attrs = h5io.provenance("fio-crosscheck", "crosscheck", ["cc"], label="cc")
    h5io.append_run(str(path), attrs, {"crosscheck": {
        "case": (["seq_write", "seq_read"], "1"),
        "storage_bench_run_ids": ([",".join(ids), ids[1]], "1")}})
    return ids


def referenced_labels(path):
    runs = {r.id: r for r in h5io.read_runs(str(path))}
    cc = [r for r in runs.values() if r.attrs["kind"] == "crosscheck"][0]
    return [[runs[i].attrs["label"] for i in cell.split(",") if i]
            for cell in cc.tables["crosscheck"]["storage_bench_run_ids"]]


def test_merge_keeps_ids_or_rewrites_every_reference(tmp_path):
    src, out = tmp_path / "cc.h5", tmp_path / "out.h5"
    crosscheck_file(src)
    want = [["crosscheck:seq:0", "crosscheck:seq:1"], ["crosscheck:seq:1"]]
    assert referenced_labels(src) == want
    # Into a new file: every id stays what it was, the references with it.
    fresh = tmp_path / "fresh.h5"
    assert merge.merge_files(str(fresh), [str(src)]) == (3, 0)
    assert [r.id for r in h5io.read_runs(str(fresh))] == ["000000", "000001", "000002"]
    assert referenced_labels(fresh) == want
    # Into a file whose ids are taken: new ids, and the crosscheck column follows them.
    make(out, "other@0123456789ab", 2)
    assert merge.merge_files(str(out), [str(src)]) == (3, 0)
    ids = [r.id for r in h5io.read_runs(str(out))]
    assert ids == ["000000", "000001", "000002", "000003", "000004"]
    assert referenced_labels(out) == want
    cc = [r for r in h5io.read_runs(str(out)) if r.attrs["kind"] == "crosscheck"][0]
    assert list(cc.tables["crosscheck"]["storage_bench_run_ids"]) == ["000002,000003", "000003"]
    # Merging again adds nothing; a run filtered out is dropped from the references.
    assert merge.merge_files(str(out), [str(src)]) == (0, 3)
    part = tmp_path / "part.h5"
    make(part, "first@0123456789ab", 1)
    merge.merge_files(str(part), [str(src)],
                      select=lambda g: merge._decode(g.attrs["label"]) != "crosscheck:seq:0")
    assert referenced_labels(part) == [["crosscheck:seq:1"], ["crosscheck:seq:1"]]


def test_merge_reads_and_writes_index_files(tmp_path):
    a, out = tmp_path / "a.h5", tmp_path / "out.h5"
    make(a, "x@0123456789ab", 3)  # three appends: a is an index with segments
    assert h5py.File(a, "r").attrs["layout"] == "index"
    make(out, "y@ba9876543210", 2)
    seg_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("out.h5.runs-"))
    before = {p.name: p.read_bytes() for p in seg_dir.iterdir()}
    assert merge.merge_files(str(out), [str(a)]) == (3, 0)
    # The earlier segments of OUT are not rewritten: the three runs went to one new segment.
    assert {p.name: p.read_bytes() for p in seg_dir.iterdir() if p.name in before} == before
    assert sorted(set(os.listdir(seg_dir)) - set(before)) == ["000002-000004.h5"]
    runs = h5io.read_runs(str(out))
    assert [r.attrs["label"] for r in runs] == ["y@ba9876543210"] * 2 + ["x@0123456789ab"] * 3
    assert runs[2].tables["collective"]["iter_time_max"].shape == (2, 3)


def test_compact_folds_segments_and_keeps_ids(tmp_path):
    path = tmp_path / "r.h5"
    make(path, "x@0123456789ab", 4)
    before = [(r.id, r.attrs["label"], list(r.tables["ranks"]["pid"])) for r in h5io.read_runs(str(path))]
    res = subprocess.run([FFBENCH, "merge", "--compact", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "4 run(s) folded into one file" in res.stdout
    assert os.listdir(tmp_path) == ["r.h5"]
    with h5py.File(path, "r") as f:
        assert "layout" not in f.attrs and sorted(f["runs"]) == ["000000", "000001", "000002", "000003"]
    assert [(r.id, r.attrs["label"], list(r.tables["ranks"]["pid"]))
            for r in h5io.read_runs(str(path))] == before
    res = subprocess.run([FFBENCH, "merge", "--compact", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "already one file" in res.stdout
    make(path, "y@0123456789ab", 1)  # and it grows again as an index
    assert [r.id for r in h5io.read_runs(str(path))][-1] == "000004"
