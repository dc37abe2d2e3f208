"""`ffbench report RESULTS... --out DIR [--markdown FILE]`: plots (PNG) and a Markdown report.

The command line only; the work and its description: ffbench.analysis.report.
"""
import os

from ffbench.analysis.report import DEFAULT_REFERENCE, build_report
from ffbench.data import paths


def cmd_report(args):
    out_dir = args.out
    md_path = args.markdown or os.path.join(out_dir, "report.md")
    ref = paths.config_path(args.reference)
    md, figures = build_report(args.results, out_dir, md_path, ref)
    print(f"ffbench report: {md} with {len(figures)} plot(s) in {out_dir}: "
          + ", ".join(os.path.basename(f) for f in figures))
    return 0


def register(sub):
    p = sub.add_parser("report", help="make plots (PNG) and a Markdown report from results files",
                       description=__doc__.split("\n")[0])
    p.add_argument("results", metavar="RESULTS", nargs="+", help="results file(s)")
    p.add_argument("--out", default="results/report", help="folder for the PNGs (and report.md "
                   "unless --markdown); default results/report")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown report here instead "
                   "(image links are made relative to it), e.g. REPORT.md")
    p.add_argument("--reference", default=DEFAULT_REFERENCE,
                   help=f"reference file (default {DEFAULT_REFERENCE})")
    p.set_defaults(func=cmd_report)
