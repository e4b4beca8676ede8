"""Benchmark suites and their shared machinery (zoo, cells, devices, timing, rows)."""
