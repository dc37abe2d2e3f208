"""`python -m ffbench ...`: the same entry as the ffbench command."""
import sys

from .cli import main

sys.exit(main())
