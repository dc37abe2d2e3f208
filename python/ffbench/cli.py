"""The `ffbench` command: parse the command line, run the subcommand, and turn every FfbenchError
into one line `ffbench <command>: <message>` and exit status 2."""
import argparse
import sys

from ffbench import commands
from ffbench.errors import FfbenchError

DESCRIPTION = ("Run benchmark sweeps, compare the results with the Fire-Flyer paper's numbers, and "
               "turn them into reports, tables and cluster-scale models.")


def build_parser():
    parser = argparse.ArgumentParser(prog="ffbench", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in commands.MODULES:
        module.register(sub)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    who = f"ffbench {args.command}"
    try:
        return int(args.func(args) or 0)
    except FfbenchError as exc:
        sys.stderr.write(f"{who}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{who}: interrupted\n")
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the reader went away: not an error of ours.
        sys.stderr.close()
        return 0
