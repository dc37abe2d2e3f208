"""`ffbench emu up N` / `emu down` / `emu status`: an emulated multi-node cluster on one machine.

The command line only; the work and its description: ffbench.launch.emu.
"""
from ffbench.errors import EmuError, UsageError
from ffbench.launch.emu import (DEFAULT_CONGESTION, DEFAULT_NAME, IFACE, MAX_NODES, NAME_RE,
                                PREFIX_LEN, RATE_RE, _netns_list, available_congestion, down,
                                load_state, require_root, up)


def cmd_up(args):
    require_root("ffbench emu up")
    if not NAME_RE.match(args.name):
        raise UsageError(f"--name {args.name!r}: expected 1-8 lowercase letters/digits, starting "
                         f"with a letter")
    if not 1 <= args.nodes <= MAX_NODES:
        raise UsageError(f"N = {args.nodes}: expected 1 to {MAX_NODES} nodes")
    rate = args.link_rate
    if rate != "none" and not RATE_RE.match(rate):
        raise UsageError(f"--link-rate {rate!r}: expected a tc rate such as 1gbit, 10gbit, 500mbit "
                         f"(or none for unshaped links)")
    avail = available_congestion()
    if args.congestion != "system" and avail and args.congestion not in avail:
        raise UsageError(f"--congestion {args.congestion!r}: this kernel offers "
                         f"{', '.join(avail)} (or system = the machine's default)")
    try:
        state, leftovers = up(args.name, args.nodes, rate, args.congestion)
    except EmuError as exc:
        print(f"ffbench emu up: {exc}")
        return 1
    if leftovers:
        print(f"ffbench emu: removed {leftovers} leftover namespace(s) of cluster '{args.name}'")
    shaped = (f"links shaped to {rate} each way (tc tbf, burst {state['tbf_burst_bytes']} B)"
              if rate != "none" else "links unshaped")
    shaped += f", TCP congestion control {args.congestion}"
    print(f"ffbench emu: cluster '{args.name}' up: {args.nodes} node(s) "
          f"{state['hosts'][0]}..{state['hosts'][-1]}, bridge namespace {state['bridge_ns']}, "
          f"{state['addresses'][0]}-{state['addresses'][-1].rsplit('.', 1)[1]}/{PREFIX_LEN} on "
          f"{IFACE}, {shaped}")
    print(f"  state: {state['state_dir']}  (rsh agent for Open MPI: {state['agent']})")
    name_flag = f" --name {args.name}" if args.name != DEFAULT_NAME else ""
    print("  run on it:  scripts/ffbench run configs/sweeps/emu.yaml --launcher emu"
          + (f" --emu-name {args.name}" if name_flag else ""))
    print(f"  remove it:  scripts/ffbench emu down{name_flag}")
    return 0


def cmd_down(args):
    require_root("ffbench emu down")
    down(args.name)
    return 0


def cmd_status(args):
    state = load_state(args.name)
    if state is None:
        print(f"ffbench emu: cluster '{args.name}' is not up")
        return 1
    present = set(_netns_list())
    missing = [h for h in state["hosts"] + [state["bridge_ns"]] if h not in present]
    print(f"ffbench emu: cluster '{args.name}': {state['nodes']} node(s), links {state['link_rate']}"
          + (f"; MISSING namespaces: {', '.join(missing)}" if missing else "; all namespaces present"))
    for host, addr in zip(state["hosts"], state["addresses"]):
        print(f"  {host:<14} {addr}/{state['prefix_len']} on {state['iface']}")
    return 1 if missing else 0


def register(sub):
    p = sub.add_parser("emu", help="set up an emulated multi-node cluster on this machine (root)",
                       description=__doc__.split("\n")[0])
    esub = p.add_subparsers(dest="emu_command", metavar="up|down|status")
    esub.required = True
    pu = esub.add_parser("up", help="create N emulated nodes (deletes leftovers first)")
    pu.add_argument("nodes", metavar="N", type=int, help="number of nodes")
    pu.add_argument("--link-rate", default="10gbit",
                    help="tc rate of every node's link, each way (default 10gbit; none = unshaped)")
    pu.add_argument("--congestion", default=DEFAULT_CONGESTION,
                    help=f"TCP congestion control on the links' routes (default "
                         f"{DEFAULT_CONGESTION}; system = the machine's default)")
    pu.add_argument("--name", default=DEFAULT_NAME, help="cluster name (namespace prefix)")
    pu.set_defaults(func=cmd_up)
    pd = esub.add_parser("down", help="remove the emulated cluster")
    pd.add_argument("--name", default=DEFAULT_NAME, help="cluster name (namespace prefix)")
    pd.set_defaults(func=cmd_down)
    ps = esub.add_parser("status", help="show the emulated cluster")
    ps.add_argument("--name", default=DEFAULT_NAME, help="cluster name (namespace prefix)")
    ps.set_defaults(func=cmd_status)
