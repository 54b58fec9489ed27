"""`python3 -m cymongoose`: the command line (see cymongoose.cli and docs/cli.md)."""
import sys

from .cli import main

sys.exit(main())
