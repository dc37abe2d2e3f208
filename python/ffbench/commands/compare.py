"""`ffbench compare RESULTS... [--reference REF]`: measured values against reference values.

The command line only; the work and its description: ffbench.analysis.compare.
"""
from ffbench.analysis.compare import compare_and_print
from ffbench.data import paths
from ffbench.data.config import parse_size
from ffbench.errors import UsageError


def _fraction(text, flag):
    if text is None or str(text).lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a fraction such as -0.2, or none") from None


def cmd_compare(args):
    lower = _fraction(args.lower, "--lower")
    upper = _fraction(args.upper, "--upper")
    if lower is not None and lower > 0:
        raise UsageError(f"--lower {args.lower}: expected a fraction <= 0, e.g. -0.2")
    if upper is not None and upper < 0:
        raise UsageError(f"--upper {args.upper}: expected a fraction >= 0, e.g. 0.2")
    min_size = parse_size(args.min_size, "--min-size")
    ref = paths.config_path(args.reference)
    return compare_and_print(args.results, ref, lower, upper, min_size,
                             None if args.placement == "both" else args.placement, args.markdown,
                             args.all)


def register(sub):
    p = sub.add_parser("compare", help="compare results with the paper's numbers or with another run",
                       description=__doc__.split("\n")[0])
    p.add_argument("results", metavar="RESULTS", nargs="+", help="results file(s)")
    p.add_argument("--reference", default="configs/reference/fire-flyer-2.yaml",
                   help="reference YAML, or an older results file (.h5) to compare against "
                        "(default configs/reference/fire-flyer-2.yaml)")
    p.add_argument("--lower", default="-0.2",
                   help="results-file mode: lower tolerance fraction (default -0.2)")
    p.add_argument("--upper", default="none",
                   help="results-file mode: upper tolerance fraction (default none)")
    p.add_argument("--min-size", default="1M",
                   help="results-file mode: smallest message size compared (default 1M)")
    p.add_argument("--placement", default="out-of-place",
                   choices=("out-of-place", "in-place", "both"),
                   help="results-file mode: which collective placement (default out-of-place)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--all", action="store_true",
                   help="also list every raw reference row by row (reference-file mode)")
    p.set_defaults(func=cmd_compare)
