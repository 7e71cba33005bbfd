"""Benchmarks: `make bench` (or `python -m benchmarks [NAME ...]`) prints and saves figures.

Every benchmark measures its subject and its baseline in the same run, on a private embedded
stack (free ports, temporary state), and records the machine it ran on.
"""
