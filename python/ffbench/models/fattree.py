"""Switch counts of two- and three-layer fat-trees (model, no measurement).

Textbook construction with k-port switches (k = radix) and d = k/2 leaf ports facing endpoints
(non-blocking; `leaf_down` overrides d for oversubscribed leaves), u = k - d uplinks per leaf:

two layers (leaf-spine), E endpoints:
    E <= k           -> one switch
    leaves  L = ceil(E / d)
    spines  S = ceil(L * u / k)
    feasible while L <= k (each spine port reaches one leaf): at most k * d endpoints (800 for k = 40)

three layers (leaf-spine-core, pods of k/2 leaves and k/2 spines):
    leaves  L = ceil(E / d); pods P = ceil(L / (k/2))
    spines  = sum over pods of ceil(leaves_in_pod * u / (k/2))
    cores   = ceil(spines * (k/2) / k)                       (every spine uplink lands on a core port)
            or, with the core provisioned for Pc pods:  ceil(Pc * (k/2) * (k/2) / k)
    feasible while P <= k: at most k^3/4 endpoints (16,000 for k = 40)

Zones split the endpoints into independent trees; planes replicate the fabric, each endpoint
port joining one plane (E / planes endpoints per plane).
"""
import math

from ffbench.errors import ClusterError


def two_layer(endpoints, radix, leaf_down=None):
    d = leaf_down or radix // 2
    u = radix - d
    out = {"layers": 2, "endpoints": endpoints, "radix": radix, "leaf_down": d, "leaves": 0,
           "spines": 0, "cores": 0, "pods": 0, "capacity": radix * d, "feasible": True,
           "links_endpoint": endpoints, "links_fabric": 0}
    if endpoints <= 0:
        return _total(out)
    if endpoints <= radix:
        out["leaves"] = 1
        return _total(out)
    leaves = math.ceil(endpoints / d)
    spines = math.ceil(leaves * u / radix)
    out.update(leaves=leaves, spines=spines, links_fabric=leaves * u, feasible=leaves <= radix)
    return _total(out)


def three_layer(endpoints, radix, leaf_down=None, core_sized_for_pods=None):
    d = leaf_down or radix // 2
    u = radix - d
    half = radix // 2
    out = {"layers": 3, "endpoints": endpoints, "radix": radix, "leaf_down": d, "leaves": 0,
           "spines": 0, "cores": 0, "pods": 0, "capacity": radix * half * d, "feasible": True,
           "links_endpoint": endpoints, "links_fabric": 0, "cores_textbook": 0}
    if endpoints <= 0:
        return _total(out)
    leaves = math.ceil(endpoints / d)
    pods = math.ceil(leaves / half)
    spines = 0
    for p in range(pods):
        in_pod = min(half, leaves - p * half)
        spines += math.ceil(in_pod * u / half)
    cores_textbook = math.ceil(spines * half / radix)
    cores = cores_textbook
    if core_sized_for_pods:
        cores = max(cores, math.ceil(core_sized_for_pods * half * half / radix))
    out.update(leaves=leaves, spines=spines, cores=cores, pods=pods, cores_textbook=cores_textbook,
               links_fabric=leaves * u + spines * half, feasible=pods <= radix)
    return _total(out)


def _total(out):
    out["switches"] = out["leaves"] + out["spines"] + out["cores"]
    return out


def _split(total, parts):
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


def tree(endpoints, layers, radix, zones=1, planes=1, leaf_down=None, core_sized_for_pods=None):
    """Sum of the trees of every zone of every plane. Returns totals and the per-zone pieces."""
    pieces = []
    for plane_endpoints in _split(endpoints, planes):
        for zone_endpoints in _split(plane_endpoints, zones):
            if layers == 2:
                pieces.append(two_layer(zone_endpoints, radix, leaf_down))
            else:
                pieces.append(three_layer(zone_endpoints, radix, leaf_down, core_sized_for_pods))
    total = {key: sum(p[key] for p in pieces)
             for key in ("leaves", "spines", "cores", "switches", "links_endpoint", "links_fabric")}
    total["feasible"] = all(p["feasible"] for p in pieces)
    total["largest_zone"] = max(p["endpoints"] for p in pieces)
    total["zone_capacity"] = pieces[0]["capacity"]
    total["pieces"] = pieces
    return total


def fabric(cluster, purpose="ffbench cost"):
    """Switch counts of a cluster description: the textbook count and the count with every input.

    textbook: endpoints computed as nodes x nics.per_node + storage + management ports, cores
              sized for the pods used, no extra switches.
    model:    network.endpoints (when given) replaces the computed count, network.core_sized_for_pods
              and network.extra_switches apply. Notes say which input changed what.
    """
    radix = cluster.req("network.radix", purpose)
    layers = cluster.req("network.layers", purpose)
    zones = cluster.get("network.zones", 1)
    planes = cluster.get("network.planes", 1)
    nics = cluster.req("nics.per_node", purpose)
    storage = cluster.get("network.storage_ports", 0)
    management = cluster.get("network.management_ports", 0)
    leaf_down = cluster.get("network.leaf_down_ports")
    if leaf_down is not None and not 0 < leaf_down < radix:
        raise ClusterError(f"{cluster.where}: key 'network.leaf_down_ports' must be between 1 and "
                           f"radix - 1 = {radix - 1}, got {leaf_down}")
    computed = cluster.nodes * nics + storage + management
    used = cluster.get("network.endpoints", computed)
    core_pods = cluster.get("network.core_sized_for_pods")
    extra = cluster.get("network.extra_switches", 0)

    textbook = tree(computed, layers, radix, zones, planes, leaf_down)
    with_inputs = tree(used, layers, radix, zones, planes, leaf_down, core_pods if layers == 3 else None)
    notes = []
    if used != computed:
        plain = tree(used, layers, radix, zones, planes, leaf_down)
        notes.append(f"endpoints {used:,} from network.endpoints (computed {cluster.nodes:,} x {nics} "
                     f"+ {storage} storage + {management} management = {computed:,}); the formula "
                     f"gives {plain['switches']:,} switches for {used:,}, {textbook['switches']:,} "
                     f"for {computed:,}")
    if not textbook["feasible"]:
        notes.append(f"computed endpoints need {textbook['largest_zone']:,} ports in a zone; a "
                     f"{layers}-layer radix-{radix} fat-tree holds at most "
                     f"{textbook['zone_capacity']:,} (count shown is the formula, not buildable)")
    if not with_inputs["feasible"]:
        notes.append(f"{with_inputs['largest_zone']:,} endpoints in a zone exceed the "
                     f"{with_inputs['zone_capacity']:,} a {layers}-layer radix-{radix} fat-tree holds: "
                     f"add zones, planes or a layer")
    if layers == 3 and core_pods:
        cores_tb = sum(p["cores_textbook"] for p in with_inputs["pieces"])
        pods = sum(p["pods"] for p in with_inputs["pieces"])
        notes.append(f"core layer sized for {core_pods} pods (network.core_sized_for_pods): "
                     f"{with_inputs['cores']:,} cores; the {pods} pods used need {cores_tb:,} "
                     f"(textbook)")
    if extra:
        notes.append(f"+{extra} switches from network.extra_switches")
    return {
        "radix": radix, "layers": layers, "zones": zones, "planes": planes,
        "endpoints_computed": computed, "endpoints": used,
        "leaves": with_inputs["leaves"], "spines": with_inputs["spines"], "cores": with_inputs["cores"],
        "switches_textbook": textbook["switches"], "textbook_feasible": textbook["feasible"],
        "switches": with_inputs["switches"] + extra, "extra_switches": extra,
        "feasible": with_inputs["feasible"],
        "links": with_inputs["links_endpoint"] + with_inputs["links_fabric"],
        "capacity": planes * zones * with_inputs["zone_capacity"],
        "notes": notes,
    }
