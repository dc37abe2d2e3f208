"""Command-line entry: each subcommand lives in its own module with register(subparsers)."""
import argparse
import importlib
import sys

# Subcommand modules, in help order. Each defines register(subparsers) and sets a `func` default
# taking the parsed args and returning an exit status.
SUBCOMMAND_MODULES = ("run", "emu", "merge", "compare", "report", "export", "cost", "model",
                      "importers")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser():
    parser = argparse.ArgumentParser(prog="ffbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"ffbenchlib.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ffbenchlib.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        sys.stderr.write(f"ffbench {args.command}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"ffbench {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the reader went away: not an error of ours.
        sys.stderr.close()
        return 0
