"""`ffbench report`: PNG plots and the Markdown report, one section per machine."""
import json
import os
import re
import subprocess

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from ffbench.data import h5io  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
H100 = "NVIDIA H100 80GB HBM3"


def coll(path, backend, label, nranks, nnodes, scale, hosts=None, cpu="Test CPU", gpu="",
         env=None, sizes=None):
    attrs = h5io.provenance(f"{backend}_bench", "collective", ["x"], label=label)
    attrs.update(backend=backend, collective="allreduce", nranks=nranks, nnodes=nnodes,
                 ranks_per_node=str(nranks // nnodes),
                 hosts=hosts or ["vm"] * nranks, cpu_model=cpu, simd_level="avx2+f16c",
                 mpi_library_version="Open MPI v4.1.4")
    if env:
        attrs["environment"] = json.dumps(env)
    sizes = sizes or [1 << k for k in range(10, 29, 3)]
    n = len(sizes)
    factor = 0.0 if nranks == 1 else 1.0  # busbw = algbw x 2(n-1)/n: 0 for one rank
    busbw = [factor * scale * min(1.0, s / (1 << 22)) for s in sizes]
    algbw = [scale * min(1.0, s / (1 << 22)) for s in sizes]
    devices = [f"GPU{r} {gpu} [0000:{0x19 + r:02x}:00.0]" if gpu else "-" for r in range(nranks)]
    h5io.append_run(str(path), attrs, {"collective": {
        "size": (sizes * 2, "B"), "busbw": (busbw * 2, "GB/s"), "algbw": (algbw * 2, "GB/s"),
        "placement": (["out-of-place"] * n + ["in-place"] * n, "1"), "type": (["float"] * 2 * n, "1"),
        "redop": (["sum"] * 2 * n, "1"), "time_p99": ([10.0] * 2 * n, "us")},
        "ranks": {"rank": (list(range(nranks)), "1"), "device": (devices, "1")}})


def storage(path, hosts=("vm",), cpu="Test CPU"):
    attrs = h5io.provenance("storage_bench", "storage", ["storage_bench"],
                            label="storage.seq.r2@0123456789ab")
    attrs.update(nranks=2, fs_type="ext4", mount_point="/", node_mem_bw_gbps=25.0,
                 hosts=list(hosts), cpu_model=cpu)
    phases = [("seq", "write", 1.2, 300.0), ("seq", "read", 3.4, 900.0), ("meta", "create", float("nan"), 5000.0)]
    nan = float("nan")
    h5io.append_run(str(path), attrs, {
        "storage_phases": {
            "workload": ([p[0] for p in phases], "1"), "phase": ([p[1] for p in phases], "1"),
            "rep": ([0, 0, 0], "1"), "ranks": ([2, 2, 2], "count"),
            "bw": ([p[2] for p in phases], "GB/s"), "ops_rate": ([p[3] for p in phases], "ops/s"),
            "lat_p50": ([100.0, 50.0, 20.0], "us"), "lat_p99": ([400.0, 200.0, 80.0], "us"),
            "lat_p999": ([900.0, 300.0, 150.0], "us"), "cache_resident": ([nan, 1.0, nan], "1")},
        "storage_ops": {"phase_index": ([0, 1, 2], "1"), "op": (["write", "read", "create"], "1"),
                        "bw": ([1.2, 3.4, nan], "GB/s"), "ops_rate": ([300.0, 900.0, 5000.0], "ops/s")}})


def membw(path, add_gbps, hosts=("vm",), cpu="Test CPU"):
    """membw_bench's table: STREAM copy and add, best over threads (the add kernel counts)."""
    attrs = h5io.provenance("membw_bench", "probe", ["membw_bench"])
    attrs.update(hosts=list(hosts), cpu_model=cpu)
    h5io.append_run(str(path), attrs, {"membw": {
        "kernel": (["copy", "copy", "add", "add"], "1"), "threads": ([1, 2, 1, 2], "count"),
        "bandwidth": ([35.0, 40.0, add_gbps * 2 / 3, add_gbps], "GB/s")}})


@pytest.fixture()
def results(tmp_path):
    """One host ("vm", Test CPU) with collectives, storage and a probe, and an emulated cluster
    (ffb-node1..3): two machines."""
    path = tmp_path / "small.h5"
    coll(path, "mpi", "mpi.default.r2@0123456789ab", 2, 1, 2.0)
    coll(path, "mpi", "mpi.ring.r4@0123456789ac", 4, 1, 1.5,
         env={"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"})
    coll(path, "hfreduce", "hfreduce.node.r2@0123456789ad", 2, 1, 2.5)
    for n in (2, 3):
        coll(path, "hfreduce", f"hfreduce.n{n}x1@01234567890{n}", n, n, 0.3,
             hosts=[f"ffb-node{k}" for k in range(1, n + 1)],
             env={"FFB_EMU_LINK_RATE": "1gbit"})  # what ffbench emu's launcher exports
    storage(path)
    membw(path, 30.0)
    return str(path)


def report(args, timeout=180):
    return subprocess.run([FFBENCH, "report"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def section(md, heading):
    """The text of one `## ` section (up to the next `## ` heading)."""
    start = md.index(heading)
    nxt = md.find("\n## ", start + len(heading))
    return md[start:] if nxt < 0 else md[start:nxt]


def test_report_pngs_and_markdown(results, tmp_path):
    out = tmp_path / "rep"
    res = report([results, "--out", out])
    assert res.returncode == 0, res.stderr
    pngs = ["busbw_vs_size.m1.png", "storage_throughput.m1.png", "storage_latency.m1.png",
            "busbw_vs_size.m2.png", "busbw_vs_nodes.m2.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert not (out / "busbw_vs_nodes.m1.png").exists()   # one host: no nodes plot
    md = (out / "report.md").read_text()
    for name in pngs:
        assert f"]({name})" in md
    host = section(md, "## Machine: vm (Test CPU, no GPU, 1 node)")
    emu = section(md, "## Machine: ffb-node1, ffb-node2, ffb-node3 (emulated nodes")
    for heading in ("### The machine", "### Comparison with the paper, row by row",
                    "### Allreduce bandwidth against message size (measured)",
                    "### Storage workloads (measured)",
                    "### Analytic ceilings: the 24 S host-memory model (model)",
                    "### What could not be measured here, and why"):
        assert heading in host, heading
    assert "### Allreduce bandwidth against nodes, with the paper's points" in emu
    assert "### Storage workloads" not in emu
    assert "Test CPU" in host and "avx2+f16c" in host and "\0" not in md
    assert "3 network namespaces (ffb-node1 .. ffb-node3)" in emu
    assert "30.0 (measured)" in host and "1.25 (model)" in host        # 30 GB/s (add) / 24
    assert "13.3 (reference R5)" in host
    assert "host memory bandwidth was not measured" in emu            # its own runs only
    assert "not comparable" in host                                   # R1 rows, host buffers
    assert "**No GPU was used.**" in host and "**No 3FS.**" in host
    assert "| 2 | 8.1 | 4.01 | 19.2 |" in emu                          # paper points beside ours
    assert "mpi.ring (4 ranks)" in host
    assert md.index("## Verdict") < md.index("## Machine:") < md.index("## Models (model output)")


def test_report_markdown_elsewhere_links_relative(results, tmp_path):
    out = tmp_path / "results" / "report"
    md_path = tmp_path / "REPORT.md"
    out.mkdir(parents=True)
    for stale in ("busbw_vs_size.png", "busbw_vs_nodes.png", "storage_latency.png",
                  "ddp_step_time_vs_gpus.png", "busbw_vs_size.m9.png"):
        (out / stale).write_bytes(PNG_MAGIC)
    (out / "mine.png").write_bytes(PNG_MAGIC)
    (out / "notes.txt").write_text("keep")
    res = report([results, "--out", out, "--markdown", md_path])
    assert res.returncode == 0, res.stderr
    md = md_path.read_text()
    assert "](results/report/busbw_vs_size.m1.png)" in md
    assert not (out / "report.md").exists()
    left = sorted(os.listdir(out))
    # the report's own old names are gone, everything else stays
    assert left == ["busbw_vs_nodes.m2.png", "busbw_vs_size.m1.png", "busbw_vs_size.m2.png",
                    "mine.png", "notes.txt", "storage_latency.m1.png",
                    "storage_throughput.m1.png"], left


def test_report_collectives_only_and_errors(tmp_path):
    path = tmp_path / "c.h5"
    coll(path, "mpi", "mpi.default.r2@0123456789ab", 2, 1, 2.0)
    out = tmp_path / "rep"
    res = report([path, "--out", out])
    assert res.returncode == 0, res.stderr
    assert (out / "busbw_vs_size.m1.png").exists() and not list(out.glob("storage_*.png"))
    md = (out / "report.md").read_text()
    assert "**No storage results** for this machine" in md
    assert "host memory bandwidth was not measured" in md
    assert "No verdict could be formed" in md or "| capability |" in md
    res = report([tmp_path / "none.h5", "--out", out], timeout=60)
    assert res.returncode == 2 and "no such results file" in res.stderr


def two_machines(path):
    """A merged file: an AMD EPYC host and an Intel Xeon + H100 host, both named "vm"."""
    amd = dict(cpu="AMD EPYC")
    coll(path, "hfreduce", "hfreduce.node.r2@0123456789a1", 2, 1, 6.0, **amd)
    coll(path, "hfreduce", "hfreduce.node.r1@0123456789a2", 1, 1, 6.0, **amd)   # busbw 0
    coll(path, "mpi", "mpi.default.r2@0123456789a3", 2, 1, 2.0, **amd)
    coll(path, "mpi", "mpi.ring.r2@0123456789a4", 2, 1, 2.2,
         env={"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"}, **amd)
    for alg, scale in (("1", 1.0), ("6", 2.5)):                                # pinned, one size
        coll(path, "mpi", f"perf:mpi{alg}:2:256M", 2, 1, scale, sizes=[1 << 28],
             env={"OMPI_MCA_coll_tuned_allreduce_algorithm": alg}, **amd)
    membw(path, 48.0, **amd)
    intel = dict(cpu="Intel Xeon", gpu=H100)
    coll(path, "hfreduce", "gpu-check", 2, 1, 11.0, **intel)
    coll(path, "nccl", "gpu-check", 1, 1, 24.0, **intel)                       # busbw 0
    # a pcie_bench probe on the GPU host: its GB/s are PCIe, not host memory
    attrs = h5io.provenance("pcie_bench", "probe", ["pcie_bench"])
    attrs.update(hosts=["vm"], cpu_model="Intel Xeon")
    h5io.append_run(str(path), attrs, {
        "pcie": {"direction": (["h2d", "d2h"], "1"), "bandwidth": ([89.3, 50.0], "GB/s")},
        "ranks": {"rank": ([0], "1"), "device": ([f"GPU0 {H100} [0000:19:00.0]"], "1")}})


def test_two_machines_two_sections(tmp_path):
    path = tmp_path / "merged.h5"
    two_machines(path)
    out = tmp_path / "rep"
    res = report([path, "--out", out])
    assert res.returncode == 0, res.stderr
    md = (out / "report.md").read_text()
    heads = re.findall(r"^## Machine: (.*)$", md, re.M)
    assert heads == ["vm (AMD EPYC, no GPU, 1 node)", f"vm (Intel Xeon, {H100}, 1 node)"], heads
    assert md.index("## Verdict") < md.index("## Machine:")
    verdict = section(md, "## Verdict")
    assert "### vm (AMD EPYC, no GPU, 1 node)" in verdict
    assert f"### vm (Intel Xeon, {H100}, 1 node)" in verdict
    for line in md.splitlines():                                       # no table mixes them
        assert not ("AMD EPYC" in line and "Intel Xeon" in line), line
    amd, intel = (section(md, f"## Machine: {h}") for h in heads)
    assert "| CPU | AMD EPYC |" in amd and "| GPU | none used |" in amd
    assert "| CPU | Intel Xeon |" in intel and f"| GPU | {H100} |" in intel
    assert "busbw_vs_size.m1.png" in amd and "busbw_vs_size.m2.png" in intel
    assert (out / "busbw_vs_size.m1.png").exists() and (out / "busbw_vs_size.m2.png").exists()
    assert "| nccl |" not in amd and "| mpi |" not in intel and "| nccl |" in intel
    assert "48.0 (measured)" in amd and "48.0 (measured)" not in intel  # each its own ceiling
    legends = {name: [line for line in text.splitlines() if line.startswith("- legend")]
               for name, text in (("amd", amd), ("intel", intel))}
    for name, lines in legends.items():
        assert lines, name
        for line in lines:
            entries = line.split(": ", 1)[1].split("; ")
            assert len(entries) <= 8, line
            assert not any("(1 rank)" in e for e in entries), line  # busbw 0: not drawn
    # the best MPI at the largest common size (256 MiB): Rabenseifner, pinned, 2.5 GB/s
    (amd_legend,) = legends["amd"]
    assert "MPI best at 256MB: Rabenseifner (alg 6)" in amd_legend
    assert "mpi.default" not in amd_legend and "mpi.ring" not in amd_legend
    assert "not drawn: busbw is 0 for one rank" in amd and "not drawn: busbw is 0" in intel
    assert legends["intel"] == ["- legend: hfreduce (2 ranks)"]


def test_size_panels_hold_at_most_eight_series(tmp_path):
    """Many shapes: one axes per shape, each with HFReduce and the best MPI only; no empty axes."""
    pytest.importorskip("matplotlib")
    from ffbench.analysis import report as rep
    from ffbench.data import results as resmod
    path = tmp_path / "many.h5"
    for ranks in (2, 3, 4, 5, 6):
        for name, scale in (("hfreduce.node", 3.0), ("hfreduce.rpn1", 2.0)):
            coll(path, "hfreduce", f"{name}.r{ranks}@0000000000{ranks}0", ranks, 1, scale)
        for i, alg in enumerate(("1", "2", "3", "4", "5", "6")):
            coll(path, "mpi", f"mpi.alg{alg}.r{ranks}@00000000{alg}{ranks}1", ranks, 1,
                 0.5 + i * 0.1 + ranks * 0.01,
                 env={"OMPI_MCA_coll_tuned_allreduce_algorithm": alg})
    coll(path, "hfreduce", "hfreduce.node.r1@000000000011", 1, 1, 3.0)       # busbw 0
    series = rep.collective_series(resmod.load_runs([str(path)]))
    panels, notes = rep.size_panels(series)
    assert len(panels) == 5                                    # 5 shapes x 3 series > 8
    drawn = rep.plot_busbw_vs_size(series, panels, str(tmp_path / "p.png"))
    assert len(drawn) == 5 and all(0 < len(labels) <= 8 for labels in drawn)
    for labels in drawn:
        best = [lab for lab in labels if lab.startswith("MPI best")]
        assert len(best) == 1 and "Rabenseifner (alg 6)" in best[0]
        assert not any("(1 rank)" in lab for lab in labels)
    assert notes[("hfreduce", "hfreduce.node (1 rank)")].startswith("not drawn: busbw is 0")
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_MAGIC)
    # few series: one axes for all shapes
    few = {k: v for k, v in series.items() if "(2 ranks)" in k[1] or "(3 ranks)" in k[1]}
    panels, _ = rep.size_panels(few)
    assert len(panels) == 1 and len(panels[0][1]) == 6


def test_verdict_section_leads(results, tmp_path, monkeypatch):
    """The verdict table opens the report, per machine, from the engine's rows."""
    pytest.importorskip("matplotlib")
    from ffbench.analysis import report as rep
    from ffbench.analysis import verdict as vd
    seen = []

    def fake_verdicts(runs, refs):
        seen.append({str(h) for r in runs for h in (r.attrs.get("hosts") or [])})
        if "vm" not in seen[-1]:
            return []
        return [vd.Verdict("R5.eff", "HFReduce efficiency: algbw / host-memory ceiling", 0.6,
                           "0.60 (8 of 13.3 GB/s)", 0.31, "0.31 (3.9 of 12.5 GB/s)", 0.52,
                           vd.FAIL, "below 80% of the paper's efficiency"),
                vd.Verdict("R6.d2h", "PCIe D2H / link rate", 0.86, "0.86", None, "-", None,
                           vd.NOT_MEASURED, "no pcie_bench run (needs a GPU)")]
    monkeypatch.setattr(rep.verdmod, "verdicts", fake_verdicts)
    monkeypatch.setattr(rep, "MODEL_COMMANDS", ())
    md_path = tmp_path / "r.md"
    ref = os.path.join(ROOT, rep.DEFAULT_REFERENCE)
    rep.build_report([results], str(tmp_path / "out"), str(md_path), ref)
    md = md_path.read_text()
    assert seen[0] == {"vm"} and all(h.startswith("ffb-node") for h in seen[1])
    verdict = section(md, "## Verdict")
    assert md.index("## Verdict") < md.index("## Machine:")
    assert "HFReduce efficiency: algbw / host-memory ceiling" in verdict
    assert "0 PASS, 1 FAIL, 1 not measured" in verdict
    assert verdict.count("| capability |") == 1                      # one table: one machine
    emu = verdict[verdict.index("### ffb-node1"):]
    assert "No verdict could be formed for this machine" in emu and "no twin covered" in emu


def test_export_json_roundtrip_of_report_input(results):
    res = subprocess.run([FFBENCH, "export", results, "--json"],
                         capture_output=True, text=True, timeout=60)
    data = json.loads(res.stdout)
    assert len(data["runs"]) == 7


def test_best_mpi_at_the_largest_shared_size():
    from ffbench.analysis import report as rep

    def rows(sizes, busbw, alg=""):
        env = {"OMPI_MCA_coll_tuned_allreduce_algorithm": alg} if alg else {}
        return [dict(size=s, busbw=busbw, ranks=2, nodes=1, ranks_per_node="2", env=env)
                for s in sizes]
    big = 1 << 28
    # the latency sweep stops at 64 B: the pinned runs compete at 256 MiB, which two share
    assert rep.best_mpi({("mpi", "lat"): rows([8, 64], 9.0), ("mpi", "a1"): rows([64, big], 0.5, "1"),
                         ("mpi", "a4"): rows([big], 0.7, "4")}) == (("mpi", "a4"), big)
    # no size shared: the largest of all
    assert rep.best_mpi({("mpi", "lat"): rows([8, 64], 9.0),
                         ("mpi", "a1"): rows([big], 0.5, "1")}) == (("mpi", "a1"), big)
    assert rep.best_mpi({("mpi", "one"): rows([1024], 0.0)}) == (None, None)  # busbw 0 only
    assert rep.mpi_algorithm(rows([8], 1.0, "4")) == "ring (alg 4)"
    assert rep.mpi_algorithm(rows([8], 1.0)) == "default (Open MPI's decision rules)"
