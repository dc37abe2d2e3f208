"""ReFrame checks for ffbench (https://reframe-hpc.readthedocs.io).

  HFReduceVsMPI      hfreduce_bench against the best MPI_Allreduce (Open MPI's default rules and
                     three pinned algorithms) at one size; perf: algbw, busbw, efficiency
  HFReduceGPUVsNCCL  hfreduce_gpu_bench against nccl_allreduce_bench (partitions with `gpu`)
  StorageCheck       storage_bench seq and checkpoint in the directory the site names
  NodeCheck          membw_bench, and pcie_bench + gemm_bench where the partition has GPUs

`efficiency` is the normalised twin of configs/reference/fire-flyer-2.yaml (python/ffbench/
analysis/twins.py): HFReduce busbw over the best baseline busbw measured on the same machine at
the same point, so it carries across hardware; its ReFrame reference is the twin's value and
tolerance (R3.proxy against MPI, R3.ratio against NCCL). Every sanity function checks the
program's own correctness output: `#wrong` 0 in every row and "Out of bounds values : 0 OK" for
the collectives, "verify: 0 errors" for storage, "spot check: OK" for GEMM.

Variables a site sets (`-S name=value`): ffb_references (false: report the performance, judge
none of it), ffb_bin (the programs; default $FFB_BIN, else the
directory on PATH holding mpi_allreduce_bench), size, iters, warmup, storage_dir (default
$FFB_STORAGE_DIR; StorageCheck skips without one), and ReFrame's own num_tasks /
num_tasks_per_node.
"""
import os
import re
import shutil

import reframe as rfm
import reframe.utility.sanity as sn
import reframe.utility.typecheck as typ
from reframe.core.builtins import (parameter, performance_function, run_after, run_before,
                                   sanity_function, variable)
from reframe.core.exceptions import SanityError

HERE = os.path.dirname(os.path.abspath(__file__))

# A result row of the collective programs (nccl-tests layout): size count type redop root, then
# time algbw busbw #wrong out-of-place and the same in-place.
ROW = re.compile(r"^\s*(?P<size>\d+)\s+\d+\s+\S+\s+\S+\s+-?\d+\s+(?P<time>\S+)\s+(?P<algbw>\S+)\s+"
                 r"(?P<busbw>\S+)\s+(?P<wrong>\S+)\s+\S+\s+\S+\s+(?P<ibusbw>\S+)\s+(?P<iwrong>\S+)",
                 re.MULTILINE)
OPEN_MPI_VARIANTS = {  # the pinned algorithms configs/sweeps/local.yaml compares (coll_tuned)
    "default": {},
    "ring": {"OMPI_MCA_coll_tuned_use_dynamic_rules": 1, "OMPI_MCA_coll_tuned_allreduce_algorithm": 4},
    "recdbl": {"OMPI_MCA_coll_tuned_use_dynamic_rules": 1, "OMPI_MCA_coll_tuned_allreduce_algorithm": 3},
    "rabenseifner": {"OMPI_MCA_coll_tuned_use_dynamic_rules": 1,
                     "OMPI_MCA_coll_tuned_allreduce_algorithm": 6},
}


def reference_file():
    """configs/reference/fire-flyer-2.yaml: beside reframe/ in a checkout and in an installed
    share/ffbench; $FFB_REFERENCE names another."""
    return os.environ.get("FFB_REFERENCE") or os.path.join(
        os.path.dirname(HERE), "configs", "reference", "fire-flyer-2.yaml")


def twin_reference(twin_id):
    """(value, lower, upper, unit) of a normalised twin, as ReFrame wants a reference."""
    import yaml  # reframe-hpc depends on PyYAML
    with open(reference_file()) as f:
        refs = yaml.safe_load(f)["references"]
    for ref in refs:
        if ref["id"] == twin_id:
            unit = ref.get("unit", "x")
            return (float(ref["value"]), ref.get("lower"), ref.get("upper"), unit)
    raise ValueError(f"{reference_file()}: no reference '{twin_id}'")


def _rows(path):
    with open(os.fspath(sn.evaluate(path))) as f:
        text = f.read()
    return text, [m.groupdict() for m in ROW.finditer(text)]


@sn.deferrable
def collective_clean(paths):
    """Every program output has result rows, 0 in both #wrong columns and the closing
    'Out of bounds values : 0 OK'."""
    for path in paths:
        path = os.fspath(sn.evaluate(path))
        text, rows = _rows(path)
        if not rows:
            raise SanityError(f"{path}: no result rows")
        bad = [r["size"] for r in rows if r["wrong"] not in ("0", "N/A") or
               r["iwrong"] not in ("0", "N/A")]
        if bad:
            raise SanityError(f"{path}: #wrong is not 0 at size(s) {', '.join(bad)}")
        if not re.search(r"Out of bounds values : 0 OK", text):
            raise SanityError(f"{path}: no 'Out of bounds values : 0 OK'")
    return True


@sn.deferrable
def last_row_value(path, column):
    """A column of the last (largest) size's out-of-place row."""
    _, rows = _rows(path)
    return float(rows[-1][column])


@sn.deferrable
def busbw_ratio(numerator_path, baseline_paths):
    """HFReduce busbw over the best baseline busbw at the same (largest) size: the twin. Same
    size and ranks give the same busbw factor, so the ratio is the inverse ratio of the times
    (printed with more digits than the bandwidths, which round to 0.00 on slow machines)."""
    best = min(last_row_value(p, "time").evaluate() for p in baseline_paths)
    ours = last_row_value(numerator_path, "time").evaluate()
    return best / ours if ours > 0 else 0.0


class FfbCheck(rfm.RunOnlyRegressionTest):
    """What every ffbench check shares: where the programs are, and skipping without them."""
    ffb_bin = variable(str, value=os.environ.get("FFB_BIN", ""))
    # false: measure and report, compare with nothing (a test machine is no reference machine)
    ffb_references = variable(typ.Bool, value=True)
    valid_systems = ["*"]
    valid_prog_environs = ["*"]
    maintainers = ["ffbench"]
    tags = {"ffbench"}
    programs = ()

    def program(self, name):
        return os.path.join(self.bin_dir, name)

    @run_after("init")
    def find_programs(self):
        self.bin_dir = self.ffb_bin
        if not self.bin_dir:
            found = shutil.which("mpi_allreduce_bench")
            self.bin_dir = os.path.dirname(found) if found else ""

    @run_after("init")
    def drop_references(self):
        if not self.ffb_references:
            self.reference = {}

    @run_after("setup")
    def skip_without_programs(self):
        missing = [p for p in self.programs if not os.path.isfile(self.program(p))]
        self.skip_if(bool(missing), f"not built here: {', '.join(missing)} (in "
                     f"{self.bin_dir or 'no ffb_bin and none on PATH'}; -S ffb_bin=DIR)")

    def launch(self, program, args, env=None, out=None):
        """A launched command line for postrun_cmds, as the partition launches the executable."""
        envs = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        line = f"{self.job.launcher.run_command(self.job)} {self.program(program)} {' '.join(args)}"
        line = f"env {envs} {line}" if envs else line
        return f"{line} > {out} 2>&1" if out else line


class CollectiveCheck(FfbCheck):
    """One program against the best of several baseline runs at one size, in one job."""
    size = variable(str, value="16M")
    iters = variable(int, value=20)
    warmup = variable(int, value=5)
    num_tasks = 2
    subject = ""
    baselines = {}  # name -> (program, env)

    def sweep_args(self):
        return ["-b", self.size, "-e", self.size, "-n", str(self.iters), "-w", str(self.warmup)]

    @run_before("run")
    def set_commands(self):
        self.executable = self.program(self.subject)
        self.executable_opts = self.sweep_args()
        self.postrun_cmds = [self.launch(prog, self.sweep_args(), env, f"{name}.out")
                             for name, (prog, env) in self.baselines.items()]

    def baseline_outputs(self):
        return [f"{name}.out" for name in self.baselines]

    @sanity_function
    def validate(self):
        return collective_clean([self.stdout] + self.baseline_outputs())

    @performance_function("GB/s")
    def algbw(self):
        return last_row_value(self.stdout, "algbw")

    @performance_function("GB/s")
    def busbw(self):
        return last_row_value(self.stdout, "busbw")

    @performance_function("x")
    def efficiency(self):
        return busbw_ratio(self.stdout, self.baseline_outputs())


@rfm.simple_test
class HFReduceVsMPI(CollectiveCheck):
    descr = "HFReduce allreduce against the best MPI_Allreduce (twin R3.proxy)"
    programs = ("hfreduce_bench", "mpi_allreduce_bench")
    subject = "hfreduce_bench"
    baselines = {f"mpi_{name}": ("mpi_allreduce_bench", env)
                 for name, env in OPEN_MPI_VARIANTS.items()}
    reference = {"*": {"efficiency": twin_reference("R3.proxy")}}


@rfm.simple_test
class HFReduceGPUVsNCCL(CollectiveCheck):
    descr = "HFReduce (GPU buffers) against NCCL allreduce (twin R3.ratio)"
    valid_systems = ["+gpu"]
    programs = ("hfreduce_gpu_bench", "nccl_allreduce_bench")
    subject = "hfreduce_gpu_bench"
    baselines = {"nccl": ("nccl_allreduce_bench", {})}
    reference = {"*": {"efficiency": twin_reference("R3.ratio")}}


@rfm.simple_test
class StorageCheck(FfbCheck):
    """storage_bench in the site's directory, data verified on read-back."""
    workload = parameter(["seq", "checkpoint"])
    storage_dir = variable(str, value=os.environ.get("FFB_STORAGE_DIR", ""))
    bytes_per_rank = variable(str, value="64M")
    num_tasks = 2
    programs = ("storage_bench",)
    phases = {"seq": ("write", "read"), "checkpoint": ("save", "restore")}

    @run_after("init")
    def describe(self):
        self.descr = f"storage_bench {self.workload} with --verify in storage_dir"

    @run_after("setup")
    def skip_without_dir(self):
        self.skip_if(not self.storage_dir,
                     "no storage directory: -S storage_dir=DIR or FFB_STORAGE_DIR=DIR")
        self.skip_if(not os.path.isdir(self.storage_dir),
                     f"storage_dir {self.storage_dir} is not a directory")

    @run_before("run")
    def set_command(self):
        self.executable = self.program("storage_bench")
        sizes = (["-b", self.bytes_per_rank, "-t", "1M"] if self.workload == "seq" else
                 ["--ckpt-size", self.bytes_per_rank, "--chunk", "1M"])
        self.executable_opts = [self.workload, *sizes, "--verify", self.storage_dir]
        self.perf_variables = {
            phase: sn.make_performance_function(self.phase_gbs(phase), "GB/s")
            for phase in self.phases[self.workload]}

    def phase_gbs(self, phase):
        # phase rep ranks bytes(2 words) time(s) GB/s ...
        return sn.extractsingle(rf"^\s*{phase}\s+\d+\s+\d+\s+\S+\s+\S+\s+\S+\s+(?P<gbs>[\d.]+)",
                                self.stdout, "gbs", float, -1)

    @sanity_function
    def validate(self):
        return sn.assert_found(r"# verify: 0 errors in \d+ block", self.stdout,
                               msg="storage_bench did not verify its data with 0 errors")


@rfm.simple_test
class NodeCheck(FfbCheck):
    """Host memory bandwidth, and where GPUs exist the PCIe links and GEMM throughput."""
    descr = "membw_bench; pcie_bench and gemm_bench on GPU partitions"
    num_tasks = 1
    programs = ("membw_bench",)

    @run_before("run")
    def set_commands(self):
        self.executable = self.program("membw_bench")
        self.has_gpu = "gpu" in self.current_partition.features
        self.perf_variables = {"membw_add": sn.make_performance_function(
            sn.extractsingle(r"^\s*add\s+\d+\s+\S+\s+\S+\s+(?P<best>[\d.]+)", self.stdout,
                             "best", float, -1), "GB/s")}
        if self.has_gpu:
            self.postrun_cmds = [self.launch("pcie_bench", [], out="pcie.out"),
                                 self.launch("gemm_bench", [], out="gemm.out")]

    @sanity_function
    def validate(self):
        checks = [sn.assert_found(r"^\s*add\s+\d+", self.stdout, msg="no membw add row")]
        if self.has_gpu:
            checks += [sn.assert_found(r"# spot check: OK", "gemm.out",
                                       msg="gemm_bench spot check not OK"),
                       sn.assert_found(r"GB/s", "pcie.out", msg="pcie_bench printed no table")]
        return sn.all(checks)
