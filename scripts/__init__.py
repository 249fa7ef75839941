"""Benchmark and experiment programs, each runnable as ``python scripts/<name>.py`` and importable as
``ssmrl_scripts.<name>`` (setup.py maps this folder there): ``ssmrl bench <name>`` runs the installed ones."""
