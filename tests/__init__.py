"""The test suite; its folders mirror the packages they test (``tests/ssmrl/kernels/test_selective.py`` tests
``ssmrl/kernels/selective.py``), ``tests/project/`` holds the checks on the repository as a whole. Every folder is a
package, so test modules import as ``tests.<path>`` (the Triton child processes rely on it) and may share names."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root
