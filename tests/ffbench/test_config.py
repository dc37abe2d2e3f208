"""Sweep configs: expansion into points, stable keys, and one clear line for every bad config."""
import os
import subprocess

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.data import config  # noqa: E402
from ffbench.data.yamlfile import load_yaml
from ffbench.errors import UsageError  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")


def parse(text, tmp_path):
    import yaml
    path = str(tmp_path / "sweep.yaml")
    with open(path, "w") as fh:
        fh.write(text)
    return config.parse(path, yaml.safe_load(text))


def test_shipped_sweeps_load():
    for name in ("local", "fire-flyer-fig7", "emu"):
        sweep = config.load(os.path.join(ROOT, "configs", "sweeps", f"{name}.yaml"))
        assert sweep.points, name
        names = [p.name for p in sweep.points]
        assert len(names) == len(set(names))
    local = config.load(os.path.join(ROOT, "configs", "sweeps", "local.yaml"))
    programs = {p.program for p in local.points}
    assert {"mpi_allreduce_bench", "hfreduce_bench", "nccl_allreduce_bench", "storage_bench",
            "membw_bench"} <= programs
    assert {p.ranks for p in local.points if p.kind == "collective"} == {2, 4}
    fig7 = config.load(os.path.join(ROOT, "configs", "sweeps", "fire-flyer-fig7.yaml"))
    nodes = sorted({p.nodes for p in fig7.points})
    assert nodes[0] == 2 and nodes[-1] == 160
    for p in fig7.points:
        assert p.ranks_per_node == 8
        assert p.args[:4] == ["-b", "192937984", "-e", "192937984"]
        assert "-w" in p.args and p.args[p.args.index("-w") + 1] == "200"
        assert p.args[p.args.index("-n") + 1] == "100"


def test_shipped_sweeps_run_the_gpu_programs_where_they_require_a_gpu():
    """Fig. 7 (R1) is measured on GPU buffers: a sweep that requires a GPU for HFReduce runs
    hfreduce_gpu_bench, never hfreduce_bench (host buffers)."""
    sweeps = os.path.join(ROOT, "configs", "sweeps")
    for f in sorted(os.listdir(sweeps)):
        if not f.endswith(".yaml"):
            continue
        for p in config.load(os.path.join(sweeps, f)).points:
            if "gpu" in p.requires:
                assert p.program != "hfreduce_bench", (f, p.name)
    fig7 = config.load(os.path.join(sweeps, "fire-flyer-fig7.yaml"))
    assert {p.program for p in fig7.points} == {"hfreduce_gpu_bench", "nccl_allreduce_bench"}


def test_local_sweep_measures_the_ceiling_and_ddp_weak_scaling():
    local = config.load(os.path.join(ROOT, "configs", "sweeps", "local.yaml"))
    ceiling = [p for p in local.points if p.kind == "crosscheck"]
    assert len(ceiling) == 1
    c = ceiling[0]
    assert (c.program, c.script, c.tools, c.uses, c.mpi, c.storage_tmp) == \
        ("fio-crosscheck", True, ("fio",), ("storage_bench",), False, True)
    assert c.args[:2] == ["--dir", "{dir}"] and "{bin}/storage_bench" in c.args
    ddp = [p for p in local.points if p.program == "ddp_bench"]
    for model in ("vgg16", "gpt2-medium"):
        pts = [p for p in ddp if p.meta["options"]["model"] == model]
        assert sorted(p.ranks for p in pts) == [1, 2, 4]
        assert all(p.meta["options"]["compute"] == "emulated" for p in pts)


def test_storage_ceiling(tmp_path):
    sweep = parse("""
storage:
  dir: tmp
  ceiling: {size: 64M, runs: 2, settle: 0.5, cases: [seq_read_direct], tolerance: 0.1}
""", tmp_path)
    (p,) = sweep.points
    assert (p.name, p.kind, p.ranks, p.launchers) == ("storage.ceiling", "crosscheck", 1,
                                                       ("local",))
    assert p.args == ["--dir", "{dir}", "--size", "64M", "--runs", "2", "--settle", "0.5",
                      "--cases", "seq_read_direct", "--storage-bench", "{bin}/storage_bench",
                      "--tolerance", "0.1"]
    sweep = parse("storage:\n  dir: /scratch/x\n  ceiling: {}\n  workloads: [seq]\n", tmp_path)
    c = [p for p in sweep.points if p.kind == "crosscheck"][0]
    assert c.args[1] == "/scratch/x" and not c.storage_tmp
    assert "seq_write_direct,seq_read_direct" in c.args and "256M" in c.args


def test_ceiling_cases_are_fio_crosschecks():
    with open(os.path.join(ROOT, "python", "ffbench", "tools", "fio_crosscheck.py")) as fh:
        text = fh.read()
    block = text[text.index("CASES = {"):text.index("\n}\n", text.index("CASES = {"))]
    import re
    assert tuple(re.findall(r'^    "([a-z0-9_]+)": \(', block, re.M)) == config.CEILING_CASES


def test_storage_sweep_if_present():
    path = os.path.join(ROOT, "configs", "sweeps", "storage.yaml")
    if not os.path.exists(path):
        pytest.skip("configs/sweeps/storage.yaml not written yet (storage engineer)")
    sweep = config.load(path)
    assert any(p.kind == "storage" for p in sweep.points)


def test_expansion_and_args(tmp_path):
    sweep = parse("""
name: t
env: {A: 1}
collectives:
  - name: mpi
    program: mpi_allreduce_bench
    ranks: [2, 4]
    sizes: [{min: 1K, max: 1M, factor: 4}, 184M]
    types: [float, half]
    iters: 5
    warmup: 1
    check: false
    variants:
      - name: default
      - name: ring
        env: {OMPI_MCA_coll_tuned_allreduce_algorithm: 4}
    sweep: {chunk-size: [1M, 4M]}
storage:
  ranks: 2
  options: {repetitions: 1}
  workloads:
    - seq
    - {workload: checkpoint, options: {ckpt-size: 8M}, dir: /scratch/x}
probes:
  - program: membw_bench
    mpi: false
""", tmp_path)
    coll = [p for p in sweep.points if p.kind == "collective"]
    assert len(coll) == 2 * 2 * 2 * 2  # variants x ranks x size specs x sweep axis
    p = next(p for p in coll if p.name == "mpi.ring.chunk-size=4M.r4.1K-1M")
    assert p.args[:6] == ["-b", "1024", "-e", "1048576", "-f", "4"]
    assert p.args[p.args.index("-d") + 1] == "float,half"
    assert p.args[p.args.index("-c") + 1] == "0"
    assert p.args[-2:] == ["--chunk-size", "4M"]
    assert p.env == {"A": "1", "OMPI_MCA_coll_tuned_allreduce_algorithm": "4"}
    single = next(p for p in coll if p.name == "mpi.default.chunk-size=1M.r2.184M")
    assert single.args[:4] == ["-b", str(184 << 20), "-e", str(184 << 20)]
    st = [p for p in sweep.points if p.kind == "storage"]
    assert [p.args[0] for p in st] == ["seq", "checkpoint"]
    assert st[0].args[-1] == "{dir}" and st[0].storage_tmp
    assert st[1].args[-1] == "/scratch/x" and not st[1].storage_tmp
    assert "--repetitions" in st[0].args and "--ckpt-size" in st[1].args
    probe = [p for p in sweep.points if p.kind == "probe"][0]
    assert probe.mpi is False and probe.ranks == 1


def test_nodes_shapes(tmp_path):
    sweep = parse("""
collectives:
  - program: hfreduce_bench
    nodes: [2, 4]
    ranks_per_node: 8
""", tmp_path)
    assert [(p.ranks, p.nodes, p.ranks_per_node) for p in sweep.points] == [(16, 2, 8), (32, 4, 8)]
    assert [p.name for p in sweep.points] == ["hfreduce.n2x8", "hfreduce.n4x8"]


def test_keys_are_stable_and_distinct(tmp_path):
    text = """
collectives:
  - {name: a, program: mpi_allreduce_bench, ranks: [2, 4]}
"""
    one = parse(text, tmp_path).points
    two = parse(text, tmp_path).points
    assert [p.key("local") for p in one] == [p.key("local") for p in two]
    assert one[0].key("local") != one[1].key("local")
    assert one[0].key("local") != one[0].key("emu")
    label = one[0].label("local")
    assert config.key_of_label(label) == one[0].key("local")
    assert config.name_of_label(label) == "a.r2"
    assert config.key_of_label("hand-written label") is None


@pytest.mark.parametrize("text, needle", [
    ("collectives: [{program: x, rank: 2}]", "unknown key 'collectives[0].rank'"),
    ("collectives: [{program: x, ranks: two}]", "'collectives[0].ranks': expected an integer >= 1"),
    ("collectives: [{program: x, ranks: [2, 0]}]", "'collectives[0].ranks'"),
    ("collectives: [{program: x, sizes: {min: 1Q}}]", "'collectives[0].sizes.min': expected a size"),
    ("collectives: [{program: x, sizes: {min: 4M, max: 1M}}]", "'collectives[0].sizes.max'"),
    ("collectives: [{program: x, types: [floaty]}]", "'collectives[0].types'"),
    ("collectives: [{program: x, ops: [mean]}]", "'collectives[0].ops'"),
    ("collectives: [{ranks: 2}]", "'collectives[0].program'"),
    ("collectives: [{program: x, options: {output: f.h5}}]", "ffbench sets this option itself"),
    ("collectives: [{program: x, env: {A-B: 1}}]", "environment variable names"),
    ("collectives: [{program: x, requires: [tpu]}]", "'collectives[0].requires'"),
    ("collectives: [{program: x, variants: [{env: {}}]}]", "'collectives[0].variants[0].name'"),
    ("collectives: [{program: x, nodes: 2, ranks: 3}]", "a multiple of nodes"),
    ("collectives: {program: x}", "'collectives': expected a list"),
    ("launcher: cloud\ncollectives: [{program: x}]", "'launcher': expected one of local, slurm, emu"),
    ("slurm: {launch: ssh}\ncollectives: [{program: x}]", "'slurm.launch': expected srun or mpirun"),
    ("slurm: {time: soon}\ncollectives: [{program: x}]", "'slurm.time'"),
    ("storage: {workloads: [{workload: fsck}]}", "'storage.workloads[0].workload': expected one of"),
    ("storage: {ranks: 2}", "'storage.workloads'"),
    ("name: x\n", "nothing to run"),
    ("collectives: [{program: x}, {program: x}]", "two points are both named"),
    ("collectives: [{program: x}, {program: x, name: y}]", "run the same command"),
    ("nonsense: 1\ncollectives: [{program: x}]", "unknown key 'nonsense'"),
    ("storage: {ceiling: {tool: dd}}", "'storage.ceiling.tool': expected one of fio"),
    ("storage: {ceiling: {size: 1K}}", "'storage.ceiling.size': expected a size of at least 1M"),
    ("storage: {ceiling: {size: big}}", "'storage.ceiling.size': expected a size"),
    ("storage: {ceiling: {runs: 0}}", "'storage.ceiling.runs': expected an integer >= 1"),
    ("storage: {ceiling: {settle: -1}}", "'storage.ceiling.settle'"),
    ("storage: {ceiling: {cases: [seq_read]}}", "'storage.ceiling.cases': expected cases of "
     "scripts/fio-crosscheck"),
    ("storage: {ceiling: {cases: [seq_read_direct, seq_read_direct]}}", "each once"),
    ("storage: {ceiling: {runz: 3}}", "unknown key 'storage.ceiling.runz'; expected one of name"),
    ("storage: {ceiling: [fio]}", "'storage.ceiling': expected a mapping"),
])
def test_bad_configs_one_line(tmp_path, text, needle):
    with pytest.raises(UsageError) as info:
        parse(text, tmp_path)
    msg = str(info.value)
    assert needle in msg, msg
    assert "\n" not in msg
    assert "sweep.yaml" in msg


def test_bad_config_cli_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collectives:\n  - program: mpi_allreduce_bench\n    sizes: {min: lots}\n")
    res = subprocess.run([FFBENCH, "run", str(bad), "--dry-run"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "sizes.min" in lines[0] and "expected a size" in lines[0], res.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("collectives: [\n")
    res = subprocess.run([FFBENCH, "run", str(broken)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "not valid YAML" in res.stderr
    res = subprocess.run([FFBENCH, "run", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "no such config file" in res.stderr


def test_sizes():
    assert config.parse_size("1K") == 1024
    assert config.parse_size("184MiB") == 184 << 20
    assert config.parse_size(4096) == 4096
    assert config.parse_size("4KB") == 4096 and config.parse_size("3k") == 3072
    assert config.parse_size("2G") == 2 << 30 and config.parse_size("1T") == 1 << 40
    assert config.parse_size("8B") == 8 and config.parse_size("0") == 0
    # the C++ programs' rule (common/src/sizes.cpp): whole bytes, one binary suffix, no spaces
    for bad in ("0.5M", "1.5", "", "M", "1X", "1 M", "-1", "1KIB", "1MM"):
        with pytest.raises(UsageError):
            config.parse_size(bad)
    with pytest.raises(UsageError, match=r"--size: '0.5M' is not a whole number of bytes"):
        config.parse_size("0.5M", "--size")
    assert config.format_size(192937984) == "184M"


def test_non_utf8_config_is_one_line(tmp_path):
    """#6: a config that is not UTF-8 text is one ConfigError line (the CLI: exit 2), never a
    UnicodeDecodeError traceback; a UTF-8 byte order mark is fine."""
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: t\n# caf\u00e9\ncollectives: [{program: x}]\n".encode("latin-1"))
    with pytest.raises(UsageError) as info:
        config.load(str(bad))
    msg = str(info.value)
    assert msg == f"{bad}: not UTF-8 text (byte 0xe9 at line 2); save the config as UTF-8", msg
    res = subprocess.run([FFBENCH, "run", str(bad), "--dry-run"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [f"ffbench run: {msg}"], res.stderr
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfname: t\ncollectives: [{program: x}]\n")
    assert config.load(str(bom)).name == "t"
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: t\x00\n")
    with pytest.raises(UsageError, match="not valid YAML: unacceptable character"):
        config.load(str(nul))


def test_load_yaml_is_the_shared_loader(tmp_path):
    class OtherError(Exception):
        pass
    p = tmp_path / "c.yaml"
    p.write_bytes(b"a: [1\n")
    with pytest.raises(OtherError, match=r"c.yaml: not valid YAML at line 2"):
        load_yaml(str(p), OtherError, "cluster file")
    p.write_bytes(b"a: \xff\n")
    with pytest.raises(OtherError, match="save the cluster file as UTF-8"):
        load_yaml(str(p), OtherError, "cluster file")
    with pytest.raises(OtherError, match="cannot read the cluster file"):
        load_yaml(str(tmp_path), OtherError, "cluster file")  # a directory
    p.write_text("a: 1\n")
    assert load_yaml(str(p)) == {"a": 1}


def test_points_name_the_config_key_of_each_option(tmp_path):
    """#7: ffbench run maps a program's complaint about a flag back to the key it came from."""
    sweep = parse("""
collectives:
  - program: hfreduce_bench
    ranks: [2]
    iters: 3
    options: {chunk-size: 1M}
    sweep: {threads: [1, 2]}
    variants: [{name: a}, {name: b, options: {depth: 8}}]
storage:
  options: {repetitions: 1}
  workloads:
    - {workload: seq, options: {block: 16M}, sweep: {qd: [1, 8]}}
probes:
  - {program: ddp_bench, options: {model: vgg16}}
""", tmp_path)
    coll = [p for p in sweep.points if p.kind == "collective"]
    b = [p for p in coll if ".b." in p.name][0]
    assert b.meta["entry"] == "collectives[0]"
    assert b.meta["origins"]["chunk-size"] == "collectives[0].options.chunk-size"
    assert b.meta["origins"]["threads"] == "collectives[0].sweep.threads"
    assert b.meta["origins"]["depth"] == "collectives[0].variants[1].options.depth"
    assert b.meta["origins"]["n"] == b.meta["origins"]["iters"] == "collectives[0].iters"
    assert b.meta["origins"]["d"] == "collectives[0].types"
    assert "depth" not in [p for p in coll if ".a." in p.name][0].meta["origins"]
    seq = [p for p in sweep.points if p.kind == "storage"][0]
    assert seq.meta["origins"] == {"repetitions": "storage.options.repetitions",
                                   "block": "storage.workloads[0].options.block",
                                   "qd": "storage.workloads[0].sweep.qd"}
    probe = [p for p in sweep.points if p.kind == "probe"][0]
    assert probe.meta["origins"] == {"model": "probes[0].options.model"}
