"""`ffbench export RESULTS... --csv|--json [--table NAME] [--out FILE]`: results for other tools.

CSV: one line per row of one table (default: collective when present), prefixed with the run's
provenance columns (file, run, program, kind, label, backend, nranks, nnodes, ranks_per_node,
date, status). 2-D columns (per-iteration times) are left out of CSV; use JSON for them.
JSON: every run with its attrs and every table as {column: {units, values}}, 2-D columns included.
"""
import json
import sys

from ffbench.data import results as resmod
from ffbench.data.export import pick_table, to_csv, to_json
from ffbench.errors import UsageError


def cmd_export(args):
    if args.csv == args.json:
        raise UsageError("give exactly one of --csv or --json")
    runs = resmod.load_runs(args.results)
    if args.csv:
        text = to_csv(runs, pick_table(runs, args.table))
    else:
        text = json.dumps(to_json(runs), indent=1, sort_keys=False) + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"ffbench export: {len(runs)} run(s) written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(sub):
    p = sub.add_parser("export", help="write results as CSV (one table) or JSON (everything)",
                       description=__doc__.split("\n")[0])
    p.add_argument("results", metavar="RESULTS", nargs="+", help="results file(s)")
    p.add_argument("--csv", action="store_true", help="CSV of one table (see --table)")
    p.add_argument("--json", action="store_true", help="JSON of every run, attrs and table")
    p.add_argument("--table", help="CSV: which table (default collective, else storage_phases)")
    p.add_argument("--out", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_export)
