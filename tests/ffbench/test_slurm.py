"""The Slurm launcher: batch scripts (dry run, always) and a real single-node Slurm (munged,
slurmctld and slurmd started here with a generated config on private ports and a private munge
socket, stopped by pid afterwards) running a small sweep through `--launcher slurm --wait`."""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.environ.get("FFB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BIN = os.environ.get("FFB_BIN") or os.path.join(ROOT, "build", "bin")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from ffbenchlib import h5io  # noqa: E402

FFBENCH = os.path.join(ROOT, "scripts", "ffbench")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "srun", "sinfo")


def ffbench(*args, env=None, timeout=180):
    e = dict(os.environ)
    e.pop("FFB_BIN", None)
    e.update(env or {})
    return subprocess.run([sys.executable, FFBENCH] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=e)


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


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
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
    for sub in ("munge", "spool", "state", "log"):
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
    assert "0 to submit" in res.stdout and "1 point(s) complete" in res.stdout
    runs = h5io.read_runs(str(out))
    assert len(runs) == 1 and int(runs[0].attrs["nranks"]) == 2
    assert '"SLURM_JOB_ID"' in runs[0].attrs["environment"]


def test_collect_rejects_singleton_runs(tmp_path, capsys):
    """srun without working PMIx starts singletons: their nranks-1 runs are failed, not merged."""
    from types import SimpleNamespace
    from ffbenchlib import slurm as slurmmod
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
