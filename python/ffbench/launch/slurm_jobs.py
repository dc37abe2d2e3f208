"""Talking to a shared Slurm politely: only our own jobs, polled at most every 5 s with back-off,
and each job's final state read from accounting (`sacct`) where the site has it, else from
`scontrol show job` while slurmctld still remembers the job (MinJobAge, 300 s by default)."""
import os
import socket
import subprocess
import time

POLL_FIRST_S = 5.0   # never poll more often than this
POLL_MAX_S = 60.0    # back-off ceiling while nothing changes
POLL_BACKOFF = 1.5

# Final states that need a word to the user: what happened and what to change.
END_STATES = {
    "COMPLETED": "completed",
    "TIMEOUT": "hit its time limit (raise slurm: {time: ...})",
    "OUT_OF_MEMORY": "ran out of memory (ask for more with slurm: {sbatch_args: [--mem=...]})",
    "NODE_FAIL": "lost a node (a node failed; resubmit, the finished points are kept)",
    "CANCELLED": "was cancelled (scancel, or by an administrator)",
    "FAILED": "failed (the batch script exited non-zero)",
    "PREEMPTED": "was preempted (resubmit; the finished points are kept)",
    "BOOT_FAIL": "could not boot its nodes",
    "DEADLINE": "missed its deadline",
}


class Poller:
    """Delays between squeue calls: POLL_FIRST_S, growing by POLL_BACKOFF while nothing changes,
    at most POLL_MAX_S; back to POLL_FIRST_S after a change."""

    def __init__(self, first=POLL_FIRST_S, ceiling=POLL_MAX_S, factor=POLL_BACKOFF):
        self.first, self.ceiling, self.factor = max(first, POLL_FIRST_S), ceiling, factor
        self.delay = self.first

    def next_delay(self, changed):
        if changed:
            self.delay = self.first
        else:
            self.delay = min(self.ceiling, self.delay * self.factor)
        return self.delay


class JobWatch:
    """Our jobs in the queue, asked no more often than the Poller allows: every call of
    `queued()` after the first waits until its delay since the previous squeue has passed."""

    def __init__(self, poller=None, clock=time.monotonic, sleep=time.sleep):
        self.poller = poller or Poller()
        self.clock, self.sleep = clock, sleep
        self.last = None
        self.last_answer = None

    def queued(self, job_ids):
        if not job_ids:
            return {}
        if self.last is not None:
            wait = self.poller.delay - (self.clock() - self.last)
            if wait > 0:
                self.sleep(wait)
        answer = own_jobs(job_ids)
        self.last = self.clock()
        self.poller.next_delay(changed=answer != self.last_answer)
        self.last_answer = answer
        return answer


class SlurmQueryError(Exception):
    """squeue failed for a reason other than 'these jobs are gone'."""


def _run(cmd, timeout=60):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SlurmQueryError(f"{cmd[0]} failed ({exc})") from None


def own_jobs(job_ids):
    """{job id: state} of those of `job_ids` that are still in the queue, asking squeue about
    our own jobs only (`squeue --me -j IDS`), never about the whole cluster."""
    ids = sorted({str(j) for j in job_ids}, key=int)
    if not ids:
        return {}
    res = _run(["squeue", "--me", "-h", "-j", ",".join(ids), "-o", "%i %T"])
    if res.returncode != 0:
        # Every id already purged from slurmctld: squeue says so and exits 1.
        if "Invalid job id" in res.stderr:
            return {}
        raise SlurmQueryError(f"squeue failed: {res.stderr.strip()}")
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ids:
            out[parts[0]] = parts[1]
    return out


def _parse_state(text):
    """'CANCELLED by 0' -> 'CANCELLED'; '' -> ''."""
    return text.split()[0].rstrip("+") if text.strip() else ""


def _from_sacct(job_id):
    res = _run(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State,ExitCode"])
    if res.returncode != 0:
        return None  # no accounting on this cluster (or sacct is missing)
    for line in res.stdout.splitlines():
        state, _, exit_code = line.partition("|")
        if _parse_state(state):
            return _parse_state(state), exit_code.strip()
    return None


def _from_scontrol(job_id):
    res = _run(["scontrol", "show", "job", "-o", str(job_id)])
    if res.returncode != 0:
        return None
    fields = dict(f.split("=", 1) for f in res.stdout.split() if "=" in f)
    state = _parse_state(fields.get("JobState", ""))
    return (state, fields.get("ExitCode", "")) if state else None


def final_state(job_id):
    """(STATE, exit code text, source) of a job that left the queue: source is sacct, scontrol or
    'unknown' (neither accounting nor slurmctld knows the job any more)."""
    for source, query in (("sacct", _from_sacct), ("scontrol", _from_scontrol)):
        try:
            got = query(job_id)
        except SlurmQueryError:
            got = None
        if got:
            return got[0], got[1], source
    return "UNKNOWN", "", "unknown"


def describe_end(job_id, state, log):
    """One line for a job that ended in `state` (empty for a plain COMPLETED)."""
    if state == "COMPLETED":
        return ""
    meaning = END_STATES.get(state, "ended")
    if state == "UNKNOWN":
        meaning = "ended; its final state is unknown (no accounting, and slurmctld forgot it)"
    return f"  job {job_id}: {state}: {meaning}; log {log}"


# File systems a compute node cannot see from another host. Anything else (nfs, lustre, gpfs,
# beegfs, ceph, fuse.* such as 3FS, wekafs, ...) is taken as shared: the check refuses only what
# is known to be local, so a site's exotic shared file system is never refused.
LOCAL_FS_TYPES = {"tmpfs", "ramfs", "ext2", "ext3", "ext4", "xfs", "btrfs", "overlay", "zfs",
                  "f2fs", "vfat", "exfat", "devtmpfs", "squashfs"}


def mount_of(path, mounts_file="/proc/mounts"):
    """(mount point, fs type) holding `path` (the longest mount point that prefixes it)."""
    real = os.path.realpath(path)
    best = ("/", "")
    try:
        with open(mounts_file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best[0]):
                    best = (point, parts[2])
    except OSError:
        return best
    return best


def partition_nodes(partition=None):
    """Node names of the partition (the default partition when None) as sinfo lists them."""
    cmd = ["sinfo", "-h", "-N", "-o", "%N"] + (["-p", partition] if partition else [])
    try:
        res = _run(cmd, timeout=30)
    except SlurmQueryError:
        return set()
    return {n.strip() for n in res.stdout.split() if n.strip()} if res.returncode == 0 else set()


def _this_host_names():
    full = socket.gethostname()
    return {full, full.split(".")[0], "localhost"}


def unshared_dir_reason(path, partition=None):
    """Why the jobs could not write `path` (its directory, created or not) from their nodes, or
    None when it is on a shared file system, or every node of the partition is this host."""
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    point, fstype = mount_of(probe or "/")
    if fstype.split(".")[0] not in LOCAL_FS_TYPES:
        return None
    nodes = partition_nodes(partition)
    others = sorted(nodes - _this_host_names())
    if not others:
        return None
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return (f"{path} is on {fstype} (mounted at {point}), local to this host, and the jobs run on "
            f"other nodes ({shown}): they could not write their results there. Give --output on "
            f"a file system every node mounts (home, project or scratch space on NFS, Lustre, "
            f"GPFS, BeeGFS, CephFS), or set slurm: {{shared_dir_check: false}} if it is shared")
