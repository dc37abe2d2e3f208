"""The Slurm launcher: batch scripts (dry run, always) and a real single-node Slurm (munged,
slurmctld and slurmd started here with a generated config on private ports and a private munge
socket, stopped by pid afterwards) running a small sweep through `--launcher slurm --wait`."""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest


from ffbench.data import h5io  # noqa: E402
from conftest import BIN, ROOT, ffbench

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "srun", "sinfo")


def test_dry_run_batch_scripts(tmp_path):
    fig7 = os.path.join(ROOT, "configs", "sweeps", "fire-flyer-fig7.yaml")
    fake = tmp_path / "bin"
    fake.mkdir()
    for prog in ("hfreduce_gpu_bench", "nccl_allreduce_bench"):
        (fake / prog).write_text("#!/bin/sh\n")
        (fake / prog).chmod(0o755)
    res = ffbench("run", fig7, "--dry-run", "--output", str(tmp_path / "f.h5"), "--bin", str(fake))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.count("#!/bin/bash") == 8                       # one job per node count
    assert "#SBATCH --nodes=160" in out and "#SBATCH --nodes=2\n" in out
    assert out.count("#SBATCH --ntasks-per-node=8") == 8
    assert "#SBATCH --gpus-per-node=8" in out and "#SBATCH --exclusive" in out
    assert "#SBATCH --time=00:45:00" in out
    assert "srun --mpi=pmix -N 160 -n 1280 --ntasks-per-node=8" in out
    assert "-b 192937984 -e 192937984 -d float -o sum -n 100 -w 200" in out
    assert 'RESULTS=' in out and '-${SLURM_JOB_ID}.h5' in out and '--output "$RESULTS"' in out
    assert not os.path.exists(tmp_path / "f.h5")
    # Without the programs: every point is skipped with its reason, nothing to submit.
    empty = tmp_path / "empty"
    empty.mkdir()
    res = ffbench("run", fig7, "--dry-run", "--output", str(tmp_path / "f.h5"), "--bin", str(empty))
    assert "nothing to submit" in res.stdout and "hfreduce_gpu_bench is not built" in res.stdout


def test_mpirun_mode_and_storage_tmp(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("""
name: s
slurm: {launch: mpirun, overcommit: true, partition: debug, sbatch_args: ["--mem=1G"],
        setup: ["module load openmpi"]}
collectives:
  - {name: mpi, program: "true", ranks: 4, env: {NCCL_ALGO: Ring}}
storage:
  workloads: [seq]
  program: "true"
""")
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--dry-run", "--output",
                  str(tmp_path / "s.h5"), "--bin", "/bin")
    out = res.stdout
    assert res.returncode == 0, res.stderr
    assert "mpirun -np 4 --map-by ppr:4:node --oversubscribe -x NCCL_ALGO" in out
    assert "env NCCL_ALGO=Ring" in out
    assert "#SBATCH --partition=debug" in out and "#SBATCH --mem=1G" in out
    assert "module load openmpi" in out and "#SBATCH --overcommit" in out
    assert 'FFB_TMP=$(mktemp -d' in out and '"$FFB_TMP"' in out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {what}")


def _site_slurm():
    """Why this machine has a Slurm of its own (then no private daemons are started), or ""."""
    for conf in ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf"):
        if os.path.exists(conf):
            return f"{conf} exists"
    if os.environ.get("SLURM_CONF"):
        return f"SLURM_CONF={os.environ['SLURM_CONF']} is set"
    for daemon in ("slurmctld", "slurmd"):
        res = subprocess.run(["pgrep", "-a", "-x", daemon], capture_output=True, text=True)
        if any("pytest-of" not in line for line in res.stdout.splitlines()):
            return f"a {daemon} is running"
    return ""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    site = _site_slurm()
    if site:
        pytest.skip(f"this machine has its own Slurm ({site}): the tests start private daemons "
                    f"only where there is none")
    if os.geteuid() != 0:
        pytest.skip("needs root to start munged/slurmctld/slurmd")
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"Slurm/munge not installed ({', '.join(missing)} missing; apt-get install "
                    f"slurm-wlm munge)")
    if not os.path.exists(os.path.join(BIN, "mpi_allreduce_bench")):
        pytest.skip("mpi_allreduce_bench not built (FFB_BIN)")
    d = tmp_path_factory.mktemp("slurm")
    os.chmod(d, 0o755)
    # tmpfs: the job steps' PMIx directories stay in the test's own tree (and FirstJobId keeps
    # ids apart from any a killed earlier run left in /tmp/spmix_appdir_*).
    for sub in ("munge", "spool", "state", "log", "tmpfs"):
        (d / sub).mkdir()
    os.chmod(d / "munge", 0o711)
    key = d / "munge" / "key"
    key.write_bytes(os.urandom(128))
    os.chmod(key, 0o400)
    sock = d / "munge" / "sock"
    procs = []
    try:
        procs.append(subprocess.Popen(
            ["munged", "-F", "-f", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={d}/munge/pid", f"--log-file={d}/log/munged.log",
             f"--seed-file={d}/munge/seed"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait_for(sock.exists, 20, "munged")
        cpus = os.cpu_count() or 1
        conf = d / "slurm.conf"
        conf.write_text(f"""ClusterName=ffbtest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
TmpFS={d}/tmpfs
FirstJobId={1000 + os.getpid() % 100000}
MailProg=/bin/true
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmdSpoolDir={d}/spool
StateSaveLocation={d}/state
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory=1000
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        env = dict(os.environ, SLURM_CONF=str(conf))
        procs.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))

        def idle():
            r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True,
                               timeout=20)
            return r.returncode == 0 and r.stdout.strip().startswith("idle")
        _wait_for(idle, 60, "the Slurm node to become idle")
        yield {"SLURM_CONF": str(conf)}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=15)


SWEEP = """
name: slurmtest
compare: false
slurm: {time: "00:05:00", overcommit: true, launch: %s}
collectives:
  - name: mpi
    program: mpi_allreduce_bench
    ranks: [2]
    sizes: {min: 1K, max: 64K, factor: 8}
    iters: 2
    warmup: 1
    variants:
      - name: default
      - name: ring
        env: {OMPI_MCA_coll_tuned_use_dynamic_rules: 1, OMPI_MCA_coll_tuned_allreduce_algorithm: 4}
  - name: missing
    program: no_such_bench
"""


def test_sweep_through_slurm_wait(slurm, tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(SWEEP % "srun")
    out = tmp_path / "results" / "s.h5"
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--wait", "--wait-timeout", "150",
                  "--output", str(out), "--bin", BIN, env=slurm, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    assert "missing.r1: skipped: no_such_bench is not built" in text
    assert "submitted job" in text and "2 point(s) on 1 node(s) x 2 task(s)" in text
    assert "2 point(s) complete, 0 skipped, 0 failed" in text
    runs = h5io.read_runs(str(out))
    assert len(runs) == 2
    for r in runs:
        assert r.attrs["status"] == "complete" and int(r.attrs["nranks"]) == 2
        assert '"SLURM_JOB_ID"' in r.attrs["environment"]
        assert "collective" in r.tables and len(r.tables["collective"]["size"]) == 6
    labels = sorted(r.attrs["label"].split("@")[0] for r in runs)
    assert labels == ["mpi.default.r2", "mpi.ring.r2"]
    slurm_dir = tmp_path / "results" / "tmp" / "s" / "slurm"
    assert not [f for f in os.listdir(slurm_dir) if f.endswith(".h5")]  # job files merged, removed
    assert [f for f in os.listdir(slurm_dir) if f.endswith(".out")]     # job logs kept
    # Resume: nothing left to submit.
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--wait", "--output", str(out), "--bin",
                  BIN, env=slurm, timeout=120)
    assert "2 complete in" in res.stdout and "0 to submit in 0 job(s)" in res.stdout
    assert len(h5io.read_runs(str(out))) == 2


def test_mpirun_inside_allocation_and_later_collect(slurm, tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text((SWEEP % "mpirun").replace("      - name: ring\n", "").replace(
        "        env: {OMPI_MCA_coll_tuned_use_dynamic_rules: 1, "
        "OMPI_MCA_coll_tuned_allreduce_algorithm: 4}\n", ""))
    out = tmp_path / "m.h5"
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--output", str(out), "--bin", BIN,
                  env=slurm)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rerun with --wait" in res.stdout and not out.exists()
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--wait", "--wait-timeout", "150",
                  "--output", str(out), "--bin", BIN, env=slurm, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    # The job is collected by the rerun itself when it finished in between, else by the wait.
    collected = re.search(r"job \d+: mpi\.default\.r2: complete", res.stdout)
    assert "0 to submit" in res.stdout and ("1 point(s) complete" in res.stdout or collected)
    runs = h5io.read_runs(str(out))
    assert len(runs) == 1 and int(runs[0].attrs["nranks"]) == 2
    assert '"SLURM_JOB_ID"' in runs[0].attrs["environment"]


def test_collect_rejects_singleton_runs(tmp_path, capsys):
    """srun without working PMIx starts singletons: their nranks-1 runs are failed, not merged."""
    from types import SimpleNamespace
    from ffbench.launch import slurm as slurmmod
    work = tmp_path / "work"
    (work / "slurm").mkdir(parents=True)
    job_file = work / "slurm" / "n1x2-7.h5"
    for label, nranks in (("good.r2@0123456789ab", 2), ("bad.r2@0123456789ac", 1),
                          ("bad.r2@0123456789ac", 1)):
        attrs = h5io.provenance("mpi_allreduce_bench", "collective", ["x", label], label=label)
        attrs["nranks"] = nranks
        h5io.append_run(str(job_file), attrs, {"collective": {"size": ([1], "B")}})
    (work / "slurm" / "n1x2-7.status").write_text("0123456789ab 0 good.r2\n0123456789ac 0 bad.r2\n")
    state = {"7": {"group": "n1x2", "results": str(job_file),
                   "status": str(work / "slurm" / "n1x2-7.status"),
                   "log": str(work / "slurm" / "n1x2-7.out"),
                   "points": {"0123456789ab": "good.r2", "0123456789ac": "bad.r2"},
                   "ranks": {"0123456789ab": 2, "0123456789ac": 2}}}
    ctx = SimpleNamespace(output=str(tmp_path / "out.h5"), work=str(work))
    counts = slurmmod.collect(ctx, state, queued={})
    text = capsys.readouterr().out
    assert counts == {"complete": 1, "skipped": 0, "failed": 1}
    assert "bad.r2: failed: MPI world size 1, expected 2 tasks" in text
    runs = h5io.read_runs(ctx.output)
    assert [r.attrs["label"] for r in runs] == ["good.r2@0123456789ab"]
    assert not state and not job_file.exists()



def test_collect_fails_a_point_that_exited_0_without_a_run(tmp_path, capsys, monkeypatch):
    """srun can exit 0 when it could not launch the tasks: a point with status 0 but no run in the
    job's results file is failed, never complete."""
    from types import SimpleNamespace
    from ffbench.launch import slurm as slurmmod
    from ffbench.launch import slurm_jobs
    monkeypatch.setattr(slurm_jobs, "final_state", lambda job_id: ("COMPLETED", "0:0", "sacct"))
    work = tmp_path / "work"
    (work / "slurm").mkdir(parents=True)
    job_file = work / "slurm" / "n1x2-8.h5"
    label = "good.r2@0123456789ab"
    attrs = h5io.provenance("mpi_allreduce_bench", "collective", ["x", label], label=label)
    attrs["nranks"] = 2
    h5io.append_run(str(job_file), attrs, {"collective": {"size": ([1], "B")}})
    (work / "slurm" / "n1x2-8.status").write_text("0123456789ab 0 good.r2\n0123456789ac 0 lost.r2\n")
    state = {"8": {"group": "n1x2", "results": str(job_file),
                   "status": str(work / "slurm" / "n1x2-8.status"),
                   "log": str(work / "slurm" / "n1x2-8.out"),
                   "points": {"0123456789ab": "good.r2", "0123456789ac": "lost.r2"},
                   "ranks": {"0123456789ab": 2, "0123456789ac": 2}}}
    ctx = SimpleNamespace(output=str(tmp_path / "out.h5"), work=str(work))
    counts = slurmmod.collect(ctx, state, queued={})
    text = capsys.readouterr().out
    assert counts == {"complete": 1, "skipped": 0, "failed": 1}
    assert "lost.r2: failed: exited 0 but wrote no run" in text


SLOW_SWEEP = """
name: slowtest
compare: false
setup: ["echo ffbench-setup-line-ran"]
slurm: {time: "00:01:00", overcommit: true, exclusive: false, cpus_per_task: 1, cpu_bind: none}
collectives:
  - {name: slow, program: slow_bench, ranks: [1, 2]}
"""


def _squeue_logger(tmp_path):
    """A squeue on PATH that logs each call (time and arguments) and runs the real one."""
    real = shutil.which("squeue")
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    log = tmp_path / "squeue.log"
    (wrap / "squeue").write_text(f'#!/bin/sh\necho "$(date +%s.%N) $*" >> {log}\nexec {real} "$@"\n')
    (wrap / "squeue").chmod(0o755)
    return wrap, log


def test_timeout_and_cancel_are_reported(slurm, tmp_path):
    """Two jobs of a sweep: one hits its time limit, one is cancelled; both are reported by name,
    with the job id and the log; squeue is asked only about our jobs, at most every 5 s."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "slow_bench").write_text(  # answers ffbench's --check-args, then outlives its job
        '#!/bin/sh\ncase "$*" in *--check-args*) exit 0 ;; esac\nexec sleep 600\n')
    (bindir / "slow_bench").chmod(0o755)
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(SLOW_SWEEP)
    out = tmp_path / "results" / "slow.h5"
    wrap, log = _squeue_logger(tmp_path)
    env = dict(slurm, PATH=f"{wrap}:{os.environ['PATH']}")
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--output", str(out), "--bin",
                  str(bindir), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    jobs = re.findall(r"submitted job (\d+): \d+ point\(s\) on 1 node\(s\) x (\d) task", res.stdout)
    assert len(jobs) == 2, res.stdout
    cancel = [j for j, tasks in jobs if tasks == "2"][0]
    timeout = [j for j, tasks in jobs if tasks == "1"][0]
    script = (tmp_path / "results" / "tmp" / "slow" / "slurm" / "slowtest-n1x1.sbatch").read_text()
    assert "#SBATCH --cpus-per-task=1" in script and "--cpu-bind=none" in script
    assert "ffbench-setup-line-ran" in script
    subprocess.run(["scancel", cancel], env=env, check=True, timeout=30)
    res = ffbench("run", str(cfg), "--launcher", "slurm", "--wait", "--wait-timeout", "240",
                  "--output", str(out), "--bin", str(bindir), env=env, timeout=300)
    text = res.stdout
    assert res.returncode == 1, text + res.stderr
    assert re.search(rf"job {timeout}: TIMEOUT: hit its time limit .*; log \S+{timeout}\.out", text)
    assert re.search(rf"job {cancel}: CANCELLED: was cancelled .*; log \S+{cancel}\.out", text)
    assert "0 point(s) complete, 0 skipped, 2 failed" in text
    calls = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert calls and all("--me" in args and "-j" in args for _, args in calls)
    times = [float(t) for t, _ in calls]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Every squeue call of `ffbench run` is at least 5 s after the previous one.
    assert all(g >= 4.9 for g in gaps), gaps


def test_unshared_results_dir_refused(tmp_path, monkeypatch):
    """A results directory on a local file system while the partition has other nodes: refused
    before anything is submitted, with the reason."""
    from ffbench.launch import slurm_jobs
    monkeypatch.setattr(slurm_jobs, "partition_nodes", lambda partition=None: {"cn01", "cn02"})
    reason = slurm_jobs.unshared_dir_reason(str(tmp_path / "r.h5"))
    point, fstype = slurm_jobs.mount_of(str(tmp_path))
    if fstype.split(".")[0] in slurm_jobs.LOCAL_FS_TYPES:
        assert reason and "local to this host" in reason and "cn01" in reason
    else:
        assert reason is None
    monkeypatch.setattr(slurm_jobs, "partition_nodes", lambda partition=None: {"localhost"})
    assert slurm_jobs.unshared_dir_reason(str(tmp_path / "r.h5")) is None
