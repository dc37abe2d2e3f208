"""Sweep configs (configs/sweeps/*.yaml, format in configs/sweeps/README.md) expanded into points.

A point is one program invocation: program, ranks, nodes, ranks per node, arguments, environment.
Each point has a stable key (a hash of program + arguments + launcher + environment + shape) that
`ffbench run` stores in the run's `label` attr as NAME@KEY, so a rerun skips complete points.
Every error names the file, the key path and what was expected, in one line (ConfigError).
"""
import hashlib
import itertools
import json
import os
import re
from typing import NamedTuple

from ffbench.data.yamlfile import load_yaml
from ffbench.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
PROGRAM_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LAUNCHERS = ("local", "slurm", "emu")
REQUIREMENTS = ("gpu",)
STORAGE_WORKLOADS = ("seq", "loader", "checkpoint", "kvcache", "meta")
# scripts/fio-crosscheck's cases (CASES of python/ffbench/tools/fio_crosscheck.py;
# tests/ffbench/test_config.py checks they agree).
CEILING_CASES = ("seq_write_buffered", "seq_read_buffered", "seq_write_direct", "seq_read_direct",
                 "rand_read_4k_qd32")
CEILING_TOOLS = ("fio",)
COLLECTIVE_TYPES = ("float", "double", "half", "bfloat16", "int32", "int64", "uint8", "fp8_e4m3",
                    "fp8_e5m2", "all")
COLLECTIVE_OPS = ("sum", "prod", "max", "min", "avg", "all")
# Flags ffbench sets itself: a config may not pass them through `options`.
RESERVED_OPTIONS = ("output", "label", "o", "b", "e", "f", "i", "n", "w", "c", "d", "a", "z", "T",
                    "minbytes", "maxbytes", "stepfactor", "stepbytes", "iters", "warmup_iters",
                    "check", "datatype", "op", "average", "blocking", "timeout", "dir", "config")

TOP_KEYS = {
    "name": "sweep name used in labels and Slurm job names (letters, digits, . _ - = +)",
    "description": "free text",
    "output": "default results file (relative to the current directory); --output wins",
    "launcher": "default launcher: local, slurm or emu; --launcher wins",
    "bin": "directory of the programs (default: $FFB_BIN, else build/bin of the repository)",
    "timeout": "seconds one point may run before it is killed (default 900)",
    "env": "environment for every point (mapping NAME: value)",
    "mpirun_args": "extra mpirun arguments for every point (list)",
    "slurm": "Slurm settings (mapping, see README)",
    "setup": "shell lines every batch script runs first, e.g. module load lines (list)",
    "emu": "emulated cluster settings (mapping: name)",
    "collectives": "list of collective benchmarks",
    "storage": "storage workloads (mapping with workloads: [...])",
    "probes": "list of probes (host memory bandwidth, ...)",
    "compare": "reference file the run compares against at the end, or false",
}
SHAPE_KEYS = ("ranks", "nodes", "ranks_per_node")
COMMON_ENTRY_KEYS = ("name", "program", "ranks", "nodes", "ranks_per_node", "options", "sweep",
                     "env", "variants", "requires", "launchers", "timeout", "mpi")
COLLECTIVE_KEYS = COMMON_ENTRY_KEYS + ("sizes", "types", "ops", "iters", "warmup", "check",
                                       "average", "blocking", "op_timeout")
STORAGE_KEYS = ("dir", "program", "ranks", "nodes", "ranks_per_node", "options", "sweep", "env",
                "requires", "launchers", "timeout", "workloads", "ceiling")
CEILING_KEYS = ("name", "tool", "size", "runs", "settle", "cases", "tolerance", "dir", "timeout")
WORKLOAD_KEYS = ("workload", "name", "dir", "ranks", "nodes", "ranks_per_node", "options", "sweep",
                 "env", "variants", "requires", "launchers", "timeout")
SLURM_KEYS = ("partition", "account", "time", "exclusive", "gpus_per_node", "launch", "overcommit",
              "sbatch_args", "srun_args", "setup", "job_name", "cpus_per_task", "cpu_bind",
              "gpu_bind", "shared_dir_check")
EMU_KEYS = ("name",)
VARIANT_KEYS = ("name", "env", "options", "mpirun_args")


# The one size rule of the suite, the same as the C++ ffb::parse_size (common/src/sizes.cpp): a
# whole byte count, then an optional binary suffix K, M, G or T (either case), optionally spelt
# KiB or KB; a plain B is bytes. No fractions, no spaces.
_SIZE_SHIFTS = {"": 0, "b": 0, "k": 10, "m": 20, "g": 30, "t": 40}
_SIZE_RE = re.compile(r"^([0-9]+)(.*)$", re.DOTALL)


def _size_suffix_shift(suffix):
    """The power of two a suffix stands for, or None; mirrors ffb::parse_size's suffix rule."""
    if suffix.endswith(("iB", "ib")):
        suffix = suffix[:-2]
    elif len(suffix) == 2 and suffix[1] in "Bb":
        suffix = suffix[:-1]
    if suffix in ("B", "b", "") or (len(suffix) == 1 and suffix.lower() in "kmgt"):
        return _SIZE_SHIFTS[suffix.lower()]
    return None


def parse_size(value, where="size", error=ConfigError):
    """'1K' / '64M' / '184MiB' / '4KB' / 1024 -> bytes, by the C++ programs' rule; anything else
    is one `error` line naming `where` (the flag or key), the value and the fix."""
    if isinstance(value, bool):
        raise error(f"{where}: expected a size like 1K, 64M or 1024, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise error(f"{where}: expected a non-negative size, got {value}")
        return value
    m = _SIZE_RE.match(str(value))
    shift = _size_suffix_shift(m.group(2)) if m else None
    if shift is None:
        if re.match(r"^[0-9]*\.[0-9]+", str(value)):
            raise error(f"{where}: {value!r} is not a whole number of bytes; give whole bytes or "
                        f"a smaller unit, e.g. 512K for half a MiB")
        raise error(f"{where}: expected a size like 1K, 64M or 1024 (binary suffixes), "
                    f"got {value!r}")
    return int(m.group(1)) << shift


def format_size(n):
    for suffix, mult in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{suffix}"
    return str(n)


class Point:
    """One program invocation of a sweep."""

    def __init__(self, name, kind, program, ranks, nodes, ranks_per_node, args, env, requires=(),
                 launchers=None, timeout=900, mpi=True, mpirun_args=(), storage_tmp=False,
                 meta=None, script=False, tools=(), uses=()):
        self.name = name
        self.kind = kind
        self.program = program
        self.ranks = ranks
        self.nodes = nodes
        self.ranks_per_node = ranks_per_node
        self.args = list(args)          # may contain the placeholder {dir}
        self.env = dict(env)
        self.requires = tuple(requires)
        self.launchers = tuple(launchers) if launchers else None
        self.timeout = timeout
        self.mpi = mpi
        self.mpirun_args = list(mpirun_args)
        self.storage_tmp = storage_tmp  # {dir} is a fresh temporary directory
        self.meta = meta or {}          # series, section, options, sizes, ... (not in the key)
        self.script = script            # the program is a script in scripts/, not in the bin dir
        self.tools = tuple(tools)       # commands it needs on PATH (e.g. fio)
        self.uses = tuple(uses)         # other programs of the bin dir it runs ({bin}/NAME)

    def key(self, launcher):
        ident = {"program": self.program, "args": self.args, "launcher": launcher,
                 "env": self.env, "ranks": self.ranks, "nodes": self.nodes,
                 "ranks_per_node": self.ranks_per_node, "mpi": self.mpi,
                 "mpirun_args": self.mpirun_args}
        text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def label(self, launcher):
        return f"{self.name}@{self.key(launcher)}"

    def __repr__(self):
        return f"Point({self.name}, {self.program}, ranks={self.ranks}, nodes={self.nodes})"


def key_of_label(label):
    """The sweep key in a run's label (NAME@KEY), or None for labels ffbench did not write."""
    if not isinstance(label, str) or "@" not in label:
        return None
    key = label.rsplit("@", 1)[1]
    return key if re.fullmatch(r"[0-9a-f]{12}", key) else None


def name_of_label(label):
    if not isinstance(label, str) or "@" not in label:
        return label or ""
    return label.rsplit("@", 1)[0]


class Sweep:
    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.name = data.get("name") or os.path.splitext(os.path.basename(path))[0]
        self.output = data.get("output")
        self.launcher = data.get("launcher", "local")
        self.bin = data.get("bin")
        self.timeout = data.get("timeout", 900)
        self.env = data.get("env") or {}
        self.mpirun_args = data.get("mpirun_args") or []
        self.slurm = data.get("slurm") or {}
        self.setup = data.get("setup") or []
        self.emu = data.get("emu") or {}
        self.compare = data.get("compare", "configs/reference/fire-flyer-2.yaml")
        self.points = []


def _check_slurm(chk, slurm):
    """The slurm: section (config keys as sbatch/srun spell them, with _ for -)."""
    chk.mapping(slurm, "slurm", SLURM_KEYS)
    if "launch" in slurm and slurm["launch"] not in ("srun", "mpirun"):
        chk.fail("slurm.launch", "srun or mpirun", slurm["launch"])
    for k in ("gpus_per_node", "cpus_per_task"):
        if k in slurm:
            chk.integer(slurm[k], f"slurm.{k}", 0 if k == "gpus_per_node" else 1)
    if "time" in slurm and not re.fullmatch(r"(\d+-)?\d+(:\d\d){0,2}", str(slurm["time"])):
        chk.fail("slurm.time", "a Slurm time limit such as 00:30:00 or 1-00:00:00", slurm["time"])
    for k in ("exclusive", "overcommit", "shared_dir_check"):
        if k in slurm and not isinstance(slurm[k], bool):
            chk.fail(f"slurm.{k}", "true or false", slurm[k])
    for k in ("cpu_bind", "gpu_bind"):
        if k in slurm and not (isinstance(slurm[k], str) and re.fullmatch(r"[\w:,.=+-]+", slurm[k])):
            chk.fail(f"slurm.{k}", f"a --{k.replace('_', '-')} value as srun takes it (none, cores, "
                     "map_cpu:0,1, closest, ...)", slurm[k])
    if slurm.get("launch") == "mpirun":
        for k in ("cpu_bind", "gpu_bind"):
            if k in slurm:
                chk.fail(f"slurm.{k}", "used with launch: srun only (with launch: mpirun give "
                         "mpirun_args such as [--bind-to, core])", slurm[k])
    for k in ("sbatch_args", "srun_args", "setup"):
        if k in slurm:
            slurm[k] = chk.str_list(slurm[k], f"slurm.{k}")


class _Checker:
    """Validation helpers that name the file and the key path in every message."""

    def __init__(self, path):
        self.path = path

    def fail(self, where, expected, got=None, has_got=True):
        tail = f", got {got!r}" if has_got else ""
        raise ConfigError(f"{self.path}: key '{where}': expected {expected}{tail}")

    def mapping(self, value, where, allowed=None):
        if not isinstance(value, dict):
            self.fail(where, "a mapping (key: value lines)", value)
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise ConfigError(f"{self.path}: unknown key '{where}.{k}'; expected one of "
                                      f"{', '.join(allowed)}")
        return value

    def seq(self, value, where):
        if not isinstance(value, list):
            self.fail(where, "a list ([a, b] or '- a' lines)", value)
        return value

    def int_list(self, value, where, minimum=1):
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(where, "at least one integer", value)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                self.fail(where, f"an integer >= {minimum} or a list of them", value)
        return items

    def integer(self, value, where, minimum=None, choices=None):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, "an integer", value)
        if minimum is not None and value < minimum:
            self.fail(where, f"an integer >= {minimum}", value)
        if choices is not None and value not in choices:
            self.fail(where, f"one of {', '.join(map(str, choices))}", value)
        return value

    def number(self, value, where, positive=True):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and value <= 0):
            self.fail(where, "a positive number" if positive else "a number", value)
        return value

    def name(self, value, where):
        if not isinstance(value, str) or not NAME_RE.match(value):
            self.fail(where, "a name of letters, digits and . _ - = + (no spaces)", value)
        return value

    def env(self, value, where):
        self.mapping(value, where)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not ENV_RE.match(k):
                self.fail(f"{where}", "environment variable names (letters, digits, _)", k)
            if isinstance(v, (dict, list)) or v is None:
                self.fail(f"{where}.{k}", "a scalar value (string or number)", v)
            out[k] = str(int(v)) if isinstance(v, bool) else str(v)
        return out

    def str_list(self, value, where):
        items = value if isinstance(value, list) else [value]
        for v in items:
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                self.fail(where, "a string or a list of strings", value)
        return [str(v) for v in items]

    def options(self, value, where):
        """Program options: {long-name: value}; true -> --flag, false -> omitted."""
        self.mapping(value, where)
        for k, v in value.items():
            if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", k):
                self.fail(where, "option names without dashes, e.g. 'chunk-size'", k)
            if k in RESERVED_OPTIONS:
                raise ConfigError(f"{self.path}: key '{where}.{k}': ffbench sets this option "
                                  f"itself; use the sweep keys (sizes, types, ops, iters, warmup, "
                                  f"check, dir, ...) instead")
            if isinstance(v, dict) or v is None:
                self.fail(f"{where}.{k}", "a scalar or a list of scalars", v)
        return value


def _option_args(options):
    args = []
    for k, v in options.items():
        if v is True:
            args.append(f"--{k}")
        elif v is False:
            continue
        elif isinstance(v, list):
            args += [f"--{k}", ",".join(str(x) for x in v)]
        else:
            args += [f"--{k}", str(v)]
    return args


def _sweep_axes(chk, value, where):
    """sweep: {option: [v1, v2]} -> list of option dicts (cartesian product), [{}] when empty."""
    if value is None:
        return [{}]
    chk.options(value, where)
    keys = list(value)
    lists = []
    for k in keys:
        v = value[k]
        lists.append(v if isinstance(v, list) and v else [v])
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def _shapes(chk, entry, where, defaults=None):
    """ranks / nodes / ranks_per_node -> list of (ranks, nodes, ranks_per_node)."""
    defaults = defaults or {}
    ranks = entry.get("ranks", defaults.get("ranks"))
    nodes = entry.get("nodes", defaults.get("nodes"))
    rpn = entry.get("ranks_per_node", defaults.get("ranks_per_node"))
    shapes = []
    if nodes is None and rpn is None:
        for r in chk.int_list(1 if ranks is None else ranks, f"{where}.ranks"):
            shapes.append((r, 1, r))
        return shapes
    node_list = chk.int_list(1 if nodes is None else nodes, f"{where}.nodes")
    if rpn is None:
        if ranks is None:
            chk.fail(f"{where}.ranks_per_node", "ranks_per_node (or ranks) when nodes is given",
                     None, has_got=False)
        for n in node_list:
            for r in chk.int_list(ranks, f"{where}.ranks"):
                if r % n:
                    chk.fail(f"{where}.ranks", f"a multiple of nodes ({n}) so every node gets the "
                             f"same number of ranks", r)
                shapes.append((r, n, r // n))
        return shapes
    for n in node_list:
        for p in chk.int_list(rpn, f"{where}.ranks_per_node"):
            if ranks is not None and n * p not in chk.int_list(ranks, f"{where}.ranks"):
                continue
            shapes.append((n * p, n, p))
    if not shapes:
        chk.fail(f"{where}.ranks", "a value equal to nodes x ranks_per_node", ranks)
    return shapes


def _size_specs(chk, value, where):
    """sizes -> list of (min, max, factor, step) specs, one program invocation each."""
    if value is None:
        value = {"min": "32M", "max": "32M"}
    items = value if isinstance(value, list) else [value]
    specs = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]" if isinstance(value, list) else where
        if isinstance(item, dict):
            chk.mapping(item, w, ("min", "max", "factor", "step"))
            if "min" not in item:
                chk.fail(f"{w}.min", "the smallest size, e.g. min: 1K", None, has_got=False)
            lo = parse_size(item["min"], f"{chk.path}: key '{w}.min'")
            hi = parse_size(item.get("max", item["min"]), f"{chk.path}: key '{w}.max'")
            if hi < lo:
                chk.fail(f"{w}.max", f"a size >= min ({format_size(lo)})", item.get("max"))
            factor = item.get("factor")
            step = item.get("step")
            if factor is not None and step is not None:
                chk.fail(w, "either factor or step, not both", item)
            if factor is not None:
                chk.number(factor, f"{w}.factor")
                if factor <= 1 and hi > lo:
                    chk.fail(f"{w}.factor", "a number > 1", factor)
            if step is not None:
                step = parse_size(step, f"{chk.path}: key '{w}.step'")
                if step <= 0:
                    chk.fail(f"{w}.step", "a positive size", item.get("step"))
            if factor is None and step is None:
                factor = 2
            specs.append((lo, hi, factor, step))
        else:
            n = parse_size(item, f"{chk.path}: key '{w}'")
            specs.append((n, n, None, None))
    return specs


def _size_args(spec):
    lo, hi, factor, step = spec
    args = ["-b", str(lo), "-e", str(hi)]
    if lo != hi:
        if step is not None:
            args += ["-f", "1", "-i", str(step)]
        else:
            args += ["-f", f"{factor:g}"]
    return args


def planned_sizes(spec, limit=100000):
    """The message sizes a size spec makes the program measure (as nccl-tests steps: x factor,
    else + step, up to max)."""
    lo, hi, factor, step = spec
    sizes, n = [lo], lo
    while n < hi and len(sizes) < limit:
        n = n + step if step is not None else int(n * factor)
        if n > hi or n <= sizes[-1]:
            break
        sizes.append(n)
    return sizes


def _size_tag(spec):
    lo, hi, _, _ = spec
    return format_size(lo) if lo == hi else f"{format_size(lo)}-{format_size(hi)}"


def _variants(chk, entry, where):
    value = entry.get("variants")
    if value is None:
        return [{"name": None, "env": {}, "options": {}, "mpirun_args": [], "where": None}]
    chk.seq(value, f"{where}.variants")
    if not value:
        chk.fail(f"{where}.variants", "at least one variant", value)
    out = []
    for i, v in enumerate(value):
        w = f"{where}.variants[{i}]"
        chk.mapping(v, w, VARIANT_KEYS)
        if "name" not in v:
            chk.fail(f"{w}.name", "a name for the variant, e.g. name: ring", None, has_got=False)
        out.append({"name": chk.name(v["name"], f"{w}.name"),
                    "env": chk.env(v.get("env") or {}, f"{w}.env"),
                    "options": chk.options(v.get("options") or {}, f"{w}.options"),
                    "mpirun_args": chk.str_list(v.get("mpirun_args") or [], f"{w}.mpirun_args"),
                    "where": w})
    names = [v["name"] for v in out]
    if len(set(names)) != len(names):
        chk.fail(f"{where}.variants", "distinct variant names", names)
    return out


def _common(chk, entry, where, sweep):
    requires = chk.str_list(entry.get("requires") or [], f"{where}.requires")
    for r in requires:
        if r not in REQUIREMENTS:
            chk.fail(f"{where}.requires", f"one of {', '.join(REQUIREMENTS)}", r)
    launchers = entry.get("launchers")
    if launchers is not None:
        launchers = chk.str_list(launchers, f"{where}.launchers")
        for name in launchers:
            if name not in LAUNCHERS:
                chk.fail(f"{where}.launchers", f"one of {', '.join(LAUNCHERS)}", name)
    timeout = entry.get("timeout", sweep.timeout)
    chk.number(timeout, f"{where}.timeout")
    env = dict(sweep.env)
    env.update(chk.env(entry.get("env") or {}, f"{where}.env"))
    mpi = entry.get("mpi", True)
    if not isinstance(mpi, bool):
        chk.fail(f"{where}.mpi", "true (launch under mpirun/srun) or false (run directly)", mpi)
    return requires, launchers, timeout, env, mpi


def _point_name(*parts):
    return ".".join(p for p in parts if p)


def _opt_tag(opts):
    def text(v):
        return str(v).lower() if isinstance(v, bool) else str(v)
    return ".".join(f"{k}={text(v)}" for k, v in opts.items())


def _collective_flag_keys(where):
    """The harness flags ffbench sets from an entry's keys -> those keys (short and long names)."""
    keys = {}
    for flags, key in ((("b", "minbytes", "e", "maxbytes", "f", "stepfactor", "i", "stepbytes"),
                        "sizes"), (("d", "datatype"), "types"), (("o", "op"), "ops"),
                       (("n", "iters"), "iters"), (("w", "warmup_iters"), "warmup"),
                       (("c", "check"), "check"), (("a", "average"), "average"),
                       (("z", "blocking"), "blocking"), (("T", "timeout"), "op_timeout")):
        keys.update({f: f"{where}.{key}" for f in flags})
    return keys


def _expand_collective(chk, entry, where, sweep):
    chk.mapping(entry, where, COLLECTIVE_KEYS)
    if "program" not in entry:
        chk.fail(f"{where}.program", "the program to run, e.g. program: mpi_allreduce_bench", None,
                 has_got=False)
    program = entry["program"]
    if not isinstance(program, str) or not PROGRAM_RE.match(program):
        chk.fail(f"{where}.program", "a program name from build/bin", program)
    base = chk.name(entry.get("name", program.replace("_allreduce_bench", "").replace("_bench", "")),
                    f"{where}.name")
    requires, launchers, timeout, env, mpi = _common(chk, entry, where, sweep)
    shapes = _shapes(chk, entry, where)
    specs = _size_specs(chk, entry.get("sizes"), f"{where}.sizes")
    types = chk.str_list(entry.get("types", ["float"]), f"{where}.types")
    for t in types:
        if t not in COLLECTIVE_TYPES:
            chk.fail(f"{where}.types", f"nccl-tests type names ({', '.join(COLLECTIVE_TYPES)})", t)
    ops = chk.str_list(entry.get("ops", ["sum"]), f"{where}.ops")
    for o in ops:
        if o not in COLLECTIVE_OPS:
            chk.fail(f"{where}.ops", f"one of {', '.join(COLLECTIVE_OPS)}", o)
    fixed = ["-d", ",".join(types), "-o", ",".join(ops)]
    if "iters" in entry:
        fixed += ["-n", str(chk.integer(entry["iters"], f"{where}.iters", 1))]
    if "warmup" in entry:
        fixed += ["-w", str(chk.integer(entry["warmup"], f"{where}.warmup", 0))]
    if "check" in entry:
        c = entry["check"]
        fixed += ["-c", str(int(c) if isinstance(c, bool) else chk.integer(c, f"{where}.check",
                                                                            choices=(0, 1)))]
    if "average" in entry:
        fixed += ["-a", str(chk.integer(entry["average"], f"{where}.average", choices=(0, 1, 2, 3)))]
    if "blocking" in entry:
        b = entry["blocking"]
        fixed += ["-z", str(int(b) if isinstance(b, bool) else chk.integer(b, f"{where}.blocking",
                                                                           choices=(0, 1)))]
    if "op_timeout" in entry:
        fixed += ["-T", f"{chk.number(entry['op_timeout'], f'{where}.op_timeout'):g}"]
    options = chk.options(entry.get("options") or {}, f"{where}.options")
    axes = _sweep_axes(chk, entry.get("sweep"), f"{where}.sweep")
    variants = _variants(chk, entry, where)
    flag_keys = _collective_flag_keys(where)
    points = []
    for c in _combinations(variants, shapes, axes, options, env, specs,
                           _origins(f"{where}.options", options), f"{where}.sweep"):
        name = _point_name(base, c.variant["name"], _opt_tag(c.axis), c.shape,
                           _size_tag(c.spec) if len(specs) > 1 else "")
        points.append(Point(
            name, "collective", program, c.ranks, c.nodes, c.rpn,
            _size_args(c.spec) + fixed + _option_args(c.options), c.env, requires, launchers,
            timeout, mpi, sweep.mpirun_args + c.variant["mpirun_args"],
            meta={"series": _point_name(base, c.variant["name"], _opt_tag(c.axis)),
                  "section": "collectives", "options": c.options, "sizes": planned_sizes(c.spec),
                  "types": types, "ops": ops, "entry": where,
                  "origins": {**flag_keys, **c.origins}}))
    return points


class _Combination(NamedTuple):
    variant: dict
    ranks: int
    nodes: int
    rpn: int
    spec: object
    axis: dict
    options: dict   # entry options, then the variant's, then the sweep axis' (later wins)
    env: dict       # entry environment, then the variant's
    shape: str      # r<ranks> on one node, n<nodes>x<ranks per node> across nodes
    origins: dict   # option name -> the config key it came from (errors name it)


def _origins(prefix, options):
    return {k: f"{prefix}.{k}" for k in options}


def _combinations(variants, shapes, axes, options, env, specs=(None,), origins=None,
                  axis_where=""):
    """Every point of an entry, in the order points are listed: variant, shape, size spec, axis.
    `origins` names the config key of each entry option, `axis_where` the sweep axes' key."""
    for variant in variants:
        vorigins = _origins(f"{variant['where']}.options", variant["options"])
        for ranks, nodes, rpn in shapes:
            for spec in specs:
                for axis in axes:
                    yield _Combination(variant, ranks, nodes, rpn, spec, axis,
                                       {**options, **variant["options"], **axis},
                                       {**env, **variant["env"]},
                                       f"r{ranks}" if nodes == 1 else f"n{nodes}x{rpn}",
                                       {**(origins or {}), **vorigins,
                                        **_origins(axis_where, axis)})


def _expand_storage(chk, section, sweep):
    where = "storage"
    chk.mapping(section, where, STORAGE_KEYS)
    if "workloads" not in section and "ceiling" not in section:
        chk.fail(f"{where}.workloads", "a list of workloads, e.g. - workload: seq (or a ceiling: "
                 "mapping)", None, has_got=False)
    program = section.get("program", "storage_bench")
    if not isinstance(program, str) or not PROGRAM_RE.match(program):
        chk.fail(f"{where}.program", "a program name from build/bin", program)
    top_dir = section.get("dir", "tmp")
    common_opts = chk.options(section.get("options") or {}, f"{where}.options")
    points = []
    for i, wl in enumerate(chk.seq(section.get("workloads") or [], f"{where}.workloads")):
        points += _expand_workload(chk, section, wl, f"{where}.workloads[{i}]", sweep, program,
                                   top_dir, common_opts)
    if section.get("ceiling") is not None:
        points.append(_expand_ceiling(chk, section["ceiling"], f"{where}.ceiling", sweep, top_dir,
                                      program))
    return points


def _storage_dir(chk, d, where):
    if not isinstance(d, str) or not d:
        chk.fail(where, "a directory path or 'tmp' (a fresh temporary directory)", d)
    return "{dir}" if d == "tmp" else os.path.abspath(os.path.expanduser(d))


def _expand_workload(chk, section, wl, w, sweep, program, top_dir, common_opts):
    if isinstance(wl, str):
        wl = {"workload": wl}
    chk.mapping(wl, w, WORKLOAD_KEYS)
    workload = wl.get("workload")
    if workload not in STORAGE_WORKLOADS:
        chk.fail(f"{w}.workload", f"one of {', '.join(STORAGE_WORKLOADS)}", workload)
    merged = {k: section[k] for k in ("requires", "launchers", "timeout") if k in section}
    merged.update(wl)
    merged["env"] = dict(chk.env(section.get("env") or {}, "storage.env"))
    merged["env"].update(chk.env(wl.get("env") or {}, f"{w}.env"))
    requires, launchers, timeout, env, _ = _common(chk, merged, w, sweep)
    d = wl.get("dir", top_dir)
    dir_arg = _storage_dir(chk, d, f"{w}.dir")
    shapes = _shapes(chk, wl, w, defaults={k: section.get(k) for k in SHAPE_KEYS})
    opts = dict(common_opts)
    opts.update(chk.options(wl.get("options") or {}, f"{w}.options"))
    origins = {**_origins("storage.options", common_opts),
               **_origins(f"{w}.options", wl.get("options") or {})}
    axis_where = f"{w}.sweep" if "sweep" in wl else "storage.sweep"
    axes = _sweep_axes(chk, wl.get("sweep", section.get("sweep")), f"{w}.sweep")
    variants = _variants(chk, wl, w)
    base = chk.name(wl.get("name", f"storage.{workload}"), f"{w}.name")
    points = []
    for c in _combinations(variants, shapes, axes, opts, env, origins=origins,
                           axis_where=axis_where):
        points.append(Point(
            _point_name(base, c.variant["name"], _opt_tag(c.axis), c.shape), "storage",
            program, c.ranks, c.nodes, c.rpn,
            [workload] + _option_args(c.options) + [dir_arg], c.env, requires, launchers,
            timeout, True, sweep.mpirun_args + c.variant["mpirun_args"],
            storage_tmp=(d == "tmp"),
            meta={"series": _point_name(base, c.variant["name"], _opt_tag(c.axis)),
                  "section": "storage", "workload": workload, "options": c.options,
                  "dir": dir_arg, "entry": w, "origins": c.origins}))
    return points


def _expand_ceiling(chk, value, w, sweep, top_dir, program):
    """storage.ceiling: fio on the same directory, storage_bench beside it (scripts/fio-crosscheck):
    one point of kind crosscheck, on this host (local launcher), skipped where fio is missing."""
    chk.mapping(value, w, CEILING_KEYS)
    tool = value.get("tool", "fio")
    if tool not in CEILING_TOOLS:
        chk.fail(f"{w}.tool", f"one of {', '.join(CEILING_TOOLS)} (the reference tool)", tool)
    size = parse_size(value.get("size", "256M"), f"{chk.path}: key '{w}.size'")
    if size < (1 << 20):
        chk.fail(f"{w}.size", "a size of at least 1M per case and run, e.g. 256M",
                 value.get("size"))
    runs = chk.integer(value.get("runs", 3), f"{w}.runs", 1)
    settle = value.get("settle", 1)
    if isinstance(settle, bool) or not isinstance(settle, (int, float)) or settle < 0:
        chk.fail(f"{w}.settle", "seconds (>= 0) both tools pause before each timed job", settle)
    cases = chk.str_list(value.get("cases", ["seq_write_direct", "seq_read_direct"]),
                         f"{w}.cases")
    for case in cases:
        if case not in CEILING_CASES:
            chk.fail(f"{w}.cases", f"cases of scripts/fio-crosscheck ({', '.join(CEILING_CASES)})",
                     case)
    if not cases or len(set(cases)) != len(cases):
        chk.fail(f"{w}.cases", "at least one case, each once", value.get("cases"))
    timeout = value.get("timeout", sweep.timeout)
    chk.number(timeout, f"{w}.timeout")
    d = value.get("dir", top_dir)
    dir_arg = _storage_dir(chk, d, f"{w}.dir")
    args = ["--dir", dir_arg, "--size", format_size(size),
            "--runs", str(runs), "--settle", f"{settle:g}", "--cases", ",".join(cases),
            "--storage-bench", "{bin}/" + program]
    if "tolerance" in value:
        args += ["--tolerance", f"{chk.number(value['tolerance'], f'{w}.tolerance'):g}"]
    name = chk.name(value.get("name", "storage.ceiling"), f"{w}.name")
    return Point(name, "crosscheck", "fio-crosscheck", 1, 1, 1, args, dict(sweep.env),
                 launchers=("local",), timeout=timeout, mpi=False, storage_tmp=(d == "tmp"),
                 meta={"series": name, "section": "storage", "cases": cases, "tool": tool,
                       "dir": dir_arg},
                 script=True, tools=(tool,), uses=(program,))


def _expand_probe(chk, entry, where, sweep):
    chk.mapping(entry, where, COMMON_ENTRY_KEYS)
    if "program" not in entry:
        chk.fail(f"{where}.program", "the program to run, e.g. program: membw_bench", None,
                 has_got=False)
    program = entry["program"]
    if not isinstance(program, str) or not PROGRAM_RE.match(program):
        chk.fail(f"{where}.program", "a program name from build/bin", program)
    base = chk.name(entry.get("name", program.replace("_bench", "")), f"{where}.name")
    requires, launchers, timeout, env, mpi = _common(chk, entry, where, sweep)
    shapes = _shapes(chk, entry, where)
    options = chk.options(entry.get("options") or {}, f"{where}.options")
    axes = _sweep_axes(chk, entry.get("sweep"), f"{where}.sweep")
    variants = _variants(chk, entry, where)
    points = []
    for c in _combinations(variants, shapes, axes, options, env,
                           origins=_origins(f"{where}.options", options),
                           axis_where=f"{where}.sweep"):
        points.append(Point(
            _point_name(base, c.variant["name"], _opt_tag(c.axis), c.shape), "probe", program,
            c.ranks, c.nodes, c.rpn, _option_args(c.options), c.env, requires, launchers, timeout,
            mpi, sweep.mpirun_args + c.variant["mpirun_args"],
            meta={"series": _point_name(base, c.variant["name"], _opt_tag(c.axis)),
                  "section": "probes", "options": c.options, "entry": where,
                  "origins": c.origins}))
    return points


def parse(path, data):
    """Validate a loaded YAML document and expand it into a Sweep with its points."""
    chk = _Checker(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping with collectives:, "
                          f"storage: and/or probes:")
    chk.mapping(data, "(top level)")
    for k in data:
        if k not in TOP_KEYS:
            raise ConfigError(f"{path}: unknown key '{k}'; expected one of {', '.join(TOP_KEYS)}")
    sweep = Sweep(path, data)
    if "name" in data:
        chk.name(data["name"], "name")
    if sweep.launcher not in LAUNCHERS:
        chk.fail("launcher", f"one of {', '.join(LAUNCHERS)}", sweep.launcher)
    if sweep.output is not None and not isinstance(sweep.output, str):
        chk.fail("output", "a results file path", sweep.output)
    if sweep.bin is not None and not isinstance(sweep.bin, str):
        chk.fail("bin", "a directory path", sweep.bin)
    chk.number(sweep.timeout, "timeout")
    sweep.env = chk.env(sweep.env, "env")
    sweep.mpirun_args = chk.str_list(sweep.mpirun_args, "mpirun_args")
    sweep.setup = chk.str_list(sweep.setup, "setup")
    _check_slurm(chk, sweep.slurm)
    chk.mapping(sweep.emu, "emu", EMU_KEYS)
    if "name" in sweep.emu:
        chk.name(sweep.emu["name"], "emu.name")
    if sweep.compare is not False and not isinstance(sweep.compare, str):
        chk.fail("compare", "a reference file path or false", sweep.compare)
    sections = [k for k in ("collectives", "storage", "probes") if data.get(k)]
    if not sections:
        raise ConfigError(f"{path}: nothing to run; expected at least one of collectives:, "
                          f"storage: or probes:")
    if data.get("collectives") is not None:
        for i, entry in enumerate(chk.seq(data["collectives"], "collectives")):
            sweep.points += _expand_collective(chk, entry, f"collectives[{i}]", sweep)
    if data.get("storage") is not None:
        sweep.points += _expand_storage(chk, data["storage"], sweep)
    if data.get("probes") is not None:
        for i, entry in enumerate(chk.seq(data["probes"], "probes")):
            sweep.points += _expand_probe(chk, entry, f"probes[{i}]", sweep)
    names = {}
    for p in sweep.points:
        if p.name in names:
            raise ConfigError(f"{path}: two points are both named '{p.name}'; give the entries "
                              f"distinct name: keys")
        names[p.name] = p
    keys = {}
    for p in sweep.points:
        k = p.key("any")
        if k in keys:
            raise ConfigError(f"{path}: points '{keys[k].name}' and '{p.name}' run the same "
                              f"command with the same environment; remove one or make them differ")
        keys[k] = p
    return sweep


def load(path):
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such config file (sweeps live in configs/sweeps/)")
    return parse(path, load_yaml(path))
