"""The measurement tools of scripts/ that are not `ffbench` subcommands: fio-crosscheck,
append-cost, perf-hfreduce. Each module has main(argv) and runs as `python -m ffbench.tools.NAME`;
scripts/<name> runs it through scripts/ffbench (FFBENCH_TOOL=<name>), which picks the Python."""
