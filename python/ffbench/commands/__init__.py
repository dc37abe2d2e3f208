"""One module per `ffbench` subcommand, in help order. Each defines register(subparsers), which adds
its parser and sets `func`: the function that takes the parsed arguments and returns the exit
status."""
from ffbench.commands import (compare, cost, emu, export, importcmd, merge, model, report, run)

MODULES = (run, emu, merge, compare, report, export, cost, model, importcmd)
