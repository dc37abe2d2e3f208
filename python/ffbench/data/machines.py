"""Which machine produced a run: runs of different machines never share a table or a plot.

A machine is identified by its host names, CPU model and GPU model; its node count is the number
of distinct hosts its runs used. Runs whose CPU and GPU models agree and whose host sets overlap
belong to one machine (a sweep over 2..160 nodes of one cluster is one machine); a run that used
no GPU (membw_bench, an MPI baseline) joins the GPU machine whose hosts it ran on. Emulated nodes
(network namespaces named <name>-node<k>, their runs carrying FFB_EMU_LINK_RATE) are hosts like any
other, so an emulated cluster is a machine of its own: its nodes share one real host's memory and
cores.

    group(runs) -> list[Machine]   in first-seen order
    gpu_model(run) -> str          "" for host-only runs
"""
import re
from dataclasses import dataclass, field

from ffbench.data import results as resmod

EMU_HOST = re.compile(r"[a-z][a-z0-9]*-node\d+")


def gpu_model(run):
    """The GPU model of a run's ranks ("NVIDIA H100 80GB HBM3"), "" when none used a GPU."""
    for dev in resmod.devices(run):
        m = re.match(r"GPU\d+\s+(.*?)\s*(\[[^\]]*\])?$", dev)
        if m and m.group(1):
            return m.group(1)
    for table in run.tables.values():
        dev = table.get("device")
        if dev is None or getattr(dev, "ndim", 1) != 1 or not len(dev):
            continue
        d = dev[0].decode() if isinstance(dev[0], bytes) else str(dev[0])
        m = re.match(r"GPU\d+\s+(.*?)\s*(\[[^\]]*\])?$", d)
        if m and m.group(1):
            return m.group(1)
    return ""


def cpu_model(run):
    v = str(run.attrs.get("cpu_model") or "")
    return "" if v.startswith(("n/a", "unknown")) else v


def hosts(run):
    hs = run.attrs.get("hosts") or []
    if isinstance(hs, str):
        hs = [hs]
    return {str(h) for h in hs if str(h)}


@dataclass
class Machine:
    cpu: str
    gpu: str
    hosts: set = field(default_factory=set)
    runs: list = field(default_factory=list)

    @property
    def nodes(self):
        return max(1, len(self.hosts))

    @property
    def emulated(self):
        """Nodes of `ffbench emu` (network namespaces): its launcher exports FFB_EMU_LINK_RATE
        into every run; a real host merely named like "gpu-node01" is not emulated."""
        return any("FFB_EMU_LINK_RATE" in resmod.environment(r) for r in self.runs)

    @property
    def name(self):
        hs = sorted(self.hosts)
        shown = ", ".join(hs) if len(hs) <= 3 else f"{hs[0]} .. {hs[-1]}"
        gpu = self.gpu or "no GPU"
        kind = "emulated nodes, " if self.emulated else ""
        n = self.nodes
        return f"{shown or '?'} ({kind}{self.cpu or 'CPU ?'}, {gpu}, {n} node{'s' if n != 1 else ''})"

    @property
    def key(self):
        return (tuple(sorted(self.hosts)), self.cpu, self.gpu)


def group(runs):
    """Runs grouped by machine. Python-made runs (models, merges: no MPI library, `n/a` SIMD)
    and runs without hosts join the machine whose host they ran on, else the first machine."""
    machines = []
    pending = []
    for run in runs:
        if str(run.attrs.get("simd_level", "")).startswith("n/a") and \
                run.attrs.get("kind") in ("model", "crosscheck"):
            pending.append(run)
            continue
        cpu, gpu, hs = cpu_model(run), gpu_model(run), hosts(run)
        # a host-only run (membw, MPI) on a GPU node belongs to that node's machine
        found = [m for m in machines if m.cpu == cpu and (m.hosts & hs)
                 and (m.gpu == gpu or not gpu or not m.gpu)]
        if not found:
            m = Machine(cpu, gpu, set(hs), [run])
            machines.append(m)
            continue
        m = found[0]
        m.gpu = m.gpu or gpu
        for other in found[1:]:  # this run joins two host sets: one machine
            if other.gpu and m.gpu and other.gpu != m.gpu:
                continue
            m.gpu = m.gpu or other.gpu
            m.hosts |= other.hosts
            m.runs += other.runs
            machines.remove(other)
        m.hosts |= hs
        m.runs.append(run)
    for run in pending:
        hs = hosts(run)
        cpu = cpu_model(run)
        home = next((m for m in machines if (m.hosts & hs) and m.cpu == cpu and not m.emulated),
                    None) or next((m for m in machines if m.cpu == cpu and not m.emulated), None)
        if home is None:
            home = Machine(cpu, "", set(hs), [])
            machines.append(home)
        home.runs.append(run)
    for m in machines:
        order = {id(r): i for i, r in enumerate(runs)}
        m.runs.sort(key=lambda r: order.get(id(r), 0))
    return machines
