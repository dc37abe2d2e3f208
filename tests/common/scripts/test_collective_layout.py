"""Every collective program speaks nccl-tests' formats: the printed table, header and footer, and
the -J/--output_file JSON document.

The text parser here is written from nccl-tests' own layout (src/util.cu of nccl-tests 2.19:
writeDeviceReport, writeResultHeader, writeBenchmarkLinePreamble/Body, writeResultFooter), not
from our printer: a row is whitespace-split and its cells are read at nccl-tests' fixed
positions, size count type redop root (0-4), out-of-place time algbw busbw #wrong (5-8), in-place
time algbw busbw #wrong (9-12). Each cell is compared with the HDF5 run of the same invocation,
formatted as nccl-tests formats it, so a cell read from the wrong column fails. Extras
(HFReduce's MPI fallback and ceiling fraction, stage times, accuracy) may only follow cell 12.

The JSON document is read back with Python's json module and every number is compared with the
HDF5 run written by the same invocation (--output and -J together).

Runs: mpi_allreduce_bench -d all -o all and hfreduce_bench with sizes below and above its 16 KiB
MPI fallback, on 1, 2, 3 and 4 ranks (oversubscribed on small machines); nccl_allreduce_bench and
hfreduce_gpu_bench when a GPU is there (they exit 77 without one: skipped).
"""
import json
import math
import os
import re
import stat
import subprocess
import time

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("FFB_BIN", os.path.join(ROOT, "build", "bin"))
from ffbench import cli  # noqa: E402  (PYTHONPATH=python: ctest sets it)
from ffbench.data import h5io  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
MPIRUN = ["mpirun", "--oversubscribe", "--bind-to", "none"]
TIMEOUT_S = 600
MIB = 1 << 20
SKIPPED = 77

# nccl-tests' printed type names (test_typenames) and ours for the same types.
TYPES = {"float", "double", "half", "bfloat16", "int32", "int64", "uint8", "int8", "uint32", "uint64",
         "fp8_e4m3", "fp8_e5m2"}
OPS = {"sum", "prod", "max", "min", "avg"}
HEADER_NAMES = ["size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong",
                "time", "algbw", "busbw", "#wrong"]
UNITS_NAMES = ["(B)", "(elements)", "(us)", "(GB/s)", "(GB/s)", "(us)", "(GB/s)", "(GB/s)"]
CONFIG_LINE = re.compile(
    r"^# nThread (\d+) nGpus (\d+) minBytes (\d+) maxBytes (\d+) step: (\S+)\((factor|bytes)\) "
    r"warmup iters: (\d+) iters: (\d+) agg iters: (\d+) validation: (\d+) graph: (\d+)")
OOB_LINE = re.compile(r"^# Out of bounds values : (\d+|N/A) (OK|FAILED)$")
AVG_LINE = re.compile(r"^# Avg bus bandwidth    : (\S+)$")   # "# %-20s : %g"
LARGE_LINE = re.compile(r"^# Mean busbw >= 1 MiB  : (?:(\S+) GB/s \(mean of (\d+) results|n/a)")

# (program, ranks, arguments): sizes 0 .. 1 MiB for the MPI baseline, every type and op;
# HFReduce from 1 KiB to 1 MiB, so rows below its 16 KiB MPI fallback and above it appear.
CASES = [("mpi_allreduce_bench", n, ["-b", "0", "-e", "1M", "-f", "16", "-d", "all", "-o", "all",
                                     "-n", "2", "-w", "1"]) for n in (1, 2, 3, 4)]
CASES += [("hfreduce_bench", n, ["-b", "1K", "-e", "1M", "-f", "8", "-d", "float,half,int32",
                                 "-o", "sum,max,avg", "-n", "2", "-w", "1", "--membw", "10",
                                 "--stages"]) for n in (1, 2, 3, 4)]
CASES += [("mpi_allreduce_bench", 2, ["-b", "4K", "-e", "1M", "-f", "16", "-d", "float,bf16",
                                      "-o", "sum,avg", "-n", "2", "-w", "0", "--accuracy"]),
          ("mpi_allreduce_bench", 3, ["-b", "8", "-e", "64K", "-i", "16K", "-d", "int64", "-c",
                                      "0", "-n", "3", "-w", "0", "-a", "1", "-z", "1"]),
          ("hfreduce_bench", 3, ["-b", "8K", "-e", "64K", "-f", "2", "-d", "bf16,f8e4m3",
                                 "-o", "sum", "-n", "2", "-w", "1", "--ranks-per-node", "2",
                                 "--membw", "10"])]
GPU_CASES = [("nccl_allreduce_bench", 1, ["-b", "0", "-e", "1M", "-f", "16", "-d", "all", "-o",
                                          "all", "-n", "2", "-w", "1"]),
             ("hfreduce_gpu_bench", 1, ["-b", "1K", "-e", "1M", "-f", "8", "-n", "2", "-w", "1",
                                        "--stages"])]


def case_id(case):
    program, ranks, args = case
    return f"{program}-np{ranks}-" + "_".join(a.lstrip("-") for a in args[:6])


def program_path(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    return path


def launch(program, ranks, args, **kw):
    return subprocess.run(MPIRUN + ["-np", str(ranks), program_path(program)] + args,
                          capture_output=True, text=True, errors="replace", env=ENV,
                          stdin=subprocess.DEVNULL, timeout=kw.pop("timeout", TIMEOUT_S), **kw)


class Invocation:
    """One run writing the table (stdout), an HDF5 run (--output) and a JSON document (-J)."""

    def __init__(self, case, directory):
        program, ranks, args = case
        os.makedirs(directory, exist_ok=True)
        self.h5 = os.path.join(directory, "r.h5")
        self.json = os.path.join(directory, "r.json")
        res = launch(program, ranks, args + ["--output", self.h5, "-J", self.json])
        if res.returncode == SKIPPED:
            said = [ln for ln in res.stderr.splitlines() if ln.startswith(program + ":")]
            pytest.skip(said[0] if said else f"{program} exited 77")
        assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
        self.case, self.ranks, self.stdout = case, ranks, res.stdout
        self.run = h5io.read_runs(self.h5)[-1]
        with open(self.json) as fh:
            self.doc = json.load(fh)
        self.listing = sorted(os.listdir(directory))


_RUNS = {}


@pytest.fixture(scope="module")
def invocations(tmp_path_factory):
    def get(case):
        key = case_id(case)
        if key not in _RUNS:
            _RUNS[key] = Invocation(case, str(tmp_path_factory.mktemp(key[:40])))
        return _RUNS[key]
    return get


# ---- nccl-tests' text layout, as its util.cu prints it ----

def nccl_cell(value, width):
    """nccl-tests' getFloatStr: the widest of %.2f, %.1f, %.0f that fits, else an exponent."""
    for precision in (2, 1, 0):
        s = f"{value:{width}.{precision}f}"
        if len(s) <= width:
            return s
    return f"{value:{width}.{1 if width >= 7 else 0}e}"


def parse_nccl_text(text):
    """The parts of an nccl-tests table a parser reads: the config line, the column header, the
    rows (13 cells at fixed positions, plus what follows), the two footer lines."""
    out = {"config": None, "header": None, "units": None, "rows": [], "oob": None, "avg": None,
           "large": None, "rank_lines": []}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if m := CONFIG_LINE.match(line):
            out["config"] = m.groups()
        elif line.startswith("#  Rank "):
            out["rank_lines"].append(line)
        elif line.startswith("#") and line[1:].split()[:3] == ["size", "count", "type"]:
            out["header"] = line[1:].split()
            out["units"] = lines[i + 1][1:].split()
        elif m := OOB_LINE.match(line):
            out["oob"] = m.groups()
        elif m := AVG_LINE.match(line):
            out["avg"] = m.group(1)
        elif m := LARGE_LINE.match(line):
            out["large"] = m.groups()
        elif line.strip() and not line.startswith("#"):
            t = line.split()
            out["rows"].append({
                "size": int(t[0]), "count": int(t[1]), "type": t[2], "redop": t[3], "root": t[4],
                "out-of-place": t[5:9], "in-place": t[9:13], "rest": t[13:], "line": line})
    return out


def hdf5_rows(run):
    """The collective table as one dict per (row, placement)."""
    c = run.tables["collective"]
    n = len(c["size"])
    return [{k: c[k][i] for k in c} for i in range(n)]


def check_text_layout(inv):
    program, ranks, args = inv.case
    t = parse_nccl_text(inv.stdout)
    assert t["header"] == HEADER_NAMES, t["header"]
    assert t["units"] == UNITS_NAMES, t["units"]
    # The config line: one rank per process; sizes, iterations and validation as asked.
    cfg = t["config"]
    assert cfg is not None, inv.stdout
    opts = json.loads(inv.run.attrs["options"])
    assert (int(cfg[0]), int(cfg[1])) == (1, 1)
    assert (int(cfg[2]), int(cfg[3])) == (opts["minbytes"], opts["maxbytes"])
    assert (int(cfg[6]), int(cfg[7])) == (opts["warmup_iters"], opts["iters"])
    assert int(cfg[9]) == (1 if opts["check"] else 0)
    assert len(t["rank_lines"]) == ranks
    # Every row, every cell at its position, against the HDF5 run of the same invocation.
    stored = hdf5_rows(inv.run)
    assert len(stored) == 2 * len(t["rows"]) > 0
    for k, row in enumerate(t["rows"]):
        assert row["type"] in TYPES and row["redop"] in OPS and row["root"] == "-1", row["line"]
        for p, place in enumerate(("out-of-place", "in-place")):
            h = stored[2 * k + p]
            assert h["placement"] == place
            assert (row["size"], row["count"], row["type"], row["redop"]) == \
                (h["size"], h["count"], h["type"], h["redop"]), row["line"]
            tm, alg, bus, wrong = row[place]
            assert tm == nccl_cell(h["time"], 7).strip(), (place, row["line"])
            assert alg == nccl_cell(h["algbw"], 6).strip(), (place, row["line"])
            assert bus == nccl_cell(h["busbw"], 6).strip(), (place, row["line"])
            assert wrong == (str(h["wrong"]) if opts["check"] else "N/A"), (place, row["line"])
            if opts["check"]:
                assert int(wrong) == 0, row["line"]
        # Extras only after the last column, introduced by '#'.
        assert not row["rest"] or row["rest"][0] == "#", row["line"]
    # Footer: nccl-tests' average (every row, both placements), ours (>= 1 MiB) on its own line.
    busbw = [h["busbw"] for h in stored]
    assert t["oob"] == ("0" if opts["check"] else "N/A", "OK")
    assert t["avg"] == f"{sum(busbw) / len(busbw):g}"
    large = [h["busbw"] for h in stored if h["size"] >= MIB]
    assert t["large"] is not None
    if large:
        assert t["large"] == (f"{sum(large) / len(large):g}", str(len(large)))
    else:
        assert t["large"] == (None, None)
    assert inv.stdout.count("Avg bus bandwidth") == 1
    return t


def expected_extras(h, show_metrics, accuracy):
    """The extras of one placement from its HDF5 row: "(small path)", "N% of ceiling",
    "stage_x=1.2", "acc=0.123" (HDF5 holds the metric columns in name order)."""
    items = []
    fixed = {"size", "count", "type", "redop", "placement", "time", "time_mean", "time_min",
             "time_p50", "time_p99", "time_max", "algbw", "busbw", "wrong", "accuracy",
             "iter_time_max", "iter_time_min", "iter_time_avg", "iter_time_rank0", "iters_per_sample"}
    for name in (k for k in h if k not in fixed) if show_metrics else ():
        v = h[name]
        if isinstance(v, str):  # a text metric ("algorithm"): "" where the row has none
            if v:
                items.append(f"{name}={v}")
            continue
        if math.isnan(v):
            continue
        if name == "fallback":
            if v > 0:
                items.append("(small path)")
        elif name == "ceiling_fraction":
            items.append(f"{100 * v:.0f}% of ceiling")
        else:
            items.append(f"{name}={v:.1f}")
    if accuracy and not math.isnan(h["accuracy"]):
        items.append(f"acc={h['accuracy']:.3f}")
    return sorted(items)


def printed_extras(row):
    """{placement: sorted items} of what follows the 13 cells: "# out-of-place: a, b; in-place: c"."""
    rest = " ".join(row["rest"])
    if not rest:
        return {}
    assert rest.startswith("# "), row["line"]
    out = {}
    for part in rest[2:].split("; "):
        place, _, items = part.partition(": ")
        assert place in ("out-of-place", "in-place") and place not in out, row["line"]
        out[place] = sorted(items.split(", "))
    return out


def check_extras(inv, rows):
    """Every row's extras say what its HDF5 rows hold, and nothing else follows the 13 cells."""
    stored = hdf5_rows(inv.run)
    show_metrics = inv.case[0] == "hfreduce_bench" or "--stages" in inv.case[2]
    accuracy = "--accuracy" in inv.case[2]
    for k, row in enumerate(rows):
        want = {}
        for p, place in enumerate(("out-of-place", "in-place")):
            items = expected_extras(stored[2 * k + p], show_metrics, accuracy)
            if items:
                want[place] = items
        assert printed_extras(row) == want, row["line"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_text_layout(invocations, case):
    inv = invocations(case)
    t = check_text_layout(inv)
    check_extras(inv, t["rows"])
    text = inv.stdout
    if case[0] == "hfreduce_bench" and "--ranks-per-node" not in case[2]:
        # sizes below the 16 KiB MPI fallback and above it: both kinds of extras appear
        assert "(small path)" in text and "% of ceiling" in text, text
    if "--accuracy" in case[2]:
        assert all("acc=" in r["line"] for r in t["rows"]), text


@pytest.mark.parametrize("case", GPU_CASES, ids=case_id)
def test_gpu_programs_text_layout(invocations, case):
    inv = invocations(case)
    check_extras(inv, check_text_layout(inv)["rows"])


# ---- the JSON document against the HDF5 run ----

def same(a, b):
    """JSON value a equals HDF5 value b: numbers exactly (NaN is null), arrays elementwise."""
    if hasattr(b, "tolist"):
        b = b.tolist()
    if isinstance(b, bytes):
        b = b.decode()
    if isinstance(b, (list, tuple)):
        return isinstance(a, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(b, float) and math.isnan(b):
        return a is None
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        return isinstance(a, (int, float)) and not isinstance(a, bool) and a == b
    return a == b


def nccl_iter_stats(times):
    """nccl-tests' computeIterStats: nearest-rank percentiles, population stdev."""
    s = sorted(times)
    n = len(s)
    avg = sum(s) / n
    stdev = math.sqrt(sum((x - avg) ** 2 for x in s) / n)
    def pct(q):
        return s[min(n - 1, (n * q + 99) // 100 - 1)]
    return {"min_us": s[0], "max_us": s[-1], "avg_us": avg, "p50_us": s[n // 2],
            "p95_us": pct(95), "p99_us": pct(99), "stdev_us": stdev,
            "cv_pct": stdev / avg * 100 if avg > 0 else 0.0}


def check_json_results(doc, run, opts):
    stored = hdf5_rows(run)
    results = doc["results"]
    assert 2 * len(results) == len(stored)
    for k, e in enumerate(results):
        assert e["root"].strip() == "-1" and e["actual_iterations"] == opts["iters"]
        assert e["experiment_name"] == run.attrs["label"]
        for p, key in enumerate(("out_of_place", "in_place")):
            h = stored[2 * k + p]
            assert (e["size"], e["count"], e["type"], e["redop"]) == \
                (h["size"], h["count"], h["type"], h["redop"])
            body = e[key]
            assert same(body["time"], h["time"]) and same(body["alg_bw"], h["algbw"])
            assert same(body["bus_bw"], h["busbw"])
            assert body["nwrong"] == (float(h["wrong"]) if opts["check"] else None)
            per_iter = e[key + "_per_iter"]
            assert same(per_iter["times_us"], h["iter_time_max"])
            for name, value in nccl_iter_stats(list(h["iter_time_max"])).items():
                assert math.isclose(per_iter[name], value, rel_tol=1e-12, abs_tol=1e-12), name
            ours = e["ffbench"][key]
            assert set(ours) == set(h) - {"size", "count", "type", "redop"}
            for name, value in h.items():
                if name in ours:
                    assert same(ours[name], value), (k, key, name, ours[name], value)
    return stored


def check_json_document(inv):
    doc, run = inv.doc, inv.run
    opts = json.loads(run.attrs["options"])
    assert doc["version"] == 3
    assert doc["args"][-4:] == ["--output", inv.h5, "-J", inv.json]
    cfg = doc["config"]
    assert (cfg["nthreads"], cfg["ngpus"]) == (1, 1)
    assert (cfg["minimum_bytes"], cfg["maximum_bytes"]) == (opts["minbytes"], opts["maxbytes"])
    assert (cfg["warmup_iters"], cfg["iterations"]) == (opts["warmup_iters"], opts["iters"])
    assert cfg["validation"] == (1 if opts["check"] else 0)
    assert cfg["blocking_collectives"] == ("true" if opts["blocking"] else "false")
    ranks = run.tables["ranks"]
    assert [d["rank"] for d in cfg["devices"]] == list(ranks["rank"])
    assert [d["pid"] for d in cfg["devices"]] == list(ranks["pid"])
    assert same([d["hostname"] for d in cfg["devices"]], ranks["host"])
    stored = check_json_results(doc, run, opts)
    busbw = [h["busbw"] for h in stored]
    wrong = sum(max(int(h["wrong"]), 0) for h in stored)
    assert doc["out_of_bounds"] == {"count": wrong if opts["check"] else -1, "okay": "true"}
    assert math.isclose(doc["average_bus_bandwidth"]["bandwidth"], sum(busbw) / len(busbw),
                        rel_tol=1e-12, abs_tol=1e-15)
    ours = doc["ffbench"]
    large = [h["busbw"] for h in stored if h["size"] >= MIB]
    got = ours["busbw_averages"]["sizes_from_1mib"]
    assert got["values"] == len(large) and got["min_bytes"] == MIB
    if large:
        assert math.isclose(got["bandwidth"], sum(large) / len(large), rel_tol=1e-12)
    else:
        assert got["bandwidth"] is None
    assert ours["busbw_averages"]["all_sizes"]["values"] == len(busbw)
    assert ours["results_file"] == {"path": inv.h5, "run": f"/runs/{run.id}"}
    assert ours["status"] == run.attrs["status"] == "complete"
    assert ours["units"] == run.units["collective"]
    for key, value in ours["attrs"].items():
        assert key in run.attrs and same(value, run.attrs[key]), key
    for name, cols in ours["tables"].items():
        for col, body in cols.items():
            assert same(body["values"], run.tables[name][col]), (name, col)
            assert body["units"] == run.units[name][col], (name, col)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_json_matches_hdf5(invocations, case):
    inv = invocations(case)
    check_json_document(inv)
    # Written atomically: nothing but the two results files (and HDF5's own) is left.
    assert not [n for n in inv.listing if ".tmp" in n or n.startswith(".r.json")], inv.listing


@pytest.mark.parametrize("case", GPU_CASES, ids=case_id)
def test_gpu_programs_json(invocations, case):
    check_json_document(invocations(case))


def test_json_reads_as_nccl_tests_json(invocations, tmp_path, capsys):
    """The project's nccl-tests -J importer, written for nccl-tests' files, reads ours."""
    inv = invocations(CASES[1])
    out = tmp_path / "imported.h5"
    capsys.readouterr()
    code = cli.main(["import", "nccl-tests", inv.json, "-o", str(out)])
    assert code == 0, capsys.readouterr()
    imported = h5io.read_runs(str(out))[-1].tables["collective"]
    assert list(imported["busbw"]) == list(inv.run.tables["collective"]["busbw"])
    assert list(imported["time"]) == list(inv.run.tables["collective"]["time"])


# ---- -J/--output_file: validation, replacement, the atomic write ----

def one_line_usage(res, *needles):
    """Exit 2 and one line of the program's own (mpirun adds its banner) naming the problem."""
    assert res.returncode == 2, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    lines = [ln for ln in res.stderr.splitlines() if re.match(r"^\w+_bench: ", ln)]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), res.stderr


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("check_args", [False, True], ids=["run", "check-args"])
def test_bad_json_paths(tmp_path, ranks, check_args):
    (tmp_path / "d.json").mkdir()
    extra = ["--check-args"] if check_args else []
    bad = [(str(tmp_path / "r.txt"), "give a file name ending in .json"),
           (str(tmp_path / "missing" / "r.json"), "does not exist"),
           (str(tmp_path / "d.json"), "is a directory"),
           ("", "give a file name ending in .json")]
    for path, needle in bad:
        res = launch("mpi_allreduce_bench", ranks, ["-b", "8", "-e", "8", "-J", path] + extra,
                     timeout=120)
        one_line_usage(res, f"-J/--output_file '{path}': ", needle)
    same_file = str(tmp_path / "r.json")
    res = launch("mpi_allreduce_bench", ranks, ["-b", "8", "-e", "8", "-J", same_file,
                                                "--output", same_file] + extra, timeout=120)
    one_line_usage(res, "the same file as --output")
    assert sorted(os.listdir(tmp_path)) == ["d.json"]
    if check_args:
        res = launch("mpi_allreduce_bench", ranks, ["-J", str(tmp_path / "ok.json")] + extra,
                     timeout=120)
        assert res.returncode == 0 and not os.path.exists(tmp_path / "ok.json"), res.stderr


def test_help_lists_output_file():
    res = launch("hfreduce_bench", 1, ["--help"], timeout=120)
    assert res.returncode == 0 and "-J,--output_file" in res.stdout, res.stdout


def test_json_replaces_a_file_with_the_usual_mode(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old contents\n")
    res = launch("mpi_allreduce_bench", 2, ["-b", "8", "-e", "64", "-f", "2", "-n", "1", "-w", "0",
                                            "-J", str(target)], timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(target.read_text())
    assert [e["size"] for e in doc["results"]] == [8, 16, 32, 64]
    assert f"# JSON written to {target}" in res.stdout
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~mask
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_failed_write_leaves_no_temporary(tmp_path):
    """The target turns into a directory while the run measures: the rename fails, the program
    says so and exits non-zero, and no temporary is left in the directory."""
    target = tmp_path / "r.json"
    cmd = MPIRUN + ["-np", "2", program_path("mpi_allreduce_bench"), "-b", "8", "-e", "8", "-n",
                    "2", "-w", "0", "-T", "60", "--inject-stall-rank", "0",
                    "--inject-stall-seconds", "3", "-J", str(target)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", stdin=subprocess.DEVNULL)
    try:
        seen = ""
        deadline = time.time() + 60
        while "#wrong" not in seen and time.time() < deadline:  # checks passed, sweep running
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "#wrong" in seen, seen
        target.mkdir()
        (target / "keep").write_text("x")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, out + err
    assert f"-J/--output_file {target}: cannot rename" in err, err
    assert sorted(os.listdir(tmp_path)) == ["r.json"] and os.listdir(target) == ["keep"]


# ---- nccl-tests' type spellings ----

def test_nccl_tests_type_names_are_aliases(tmp_path):
    res = launch("mpi_allreduce_bench", 1, ["-b", "8", "-e", "8", "-n", "1", "-w", "0", "-d",
                                            "float,half,bf16,double,int32,int64,uint8,fp16,f32"],
                 timeout=120)
    assert res.returncode == 0, res.stderr
    rows = parse_nccl_text(res.stdout)["rows"]
    assert [r["type"] for r in rows] == ["float", "half", "bfloat16", "double", "int32", "int64",
                                         "uint8", "half", "float"]
    res = launch("hfreduce_bench", 1, ["-b", "8", "-e", "8", "-n", "1", "-w", "0", "-d",
                                       "f8e4m3,f8e5m2", "--membw", "10"], timeout=120)
    assert res.returncode == 0, res.stderr
    assert [r["type"] for r in parse_nccl_text(res.stdout)["rows"]] == ["fp8_e4m3", "fp8_e5m2"]
    # nccl-tests' int8 (its "char"), uint32 and uint64: signed char is int8, never uint8.
    res = launch("mpi_allreduce_bench", 1, ["-b", "8", "-e", "8", "-n", "1", "-w", "0", "-d",
                                            "int8,char,uint32,uint64,float32,float64,float16,"
                                            "bfloat16,bf16"], timeout=120)
    assert res.returncode == 0, res.stderr
    assert [r["type"] for r in parse_nccl_text(res.stdout)["rows"]] == [
        "int8", "int8", "uint32", "uint64", "float", "double", "half", "bfloat16", "bfloat16"]
