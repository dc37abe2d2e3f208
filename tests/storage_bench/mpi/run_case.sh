#!/bin/bash
# One storage_bench test case under mpirun, in its own temporary directory, checking that nothing is
# left behind. Usage:
#   run_case.sh CASE NRANKS [storage_bench args...]
# CASE:
#   ok          exit 0, "verify: 0 errors in N block(s) checked" (or "nothing was read back" when
#               the case reads no data), results file has the storage tables, DIR left empty
#   corrupt     exit 1 with a VERIFY report (used with --self-test-corrupt), DIR left empty
#   enospc      (root) a size-limited tmpfs runs out of space: exit 1, "out of space", tmpfs empty
#   refuse      planned volume larger than free space: exit 2, "does not fit", nothing created
#   missing     DIR does not exist: exit 2, "does not exist"
#   notdir      DIR is a file: exit 2, "not a directory"
#   readonly    DIR not writable (root: read-only tmpfs; else chmod 555): exit 2, "not writable"
#   signal      SIGTERM to mpirun mid-run: non-zero exit, "interrupted", DIR left empty
#   usage       bad flag: exit 2, one line naming the flag
# Environment: FFB_STORAGE_BENCH (the binary), FFB_MPIEXEC, FFB_MPIEXEC_FLAGS (space separated).
set -u
case_name=$1
nranks=$2
shift 2
bench=${FFB_STORAGE_BENCH:?set FFB_STORAGE_BENCH}
mpiexec=${FFB_MPIEXEC:-mpirun}
read -r -a mpiflags <<<"${FFB_MPIEXEC_FLAGS:---oversubscribe --bind-to none}"

work=$(mktemp -d "${TMPDIR:-/tmp}/sb-case-XXXXXX")
mounted=""
cleanup() {
  [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
  chmod -R u+w "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
data=$work/data
mkdir -p "$data"

fail() {
  echo "FAIL [$case_name]: $*"
  echo "---- stdout"; cat "$work/out" 2>/dev/null
  echo "---- stderr"; cat "$work/err" 2>/dev/null
  exit 1
}
skip() {
  echo "SKIP [$case_name]: $*"
  exit 77
}
run() {  # run storage_bench under mpirun with the case's args and DIR ($1)
  local dir=$1
  shift
  "$mpiexec" "${mpiflags[@]}" -n "$nranks" "$bench" "$@" "$dir" >"$work/out" 2>"$work/err"
}
expect_empty() {
  local left
  left=$(find "$1" -mindepth 1 2>/dev/null | head -5)
  [ -z "$left" ] || fail "left behind in $1: $left"
}
need_root() {
  [ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs (run the fault tests as root, as CI does)"
}

case $case_name in
ok)
  run "$data" "$@" --verify --output "$work/results.h5"
  rc=$?
  [ $rc = 0 ] || fail "exit $rc, expected 0"
  # 0 errors in the blocks checked; a case that reads no data back (meta without its read phase)
  # must say that nothing was checked rather than "0 errors".
  grep -Eq "^# verify: (0 errors in [1-9][0-9]* block\(s\) checked|nothing was read back)" \
    "$work/out" || fail "no verify summary"
  grep -q "SUSPECT" "$work/out" && echo "note: a read phase was flagged SUSPECT (page-cache speed)"
  expect_empty "$data"
  if command -v h5ls >/dev/null; then
    h5ls -r "$work/results.h5" | grep -q "storage_phases" || fail "results file lacks storage_phases"
    h5ls -r "$work/results.h5" | grep -q "storage_latency" || fail "results file lacks storage_latency"
  fi
  ;;
corrupt)
  run "$data" "$@" --verify --self-test-corrupt
  rc=$?
  [ $rc = 1 ] || fail "exit $rc, expected 1 (verify failure)"
  grep -q "^# VERIFY" "$work/out" || fail "no VERIFY report"
  grep -q "FAILED" "$work/out" || fail "verify summary does not say FAILED"
  expect_empty "$data"
  ;;
enospc)
  need_root
  mount -t tmpfs -o size=8m tmpfs "$data" || skip "cannot mount a tmpfs here"
  mounted=$data
  run "$data" "$@" --ignore-free-space
  rc=$?
  [ $rc = 1 ] || fail "exit $rc, expected 1"
  grep -q "out of space" "$work/err" || fail "no 'out of space' message"
  grep -q "No space left on device" "$work/err" || fail "no ENOSPC text"
  grep -q "removed the" "$work/err" || fail "no cleanup report"
  expect_empty "$data"
  ;;
refuse)
  run "$data" "$@"
  rc=$?
  [ $rc = 2 ] || fail "exit $rc, expected 2"
  grep -q "does not fit" "$work/err" || fail "no 'does not fit' message"
  [ "$(grep -c storage_bench: "$work/err")" = 1 ] || fail "expected one line"
  expect_empty "$data"
  ;;
missing)
  run "$work/does-not-exist" "$@"
  rc=$?
  [ $rc = 2 ] || fail "exit $rc, expected 2"
  grep -q "does not exist" "$work/err" || fail "no 'does not exist' message"
  [ -e "$work/does-not-exist" ] && fail "created the missing directory"
  ;;
notdir)
  echo x >"$work/file"
  run "$work/file" "$@"
  rc=$?
  [ $rc = 2 ] || fail "exit $rc, expected 2"
  grep -q "not a directory" "$work/err" || fail "no 'not a directory' message"
  ;;
readonly)
  if [ "$(id -u)" = 0 ]; then
    mount -t tmpfs -o ro,size=1m tmpfs "$data" || skip "cannot mount a tmpfs here"
    mounted=$data
  else
    chmod 555 "$data"
  fi
  run "$data" "$@"
  rc=$?
  [ $rc = 2 ] || fail "exit $rc, expected 2"
  grep -q "not writable" "$work/err" || fail "no 'not writable' message"
  ;;
signal)
  "$mpiexec" "${mpiflags[@]}" -n "$nranks" "$bench" "$@" "$data" >"$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 100); do  # wait until the run is writing
    [ -n "$(find "$data" -mindepth 2 -type f 2>/dev/null)" ] && break
    sleep 0.1
  done
  sleep 0.5
  kill -TERM $pid
  wait $pid
  rc=$?
  [ $rc != 0 ] || fail "exit 0 after SIGTERM"
  grep -q "interrupted" "$work/err" || fail "no 'interrupted' message"
  expect_empty "$data"
  ;;
usage)
  run "$data" "$@"
  rc=$?
  [ $rc = 2 ] || fail "exit $rc, expected 2"
  [ "$(grep -c storage_bench: "$work/err")" = 1 ] || fail "expected exactly one error line"
  expect_empty "$data"
  ;;
*)
  echo "unknown case $case_name"
  exit 2
  ;;
esac
echo "PASS [$case_name] $nranks rank(s): $*"
exit 0
