"""Results against references: compare (rows and PASS/FAIL), twins and verdict (hardware-normalised
verdicts), coverage (what a sweep can cover), ddp (data-parallel scaling) and report (plots and
Markdown)."""
