"""Cluster descriptions (configs/clusters/*.yaml): load, validate, look up, override.

A description is plain YAML; configs/clusters/README.md documents every key. Validation is strict:
an unknown key, a wrong type or a value out of range is reported as one line naming the file, the
dotted key, the value and the fix. Keys a command needs but the file lacks are reported when that
command asks for them (Cluster.req), so a cost-only description need not carry PCIe bandwidths.

The optional top-level `paper:` section holds reference numbers from the paper for comparison
only. Models never read it: Cluster.get/req refuse paths under `paper`, and Cluster.paper is the
only way to reach it.
"""
import copy
import difflib
import os

import yaml

from ffbench.data import paths
from ffbench.data.yamlfile import load_yaml
from ffbench.errors import ClusterError


# ---- schema ----------------------------------------------------------------------------------
# A field is (kind, help). kinds: "str", "bool", "int+" (>0), "int0" (>=0), "num+" (>0),
# "num+|auto" (>0 or the word auto), "num0" (>=0), "frac" (0 < x <= 1), "pue" (>= 1),
# ("enum", (...)), "any"; nested dicts are sections.

SCHEMA = {
    "schema": ("str", "format tag, 'ffbench-cluster/1'"),
    "name": ("str", "a short name shown in tables, e.g. 'Fire-Flyer 2'"),
    "description": ("str", "free text"),
    "nodes": ("int+", "number of compute nodes, e.g. 1250"),
    "gpus_per_node": ("int+", "GPUs per compute node, e.g. 8"),
    "gpu": {
        "model": ("str", "GPU model name"),
        "tflops": {
            "tf32": ("num+", "measured dense GEMM TFLOPS per GPU in TF32"),
            "fp16": ("num+", "measured dense GEMM TFLOPS per GPU in FP16"),
            "bf16": ("num+", "measured dense GEMM TFLOPS per GPU in BF16"),
            "fp8": ("num+", "measured dense GEMM TFLOPS per GPU in FP8"),
            "fp64": ("num+", "measured dense GEMM TFLOPS per GPU in FP64"),
        },
    },
    "performance": {
        "metric": (("enum", ("tf32", "fp16", "bf16", "fp8", "fp64", "gemm_mean", "measured")),
                   "what relative performance is computed from"),
        "measured": ("num+", "a measured per-node figure of merit (higher is better)"),
        "measured_unit": ("str", "unit of performance.measured, e.g. 'images/s'"),
        "source": ("str", "where the measured number comes from"),
    },
    "cpu": {
        "model": ("str", "CPU model"),
        "sockets": ("int+", "CPU sockets per node"),
        "cores": ("int+", "CPU cores per node"),
    },
    "host_memory": {
        "practical_gbs": ("num+", "practical host memory bandwidth per node in GB/s (1e9 B/s)"),
        "theoretical_gbs": ("num+", "theoretical host memory bandwidth per node in GB/s"),
        "numa_nodes": ("int+", "NUMA nodes per compute node"),
        "gib": ("num+", "host memory per node in GiB"),
    },
    "pcie": {
        "gpu_d2h_gbs": ("num+", "one GPU's device-to-host copy bandwidth, GB/s"),
        "gpu_h2d_gbs": ("num+", "one GPU's host-to-device copy bandwidth, GB/s"),
        "gdrcopy_h2d_gbs": ("num+", "CPU-driven (GDRCopy) host-to-device write bandwidth per GPU, GB/s"),
        "gpus_per_root_port": ("int+", "GPUs sharing the most loaded root port"),
        "root_port_gbs": ("num+", "that root port's bandwidth in one direction, GB/s"),
        "root_port_duplex_gbs": ("num+", "that root port's bandwidth with both directions running, "
                                         "both directions together, GB/s"),
        "gpu_nic_p2p_gbs": ("num+", "GPU-to-NIC PCIe peer-to-peer read bandwidth, GB/s"),
        "gpu_gpu_p2p_gbs": ("num+", "GPU-to-GPU PCIe peer-to-peer bandwidth, GB/s"),
    },
    "nics": {
        "per_node": ("int+", "compute-fabric NICs per node"),
        "gbit": ("num+", "rate of one NIC in Gb/s, e.g. 200"),
        "efficiency": ("frac", "achievable fraction of the NIC rate for large RDMA transfers"),
        "latency_us": ("num0", "one-way small-message latency between two nodes, microseconds"),
        "storage_per_node": ("int0", "extra NICs per node on a separate storage fabric (not counted "
                                     "in network.*)"),
    },
    "nvlink": {
        "topology": (("enum", ("pairs", "nvswitch")), "'pairs' (bridged GPU pairs) or 'nvswitch'"),
        "gbs": ("num+", "NVLink bandwidth per GPU, GB/s (both directions, vendor figure)"),
    },
    "network": {
        "radix": ("int+", "ports per switch, e.g. 40"),
        "layers": (("enum", (2, 3)), "fat-tree layers: 2 (leaf-spine) or 3 (leaf-spine-core)"),
        "zones": ("int+", "independent fat-trees the endpoints are split over"),
        "planes": ("int+", "parallel network planes; each NIC port joins one plane"),
        "storage_ports": ("int0", "fabric ports used by storage nodes"),
        "management_ports": ("int0", "fabric ports used by management/login nodes"),
        "endpoints": ("int+", "override of the endpoint count (default: nodes x nics.per_node + "
                              "storage_ports + management_ports)"),
        "leaf_down_ports": ("int+", "leaf ports facing endpoints (default radix/2: non-blocking)"),
        "extra_switches": ("int0", "switches beyond the fat-tree formula (e.g. zone interconnect)"),
        "core_sized_for_pods": ("int+", "three-layer: pods the core layer is provisioned for "
                                        "(default: the pods actually used)"),
    },
    "prices": {
        "currency": ("str", "currency or unit of all prices, e.g. 'USD' or 'relative'"),
        "node": ("num0", "price of one compute node"),
        "switch": ("num0", "price of one switch (all-in: with its share of cables and optics "
                           "unless prices.link is given)"),
        "link": ("num0", "price of one cable/link (counted per fabric link)"),
        "other": ("num0", "any other fixed cost of the cluster"),
    },
    "power": {
        "node_w": ("num+", "power of one compute node under load, W"),
        "switch_w": ("num0", "power of one switch, W"),
        "other_w": ("num0", "other load (storage, management), W"),
    },
    "operating": {
        "pue": ("pue", "power usage effectiveness of the facility (>= 1)"),
        "energy_price_per_kwh": ("num0", "price of one kWh"),
        "currency": ("str", "currency of operating.energy_price_per_kwh"),
        "years": ("num+", "years of operation to cost"),
        "hours_per_year": ("num+", "hours of operation per year (default 8760)"),
    },
    "allreduce": {
        "hfreduce": {
            "chunk_mib": ("num+|auto", "pipeline chunk (MiB of the per-GPU buffer per step), or "
                                       "'auto': the library's own choice per node count"),
            "pipeline_depth": ("int+", "chunks in flight (the library's --depth; default: its own "
                                       "choice with the chunk); bounds the ring's pipeline"),
            "efficiency": ("frac", "fraction of the bottleneck resource the algorithm achieves"),
            "h2d": (("enum", ("gdrcopy", "memcpy")), "how results return to the GPUs"),
        },
        "nccl": {
            "efficiency": ("frac", "fraction of the bottleneck resource NCCL achieves"),
            "ring_base_latency_us": ("num0", "NCCL ring base latency, microseconds"),
            "ring_step_latency_us": ("num0", "NCCL ring per-step latency, microseconds"),
            "tree_intra_latency_us": ("num0", "NCCL tree per intra-node hop latency, microseconds"),
            "tree_inter_latency_us": ("num0", "NCCL tree per inter-node level latency, microseconds"),
        },
        "mpi": {
            "efficiency": ("frac", "fraction of the bottleneck resource MPI's ring achieves"),
            "step_latency_us": ("num0", "per ring step latency, microseconds"),
        },
    },
    "emulation": {
        "shared_host": ("bool", "true when all nodes are namespaces on one host (memory is shared)"),
        "link_gbit": ("num+", "shaped link rate per node in Gb/s (tc tbf rate)"),
        "tcp_efficiency": ("frac", "achievable fraction of the shaped rate for TCP bulk transfer"),
        "link_latency_us": ("num0", "one-way message latency between two namespaces, microseconds"),
        "copies_per_network_byte": ("num0", "host memory bytes moved per byte sent+received by the "
                                            "kernel TCP stack (send + receive copies)"),
        "host_membw_source": ("str", "where host_memory.practical_gbs comes from"),
    },
    "paper": ("any", "reference numbers from the paper (comparison only; never model input)"),
}


def _kind_check(kind, value):
    """Return None when value fits kind, else a short phrase of what was expected."""
    if kind == "any":
        return None
    if kind == "str":
        return None if isinstance(value, str) else "a string"
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if isinstance(kind, tuple) and kind[0] == "enum":
        return None if value in kind[1] else "one of " + ", ".join(repr(v) for v in kind[1])
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int+":
        return None if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
            else "a positive integer"
    if kind == "int0":
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
            else "an integer >= 0"
    if kind == "num+":
        return None if is_num and value > 0 else "a number > 0"
    if kind == "num+|auto":
        return None if (is_num and value > 0) or value == "auto" else "a number > 0 or 'auto'"
    if kind == "num0":
        return None if is_num and value >= 0 else "a number >= 0"
    if kind == "frac":
        return None if is_num and 0 < value <= 1 else "a fraction in (0, 1]"
    if kind == "pue":
        return None if is_num and value >= 1 else "a number >= 1"
    raise AssertionError(kind)


def _validate(node, schema, prefix, where):
    if not isinstance(node, dict):
        raise ClusterError(f"{where}: '{prefix or 'top level'}' must be a mapping of keys, got "
                           f"{type(node).__name__}")
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in schema:
            close = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1)
            hint = f"did you mean '{(prefix + '.') if prefix else ''}{close[0]}'?" if close else \
                f"allowed here: {', '.join(str(k) for k in schema)}"
            raise ClusterError(f"{where}: unknown key '{path}' ({hint}; see configs/clusters/README.md)")
        spec = schema[key]
        if isinstance(spec, dict):
            _validate(value, spec, path, where)
            continue
        if value is None:
            continue  # explicit null = not given
        kind, help_text = spec
        expected = _kind_check(kind, value)
        if expected:
            raise ClusterError(f"{where}: key '{path}' must be {expected} ({help_text}), got {value!r}")


def _schema_help(path):
    node = SCHEMA
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return ""
    return node[1] if isinstance(node, tuple) else ""


_MISSING = object()


class Cluster:
    """A validated cluster description."""

    def __init__(self, data, path="<memory>"):
        data = copy.deepcopy(data)
        where = os.path.basename(path) if path else "<memory>"
        _validate(data, SCHEMA, "", where)
        for key in ("name", "nodes", "gpus_per_node"):
            if data.get(key) is None:
                raise ClusterError(f"{where}: missing key '{key}' ({_schema_help(key)})")
        self.path = path
        self.where = where
        self._paper = data.pop("paper", None) or {}
        self._data = data

    # -- lookups -------------------------------------------------------------------------------
    def get(self, dotted, default=None):
        if dotted.split(".")[0] == "paper":
            raise KeyError("models never read the paper section; use Cluster.paper")
        node = self._data
        for part in dotted.split("."):
            if not isinstance(node, dict) or node.get(part) is None:
                return default
            node = node[part]
        return node

    def has(self, dotted):
        return self.get(dotted, _MISSING) is not _MISSING

    def req(self, dotted, purpose):
        value = self.get(dotted, _MISSING)
        if value is _MISSING:
            raise ClusterError(f"{self.where}: missing key '{dotted}' ({_schema_help(dotted)}); "
                               f"{purpose} needs it (see configs/clusters/README.md)")
        return value

    @property
    def name(self):
        return self._data["name"]

    @property
    def nodes(self):
        return self._data["nodes"]

    @property
    def gpus_per_node(self):
        return self._data["gpus_per_node"]

    @property
    def paper(self):
        """Reference values from the paper (comparison only)."""
        return self._paper

    def data(self):
        return copy.deepcopy(self._data)

    # -- derived copies ------------------------------------------------------------------------
    def with_values(self, updates, name_suffix=None):
        """A new Cluster with dotted keys replaced (e.g. from calibration); validated again."""
        data = self.data()
        for dotted, value in updates.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        if name_suffix:
            data["name"] = f"{data['name']} {name_suffix}"
        data["paper"] = copy.deepcopy(self._paper)
        return Cluster(data, self.path)

    def to_yaml(self):
        data = self.data()
        if self._paper:
            data["paper"] = copy.deepcopy(self._paper)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _deep_merge(base, override):
    """override wins; a null in override removes the key; mappings merge recursively."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path, chain):
    name = os.path.basename(path)
    if not os.path.exists(path):
        via = f" (base of {os.path.basename(chain[-1])})" if chain else ""
        raise ClusterError(f"{path}: no such cluster file{via} (the shipped ones are in "
                           f"configs/clusters/)")
    if os.path.realpath(path) in chain:
        raise ClusterError(f"{name}: 'base' chain loops back to itself")
    data = load_yaml(path, ClusterError, "cluster file")
    if data is None:
        raise ClusterError(f"{name}: empty file (need at least name, nodes, gpus_per_node)")
    if not isinstance(data, dict):
        raise ClusterError(f"{name}: the top level must be a mapping of keys (name: ..., nodes: ...), "
                           f"got {type(data).__name__}")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ClusterError(f"{name}: key 'base' must be a file name (relative to this file), "
                               f"got {base!r}")
        base_path = os.path.join(os.path.dirname(os.path.abspath(path)), base)
        data = _deep_merge(_read_yaml(base_path, chain + [os.path.realpath(path)]), data)
    return data


def load_cluster(path):
    """Load and validate a cluster YAML file; raises ClusterError with one clear line.

    `base: OTHER.yaml` (relative to the file) loads OTHER first and merges this file over it;
    `key: null` in the overriding file removes the key.
    """
    return Cluster(_read_yaml(path, []), path)


def clusters_dir():
    return paths.shipped("clusters")


def resolve_cluster_path(name):
    """Accept a path or a shipped name ('fire-flyer-2' -> configs/clusters/fire-flyer-2.yaml)."""
    if os.path.exists(name):
        return name
    for candidate in (os.path.join(clusters_dir(), name), os.path.join(clusters_dir(), name + ".yaml")):
        if os.path.exists(candidate):
            return candidate
    return name


def apply_sets(cluster, assignments):
    """Apply --set KEY=VALUE overrides (VALUE parsed as YAML: numbers, true/false, null, strings)."""
    if not assignments:
        return cluster
    updates = {}
    for item in assignments:
        if "=" not in item:
            raise ClusterError(f"--set {item!r}: give KEY=VALUE with a dotted key, e.g. "
                               f"--set allreduce.hfreduce.chunk_mib=8")
        key, text = item.split("=", 1)
        key = key.strip()
        if key.split(".")[0] == "paper":
            raise ClusterError(f"--set {item!r}: the paper section is reference data, not an input")
        node = SCHEMA
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ClusterError(f"--set {item!r}: unknown key '{key}' (see configs/clusters/README.md)")
            node = node[part]
        if isinstance(node, dict):
            raise ClusterError(f"--set {item!r}: '{key}' is a section; name one of its keys")
        try:
            updates[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            updates[key] = text
    return cluster.with_values(updates, name_suffix="(" + ", ".join(assignments) + ")")
