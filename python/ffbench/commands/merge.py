"""`ffbench merge OUT.h5 IN.h5...`: copy the runs of several results files into one, atomically;
`ffbench merge --compact FILE.h5`: fold an index file's segments back into one single file.

The command line only; the work and its description: ffbench.data.merge.
"""
import os

from ffbench.data import h5io
from ffbench.data.merge import merge_files
from ffbench.errors import UsageError


def cmd_merge(args):
    if args.compact:
        if args.inputs:
            raise UsageError("--compact FILE.h5: give the one file to compact, no inputs")
        if not os.path.exists(args.out):
            raise UsageError(f"{args.out}: no such results file")
        n = h5io.compact(args.out)
        print(f"ffbench merge --compact: {args.out}: " +
              (f"{n} run(s) folded into one file" if n else "already one file, nothing to do"))
        return 0
    inputs = []
    for path in args.inputs:
        if os.path.isdir(path):
            inputs += sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".h5"))
        else:
            inputs.append(path)
    if not inputs:
        raise UsageError("no input files: give one or more results files (or folders of .h5 files)")
    added, skipped = merge_files(args.out, inputs)
    print(f"ffbench merge: {added} run(s) from {len(inputs)} file(s) added to {args.out}"
          + (f"; {skipped} already there, skipped" if skipped else ""))
    return 0


def register(sub):
    p = sub.add_parser("merge", help="copy the runs of several results files into one",
                       description=__doc__.split("\n")[0])
    p.add_argument("out", metavar="OUT.h5", help="results file to add to (created when missing)")
    p.add_argument("inputs", metavar="IN.h5", nargs="*",
                   help="results files (or folders: every .h5 inside)")
    p.add_argument("--compact", action="store_true",
                   help="fold OUT.h5's segment files (OUT.h5.runs-*/) back into OUT.h5; no inputs")
    p.set_defaults(func=cmd_merge)
