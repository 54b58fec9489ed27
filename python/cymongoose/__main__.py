"""`python3 -m cymongoose`: the command line (see cymongoose.cli and docs/cli.md)."""
import sys

from .cli import main

if __name__ == "__main__":  # importing this module (stubtest, pydoc) runs nothing
    sys.exit(main())
