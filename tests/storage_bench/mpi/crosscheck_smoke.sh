#!/bin/bash
# Smoke test of scripts/fio-crosscheck: tiny sizes, one run, two cases; checks that both tools ran
# and the crosscheck table was stored. Skips (77) without fio or python3 with h5py/numpy.
set -u
root=$1
bench=$2
command -v fio >/dev/null || { echo "SKIP: fio is not installed (apt-get install fio)"; exit 77; }
/usr/bin/python3 -c "import h5py, numpy" 2>/dev/null || { echo "SKIP: /usr/bin/python3 lacks h5py/numpy"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sb-cc-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/data"
"$root/scripts/fio-crosscheck" --dir "$work/data" --size 16M --runs 1 --settle 0 \
  --cases seq_write_direct,rand_read_4k_qd32 --output "$work/cc.h5" --storage-bench "$bench" >"$work/out" 2>&1
rc=$?
cat "$work/out"
[ $rc = 0 ] || { echo "FAIL: fio-crosscheck exit $rc"; exit 1; }
grep -q "rand_read_4k_qd32" "$work/out" || { echo "FAIL: no result row"; exit 1; }
/usr/bin/python3 - "$work/cc.h5" <<'PY' || exit 1
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    kinds = [f["runs"][r].attrs["kind"] for r in f["runs"]]
    kinds = [k.decode() if isinstance(k, bytes) else k for k in kinds]
    assert "crosscheck" in kinds and "storage" in kinds, kinds
    cc = [f["runs"][r] for r in f["runs"] if f["runs"][r].attrs["kind"] in ("crosscheck", b"crosscheck")][0]
    ratio = cc["crosscheck"]["ratio"][:]
    assert len(ratio) == 2 and all(r > 0 for r in ratio), ratio
    paired = cc["crosscheck"]["paired_ratio"][:]
    assert len(paired) == 2 and all(r > 0 for r in paired), paired
print("crosscheck stored:", list(ratio))
PY
[ -z "$(ls -A "$work/data")" ] || { echo "FAIL: left behind: $(ls -A "$work/data")"; exit 1; }
echo PASS
