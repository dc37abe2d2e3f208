"""Cost, power and performance of a cluster description, and comparisons between two (model).

Per cluster (inputs from the YAML, see configs/clusters/README.md):
    switches        fattree.fabric()
    network price   switches x prices.switch + links x prices.link
    server price    nodes x prices.node;   total = network + server + prices.other
    power           nodes x power.node_w + switches x power.switch_w + power.other_w
    energy / year   power x operating.pue x operating.hours_per_year (8760)
    operating cost  energy / year x operating.energy_price_per_kwh x operating.years
Between a cluster A and a baseline B:
    relative performance  per node, from GEMM TFLOPS (tf32, fp16, ... or gemm_mean = mean of the
                          tf32 and fp16 ratios, the basis of the paper's 83%) or performance.measured
    node price ratio      prices.node(A) / prices.node(B)            (same currency only)
    cost-performance      relative performance / node price ratio    (Table II's definition)
    cluster ratios        the same with whole-cluster performance and total price
"""
import math

from ffbench.models.cluster import ClusterError
from ffbench.models.fattree import fabric

GEMM_MEAN_DTYPES = ("tf32", "fp16")
HOURS_PER_YEAR = 8760.0


def cluster_cost(cluster):
    """Every per-cluster quantity; a key whose inputs are missing is None (or raises when needed)."""
    purpose = "ffbench cost"
    fab = fabric(cluster, purpose)
    out = {"name": cluster.name, "nodes": cluster.nodes, "gpus_per_node": cluster.gpus_per_node,
           "gpus": cluster.nodes * cluster.gpus_per_node, "fabric": fab}
    out["missing"] = []
    for key in ("currency", "node_price", "switch_price", "network_price", "server_price",
                "other_price", "total_price", "node_w", "nodes_w", "switches_w", "power_w", "pue",
                "energy_kwh_per_year", "energy_currency", "years", "energy_price_per_kwh",
                "operating_cost"):
        out[key] = None
    if cluster.get("prices") is not None:  # a prices section must be complete
        out["currency"] = cluster.req("prices.currency", purpose)
        out["node_price"] = cluster.req("prices.node", purpose)
        out["switch_price"] = cluster.req("prices.switch", purpose)
        link_price = cluster.get("prices.link", 0.0)
        out["other_price"] = cluster.get("prices.other", 0.0)
        out["network_price"] = fab["switches"] * out["switch_price"] + fab["links"] * link_price
        out["server_price"] = cluster.nodes * out["node_price"]
        out["total_price"] = out["network_price"] + out["server_price"] + out["other_price"]
    else:
        out["missing"].append("prices")
    if cluster.get("power") is not None:  # a power section must have node_w
        out["node_w"] = cluster.req("power.node_w", purpose)
        out["nodes_w"] = cluster.nodes * out["node_w"]
        out["switches_w"] = fab["switches"] * cluster.get("power.switch_w", 0.0)
        out["power_w"] = out["nodes_w"] + out["switches_w"] + cluster.get("power.other_w", 0.0)
        out["pue"] = cluster.get("operating.pue")
        hours = cluster.get("operating.hours_per_year", HOURS_PER_YEAR)
        out["energy_kwh_per_year"] = out["power_w"] / 1000.0 * (out["pue"] or 1.0) * hours
        out["energy_price_per_kwh"] = cluster.get("operating.energy_price_per_kwh")
        out["years"] = cluster.get("operating.years")
        out["energy_currency"] = cluster.get("operating.currency")
        if cluster.get("operating") is not None:  # an operating section must be complete
            for key in ("pue", "energy_price_per_kwh", "currency", "years"):
                cluster.req(f"operating.{key}", purpose)
            out["operating_cost"] = out["energy_kwh_per_year"] * out["energy_price_per_kwh"] * \
                out["years"]
        else:
            out["missing"].append("operating")
    else:
        out["missing"].append("power")
    out["tflops_per_node"] = {k: v * cluster.gpus_per_node
                              for k, v in (cluster.get("gpu.tflops", {}) or {}).items()}
    out["measured_perf"] = cluster.get("performance.measured")
    out["measured_unit"] = cluster.get("performance.measured_unit")
    return out


def perf_ratio(a, b, metric, a_cluster, b_cluster):
    """Per-node performance of a relative to b. Returns (ratio, description)."""
    if metric == "measured":
        for c, cl in ((a, a_cluster), (b, b_cluster)):
            if c["measured_perf"] is None:
                raise ClusterError(f"{cl.where}: missing key 'performance.measured' (a measured "
                                   f"per-node figure); --perf-metric measured needs it")
        if a["measured_unit"] != b["measured_unit"]:
            raise ClusterError(f"performance.measured_unit differs: {a['measured_unit']!r} in "
                               f"{a_cluster.where} vs {b['measured_unit']!r} in {b_cluster.where}")
        return a["measured_perf"] / b["measured_perf"], f"measured {a['measured_unit'] or ''}".strip()
    dtypes = GEMM_MEAN_DTYPES if metric == "gemm_mean" else (metric,)
    ratios = []
    for dt in dtypes:
        for c, cl in ((a, a_cluster), (b, b_cluster)):
            if dt not in c["tflops_per_node"]:
                raise ClusterError(f"{cl.where}: missing key 'gpu.tflops.{dt}' (measured GEMM TFLOPS "
                                   f"per GPU); relative performance by {metric} needs it")
        ratios.append(a["tflops_per_node"][dt] / b["tflops_per_node"][dt])
    desc = "mean of GEMM " + " and ".join(dtypes) + " ratios" if metric == "gemm_mean" \
        else f"GEMM {metric}"
    return sum(ratios) / len(ratios), desc


def compare(a, b, a_cluster, b_cluster, metric):
    """Ratios of cluster a against baseline b (Table II quantities)."""
    rel, desc = perf_ratio(a, b, metric, a_cluster, b_cluster)
    out = {"relative_performance": rel, "perf_basis": desc}
    same = a["currency"] is not None and a["currency"] == b["currency"]
    out["same_currency"] = same
    out["node_price_ratio"] = a["node_price"] / b["node_price"] if same and b["node_price"] else None
    out["cost_performance"] = (rel / out["node_price_ratio"]) if out["node_price_ratio"] else None
    cluster_perf = rel * a["nodes"] / b["nodes"]
    out["cluster_performance_ratio"] = cluster_perf
    out["total_price_ratio"] = a["total_price"] / b["total_price"] if same and b["total_price"] else None
    out["cluster_cost_performance"] = (cluster_perf / out["total_price_ratio"]
                                       if out["total_price_ratio"] else None)
    out["node_power_ratio"] = a["node_w"] / b["node_w"] if a["node_w"] and b["node_w"] else None
    return out


def implied_switch_price(paper_network_price, switches, links=0, link_price=0.0):
    """The all-in switch price that reproduces a paper network price exactly (for the notes)."""
    if not switches:
        return math.nan
    return (paper_network_price - links * link_price) / switches
