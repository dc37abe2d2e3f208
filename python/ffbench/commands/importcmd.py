"""`ffbench import KIND FILE... --output R.h5 [--label L]`: other tools' results as ffbench runs.

The command line only; the work and its description: ffbench.importers (the mapping into results/SCHEMA.md) and docs/interop.md.
"""
import sys

from ffbench.errors import UsageError
from ffbench.importers import KINDS, append_all, parse_files


def cmd_import(args):
    argv = ["ffbench"] + list(getattr(args, "_argv", None) or sys.argv[1:])
    if args.ranks is not None and args.ranks < 1:
        raise UsageError(f"--ranks {args.ranks}: expected a rank count >= 1")
    parsed = parse_files(args.kind, args.files, args, argv)
    try:
        ids = append_all(args.output, [(a, t) for _p, a, t, _i in parsed])
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write ({exc.strerror or exc})") from None
    for (path, attrs, _tables, imp), rid in zip(parsed, ids):
        extra = f", status {attrs['status']}" if attrs["status"] != "complete" else ""
        print(f"ffbench import: {path} -> {args.output} /runs/{rid} ({attrs['program']}, "
              f"{imp.tool} {imp.tool_version}, {imp.rows()} rows{extra})")
        for note in imp.notes:
            print(f"ffbench import: note: {note}", file=sys.stderr)
    return 0


def register(sub):
    p = sub.add_parser("import", help="add other tools' results (nccl-tests, OSU, IOR, fio) as runs",
                       description=__doc__.split("\n")[0])
    p.add_argument("kind", metavar="KIND", choices=KINDS,
                   help="the tool that wrote the files: " + ", ".join(KINDS))
    p.add_argument("files", metavar="FILE", nargs="+", help="the tool's output file(s)")
    p.add_argument("--output", "-o", required=True, metavar="R.h5",
                   help="results file to append the runs to (created when missing)")
    p.add_argument("--label", help="label of the imported runs (default import:<file name>)")
    p.add_argument("--ranks", type=int, metavar="N",
                   help="osu: the rank count (OSU does not print it; needed for busbw)")
    p.add_argument("--hosts", metavar="H[,H...]",
                   help="where the tool ran, when the file does not say (one name for every "
                        "rank, or one per rank); overrides the file's host names")
    p.add_argument("--cpu-model", metavar="TEXT",
                   help="the CPU model of the machine the tool ran on (puts the run on the "
                        "same machine as ffbench's own runs there in compare/report)")
    p.add_argument("--collective", metavar="NAME",
                   help="nccl-tests text before 2.19 (no '# Collective test starting' line): "
                        "allreduce, allgather, ... when the file name does not say")
    p.add_argument("--placement", choices=("out-of-place", "in-place"),
                   help="osu: the placement of the rows (OSU does not print -l; default "
                        "out-of-place)")
    p.add_argument("--fs-type", metavar="TYPE",
                   help="ior, fio: the file system type (e.g. ext4, fuse.hf3fs); the files "
                        "do not record it")
    p.set_defaults(func=cmd_import)
