"""How one sweep point becomes a command: mpirun on this host (local) or across the emulated
cluster's namespaces (emu). The Slurm launcher writes batch scripts instead (slurm.py)."""
import os
import shlex
import shutil
import subprocess

from . import emu
from .cli import UsageError


def find_bin_dir(cli_bin=None, sweep_bin=None, root=None):
    """--bin, then $FFB_BIN, then the config's bin: (repository-relative), then <repo>/build/bin."""
    from .results import repo_root
    root = root or repo_root()
    if cli_bin:
        return os.path.abspath(cli_bin)
    if os.environ.get("FFB_BIN"):
        return os.path.abspath(os.environ["FFB_BIN"])
    if sweep_bin:  # relative to the repository, like every path inside configs/
        return os.path.abspath(os.path.join(root, os.path.expanduser(sweep_bin)))
    return os.path.join(root, "build", "bin")


def program_path(bin_dir, program):
    path = os.path.join(bin_dir, program)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def missing_program_reason(bin_dir, program):
    return (f"{program} is not built ({os.path.join(bin_dir, program)} missing; "
            f"`make build` builds every program this machine supports)")


def scripts_dir():
    from .results import repo_root
    return os.path.join(repo_root(), "scripts")


def point_program(bin_dir, point):
    """The executable a point runs (a script of scripts/ or a program of the bin dir), or None."""
    if getattr(point, "script", False):
        path = os.path.join(scripts_dir(), point.program)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return program_path(bin_dir, point.program)


def point_program_text(bin_dir, point):
    """The path a dry run prints, whether or not the program exists."""
    return os.path.join(scripts_dir() if getattr(point, "script", False) else bin_dir,
                        point.program)


def point_missing_reason(bin_dir, point):
    """Why a point's program, a program it runs or a tool it needs is not there (or None)."""
    if point_program(bin_dir, point) is None:
        if getattr(point, "script", False):
            return f"{point.program} is missing ({point_program_text(bin_dir, point)})"
        return missing_program_reason(bin_dir, point.program)
    for name in getattr(point, "uses", ()):
        if program_path(bin_dir, name) is None:
            return missing_program_reason(bin_dir, name)
    for tool in getattr(point, "tools", ()):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {tool}); {point.name} needs it"
    return None


def expand_args(args, bin_dir, tmpdir=None):
    """Fill a point's placeholders: {dir} (its temporary directory) and {bin} (the bin dir)."""
    out = []
    for a in args:
        if tmpdir is not None:
            a = a.replace("{dir}", tmpdir)
        out.append(a.replace("{bin}", bin_dir))
    return out


_gpu_cache = {}


def gpu_available():
    """(True, '') or (False, reason). A failed or empty nvidia-smi counts as no GPU."""
    if "gpu" in _gpu_cache:
        return _gpu_cache["gpu"]
    result = (False, "no GPU on this host (nvidia-smi missing)")
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            res = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
            if res.returncode == 0 and "GPU" in res.stdout:
                result = (True, "")
            else:
                result = (False, "no GPU on this host (nvidia-smi -L lists none)")
        except (OSError, subprocess.SubprocessError):
            result = (False, "no GPU on this host (nvidia-smi failed)")
    _gpu_cache["gpu"] = result
    return result


def mpi_env(point_env):
    """Environment for a child: ours + the point's + what Open MPI needs as root."""
    env = dict(os.environ)
    env.update(point_env)
    if os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def _export_flags(point_env):
    """-x NAME for variables that are not MCA parameters (those travel by themselves)."""
    out = []
    for k in sorted(point_env):
        if not k.startswith("OMPI_MCA_"):
            out += ["-x", k]
    return out


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalLauncher:
    name = "local"

    def __init__(self, sweep, args):
        self.sweep = sweep

    def describe(self):
        return f"local launcher: mpirun on this host ({cpu_count()} cores)"

    def unsupported(self, point):
        if point.nodes > 1:
            return (f"needs {point.nodes} nodes; the local launcher runs on this host only "
                    f"(use --launcher emu or --launcher slurm)")
        return None

    def command(self, point, program_abs, args):
        if not point.mpi:
            return [program_abs] + args
        cmd = ["mpirun", "-np", str(point.ranks)]
        if point.ranks > cpu_count():
            cmd.append("--oversubscribe")
        cmd += _export_flags(point.env) + point.mpirun_args + [program_abs] + args
        return cmd


class EmuLauncher:
    """mpirun started inside the first node's namespace; other nodes reached via the rsh agent."""
    name = "emu"

    def __init__(self, sweep, args):
        self.cluster_name = getattr(args, "emu_name", None) or sweep.emu.get("name", emu.DEFAULT_NAME)
        self.state = emu.load_state(self.cluster_name)
        if self.state is None and not getattr(args, "dry_run", False):
            raise UsageError(f"--launcher emu: no emulated cluster '{self.cluster_name}' is up; "
                             f"start one with: scripts/ffbench emu up N (as root)")

    def describe(self):
        if self.state is None:
            return f"emu launcher: cluster '{self.cluster_name}' is not up (dry run)"
        return (f"emu launcher: {self.state['nodes']} emulated nodes '{self.cluster_name}', "
                f"{self.state['link_rate']} links")

    def unsupported(self, point):
        nodes = self.state["nodes"] if self.state else emu.MAX_NODES
        if point.nodes > nodes:
            return (f"needs {point.nodes} nodes; emulated cluster '{self.cluster_name}' has {nodes} "
                    f"(scripts/ffbench emu up {point.nodes})")
        return None

    def command(self, point, program_abs, args):
        if self.state is None:
            state = emu.plan_state(self.cluster_name, max(point.nodes, 2), "10gbit")
        else:
            state = self.state
        first = emu.node_name(self.cluster_name, 1)
        if not point.mpi:
            return emu.enter_command(state, first, [program_abs] + args)
        hostfile = emu.hostfile_path(state, point.nodes, point.ranks_per_node)
        if self.state is not None:
            emu.write_hostfile(state, point.nodes, point.ranks_per_node)
        iface = state["iface"]
        # Every namespace shares this host's cores, but each node's Open MPI binds its first rank
        # to core 0 and busy-polls while it waits: all ranks would queue on one core, and a ring
        # step would wait for its receiver to be scheduled (6 nodes: ~17 ms per step at 1 gbit).
        # Unbound ranks that yield when idle make the links the bottleneck, as on a real cluster.
        cmd = ["mpirun", "-np", str(point.ranks), "--hostfile", hostfile,
               "--mca", "plm_rsh_agent", state["agent"],
               "--mca", "btl", "tcp,self,vader", "--mca", "btl_tcp_if_include", iface,
               "--mca", "oob_tcp_if_include", iface,
               "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1",
               # Open MPI's TCP transport sends a large message's "put" as one fragment of up to
               # 2 GiB; while the same connection carries data the other way it then stalled at
               # about half the link rate (2-node rings at 2-32 MiB, 0.06-0.07 instead of 0.12
               # GB/s at 1 gbit). 128 KiB fragments interleave: every ring and HFReduce point at
               # the link rate (docs/models.md, check 2).
               "--mca", "btl_tcp_rdma_pipeline_frag_size", "131072",
               # recorded with the results (environment attr): the model reads the shaped rate
               "-x", f"FFB_EMU_LINK_RATE={state['link_rate']}",
               "-x", f"FFB_EMU_CONGESTION={state.get('congestion', 'system')}"]
        if point.ranks_per_node > cpu_count():
            cmd.append("--oversubscribe")
        cmd += _export_flags(point.env) + point.mpirun_args + [program_abs] + args
        return emu.enter_command(state, first, cmd)


def make(name, sweep, args):
    if name == "local":
        return LocalLauncher(sweep, args)
    if name == "emu":
        return EmuLauncher(sweep, args)
    raise UsageError(f"--launcher {name}: expected local, slurm or emu")


def quote(cmd):
    return " ".join(shlex.quote(c) for c in cmd)
