#!/usr/bin/env python
"""effbench command line. ``python bench.py --help`` lists the subcommands."""

import sys

from effbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
