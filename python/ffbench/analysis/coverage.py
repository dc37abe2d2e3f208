"""Which references a sweep can cover, decided from its plan alone (nothing runs).

Every planned point becomes pseudo-rows: the fields its results will carry that are known before
it runs (program, kind, backend, collective, ranks, nodes, ranks_per_node, device, gpus, size,
type, redop, placement, series; workload and phase for storage; model and compute for ddp_bench;
case for the storage ceiling). A point *covers* a reference when one of its rows satisfies the
reference's `match` (or, for a twin, one entry of its `needs`) and every condition on a field the
row has; conditions on fields known only after the run (file system, measured values, ...) are
assumed met. A reference is *coverable* by the config when every entry of its needs is satisfied
by some point: one entry for a raw reference (`match`), numerator and denominator for a
`collective_ratio`, each kind of run a twin draws from for a `normalised` one.
"""
import os
import tempfile
from typing import NamedTuple

from ffbench.analysis import compare
from ffbench.data import paths
from ffbench.data.config import parse_size
from ffbench.errors import ConfigError

BACKENDS = {"hfreduce_bench": "hfreduce", "hfreduce_gpu_bench": "hfreduce",
            "mpi_allreduce_bench": "mpi", "nccl_allreduce_bench": "nccl"}
GPU_PROGRAMS = ("hfreduce_gpu_bench", "nccl_allreduce_bench", "gemm_bench", "pcie_bench",
                "interference_bench")
# Programs on host buffers whatever the config requires (hfreduce_bench under `requires: [gpu]`
# still measures host memory: it cannot cover a GPU reference).
HOST_PROGRAMS = ("hfreduce_bench", "mpi_allreduce_bench", "membw_bench", "storage_bench",
                 "fio-crosscheck", "harness_overhead_bench", "reduce_kernels_bench")
# The `kind` attr each program writes (membw/gemm/pcie/interference_bench write "probe").
RUN_KINDS = {"storage_bench": "storage", "ddp_bench": "ddp", "fio-crosscheck": "crosscheck"}
STORAGE_PHASES = {"seq": ("write", "read"), "checkpoint": ("save", "restore"),
                  "kvcache": ("populate", "mixed"), "meta": ("create", "stat", "read", "delete")}
ALL_TYPES = ("float", "double", "half", "bfloat16", "int32", "int64", "uint8", "fp8_e4m3",
             "fp8_e5m2")
ALL_OPS = ("sum", "prod", "max", "min", "avg")
PLACEMENTS = ("out-of-place", "in-place")


class Coverage(NamedTuple):
    per_point: dict     # point name -> ids of coverable references the point contributes to
    coverable: list     # ids of the references the config can cover, in the reference file's order
    total: int          # references in the file


def _base_row(point):
    options = point.meta.get("options") or {}
    gpu = point.program in GPU_PROGRAMS or (point.program not in HOST_PROGRAMS
                                            and "gpu" in point.requires)
    if point.program == "ddp_bench":
        compute = str(options.get("compute", "auto"))
        gpu = compute == "cublas" or (compute == "auto" and "gpu" in point.requires)
    row = {"program": point.program, "ranks": point.ranks, "nodes": point.nodes,
           "ranks_per_node": point.ranks_per_node, "device": "gpu" if gpu else "host",
           "gpus": point.ranks if gpu else 0}
    if point.meta.get("series"):
        row["series"] = point.meta["series"]
    row["kind"] = RUN_KINDS.get(point.program, "collective" if point.kind == "collective"
                                else "probe")
    return row


def _expand(values, every):
    out = []
    for v in values:
        out += list(every) if v == "all" else [v]
    return out


def scale_count(point):
    """What weak scaling counts for a point: HFReduce nodes (pseudo-nodes of --ranks-per-node
    included) or nodes for collectives, ranks for ddp_bench; None for the rest."""
    options = point.meta.get("options") or {}
    if point.program == "ddp_bench":
        return point.ranks
    if point.kind != "collective":
        return None
    rpn = options.get("ranks-per-node", 0)
    if BACKENDS.get(point.program) == "hfreduce" and isinstance(rpn, int) and rpn > 0:
        return max(point.ranks // rpn, point.nodes)
    return point.nodes


def _scales(points):
    """scale of each point: its count over the smallest one of its series (collectives: the
    smallest multi-node count; one node has no scale)."""
    counts = {}
    for p in points:
        n = scale_count(p)
        if n is not None and (p.kind != "collective" or n >= 2):
            counts.setdefault((p.program, p.meta.get("series")), []).append(n)
    out = {}
    for p in points:
        n = scale_count(p)
        group = counts.get((p.program, p.meta.get("series")))
        if group and n in group:
            out[p.name] = n / min(group) if n % min(group) else n // min(group)
    return out


def _same_series(a, b):
    return (a.program, a.meta.get("series")) == (b.program, b.meta.get("series"))


def _collective_rows(point, base):
    options = point.meta.get("options") or {}
    count = scale_count(point)
    base = dict(base, collective="allreduce", zones=1,
                nvlink=str(options.get("nvlink-pairs", "off")) in ("auto", "force"),
                pseudo_nodes=bool(count and count > point.nodes))
    if point.program in BACKENDS:
        base["backend"] = BACKENDS[point.program]
    rows = []
    for size in point.meta.get("sizes") or [None]:
        for dtype in _expand(point.meta.get("types") or ["float"], ALL_TYPES):
            for op in _expand(point.meta.get("ops") or ["sum"], ALL_OPS):
                for placement in PLACEMENTS:
                    row = dict(base, type=dtype, redop=op, placement=placement)
                    if size is not None:
                        row["size"] = size
                    rows.append(row)
    return rows


def storage_phases(workload, options):
    """The phases a storage_bench workload writes rows for, with these options."""
    if workload == "loader":
        epochs = options.get("epochs", 1)
        epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 1
        return ("build",) + tuple(f"epoch{i}" for i in range(epochs))
    phases = STORAGE_PHASES.get(workload, ())
    if workload in ("seq", "meta") and "phases" in options:
        given = options["phases"]
        given = given if isinstance(given, list) else str(given).split(",")
        phases = tuple(p for p in phases if p in given or p == "create")
    if workload == "checkpoint" and options.get("no-restore") is True:
        phases = ("save",)
    return phases


def _transfer(options):
    try:
        return parse_size(options.get("transfer", options.get("t", "1M")))
    except ConfigError:
        return None


def filesystem(path):
    """The file system type of the mount holding path (/proc/mounts: ext4, xfs, nfs4, tmpfs,
    fuse.3fs, ...), as storage_bench records it in fs_type; None when unknown."""
    path = os.path.realpath(tempfile_dir() if path in (None, "{dir}") else path)
    if not os.path.exists(path):  # made later, maybe on another machine's mount
        return None
    best, fstype = "", None
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        return None
    return fstype


def tempfile_dir():
    return tempfile.gettempdir()


def _with_filesystem(point, row):
    fs = filesystem(point.meta.get("dir"))
    return dict(row, filesystem=fs) if fs else row


def _storage_rows(point, base):
    workload = point.meta.get("workload")
    options = point.meta.get("options") or {}
    base = _with_filesystem(point, dict(base, workload=workload, clients=point.ranks))
    if workload == "seq":  # storage_bench seq: -t 1M, --pattern seq unless given
        base.update(pattern=str(options.get("pattern", "seq")))
        if _transfer(options) is not None:
            base["transfer"] = _transfer(options)
    return [dict(base, phase=p) for p in storage_phases(workload, options)]


def _crosscheck_rows(point, base):
    """fio-crosscheck: one crosscheck row per case, and the storage_bench seq runs beside fio."""
    rows = []
    base = _with_filesystem(point, base)
    for case in point.meta.get("cases") or []:
        rand = case.startswith("rand_")
        phase = "write" if "_write_" in case else "read"
        seq = dict(workload="seq", pattern="random" if rand else "seq",
                   transfer=4096 if rand else 1 << 20)
        rows.append(dict(base, case=case, tool=point.meta.get("tool", "fio"), **seq,
                         phase="randread" if rand else phase, odirect=case.endswith("direct")
                         or rand))
        rows.append(dict(base, program="storage_bench", kind="storage", clients=1, **seq,
                         phase=phase))
    return rows


def _probe_rows(point, base):
    options = point.meta.get("options") or {}
    if point.program != "ddp_bench":
        return [base]
    model = str(options.get("model", "vgg16"))
    model = model.rsplit("/", 1)[-1].removesuffix(".yaml")
    base = dict(base, model=model, compute=str(options.get("compute", "auto")))
    if isinstance(options.get("scale"), (int, float)) and not isinstance(options["scale"], bool):
        base["param_scale"] = options["scale"]
    if isinstance(options.get("batch"), int) and options["batch"] > 0:
        base["batch_per_gpu"] = options["batch"]
    backends = options.get("backend", ["hfreduce", "mpi", "none"])
    backends = backends if isinstance(backends, list) else str(backends).split(",")
    return [dict(base, backend=str(b)) for b in backends]


def point_rows(point):
    """The pseudo-rows of a planned point: what its results will say, as far as the plan knows."""
    base = _base_row(point)
    if point.kind == "collective":
        return _collective_rows(point, base)
    if point.kind == "storage":
        return _storage_rows(point, base)
    if point.kind == "crosscheck":
        return _crosscheck_rows(point, base)
    return _probe_rows(point, base)


def needs_of(ref):
    """The kinds of run a reference draws from, each a mapping its rows must satisfy: a ratio's
    numerator and denominator; a twin's needs plus its match (the rows its value is read from);
    else the match."""
    match = dict(ref.match or {})
    if ref.kind == "collective_ratio":
        return [match, {**match, **(getattr(ref, "denominator", None) or {})}]
    if ref.kind != "normalised":
        return [match]
    needs = [dict(n or {}) for n in (getattr(ref, "needs", None) or [])]
    if match and match not in needs:
        needs.append(match)
    return needs or [match]


def _row_of_kind(kind, row):
    """Is a row of the kind a raw reference takes (compare.rows_for)?"""
    if kind in ("collective", "collective_ratio"):
        return row["kind"] == "collective"
    if kind == "ceiling":  # host memory bandwidth: membw_bench, else storage_bench's probe
        return row["program"] in ("membw_bench", "storage_bench")
    return row["kind"] == kind  # storage and generic kinds: runs whose kind attr equals it


def _entry_kinds(ref, entry, by_id):
    """The raw kinds whose rows one needs entry draws from: the reference's own kind, for a twin
    the kinds of the references it carries (twin_of) unless the entry names a kind or program;
    None when nothing says."""
    if ref.kind != "normalised":
        return {ref.kind}
    if "kind" in entry or "program" in entry:
        return None
    kinds = {by_id[r].kind for r in getattr(ref, "twin_of", None) or [] if r in by_id}
    return kinds - {"normalised"} or None


def satisfies(entry, conditions, row):
    """Does a pseudo-row satisfy one needs entry (every key, as compare matches) and the
    conditions on the keys it knows?"""
    if compare.mismatches(entry, row):
        return False
    known = {k: v for k, v in (conditions or {}).items() if k in row}
    if row.get("scale") == 1 and "scale" in known and any(
            compare.cond_ok(known["scale"], s) for s in row.get("series_scales", ())):
        del known["scale"]  # the baseline of every scale its series reaches
    return not compare.mismatches(known, row)


def _satisfied_entries(ref, rows, by_id):
    got = set()
    for i, entry in enumerate(needs_of(ref)):
        kinds = _entry_kinds(ref, entry, by_id)
        if any((kinds is None or any(_row_of_kind(k, row) for k in kinds))
               and satisfies(entry, ref.conditions, row) for row in rows):
            got.add(i)
    return got


def plan(points, refs):
    """Coverage of planned points against references (compare.load_reference)."""
    scales = _scales(points)
    by_name = {p.name: p for p in points}
    rows = {}
    for p in points:
        rows[p.name] = point_rows(p)
        if scale_count(p) is not None:  # None: one node, no weak scaling (a condition fails)
            series = {v for q, v in scales.items() if _same_series(p, by_name[q])}
            rows[p.name] = [dict(r, scale=scales.get(p.name), series_scales=series)
                            for r in rows[p.name]]
    hits = {p.name: {} for p in points}     # point -> ref id -> needs entries it satisfies
    by_id = {r.id: r for r in refs}
    for ref in refs:
        for p in points:
            got = _satisfied_entries(ref, rows[p.name], by_id)
            if got:
                hits[p.name][ref.id] = got
    coverable = []
    for ref in refs:
        got = set()
        for p in points:
            got |= hits[p.name].get(ref.id, set())
        if len(got) == len(needs_of(ref)):
            coverable.append(ref.id)
    ok = set(coverable)
    per_point = {p.name: [r for r in hits[p.name] if r in ok] for p in points}
    return Coverage(per_point, coverable, len(refs))


def reference_path(sweep, cli_reference=None):
    """The references a config names: --reference, else its compare: key (None for false)."""
    ref = cli_reference or (sweep.compare if sweep.compare else None)
    if not ref or ref.endswith((".h5", ".hdf5")):
        return None
    return paths.config_path(ref)


def ids_text(ids):
    return ", ".join(ids) if ids else "-"


def summary_lines(config_path, ref_path, cov):
    """The closing lines of a dry run: what the config can cover, and the warning when nothing."""
    lines = [f"# coverable: {ids_text(cov.coverable)} ({len(cov.coverable)} of {cov.total} "
             f"references in {ref_path})"]
    if not cov.coverable:
        lines.append(warning_line(config_path, ref_path, cov))
    return lines


def warning_line(config_path, ref_path, cov):
    return f"warning: {config_path} can cover none of the {cov.total} references in {ref_path}"
