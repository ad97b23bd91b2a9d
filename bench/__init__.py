"""Benchmarks behind docs/PERFORMANCE.md: ``python -m bench`` (``make bench``), ``--quick`` (``make bench-quick``).

Never run by ``make test``; timings are asserted here, against baselines measured in the same run, never in tests.
"""
