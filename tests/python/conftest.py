"""Shared fixtures of the pytest suite."""
import os
import sys

# Tests import the package built in place under python/ (see the Makefile).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
