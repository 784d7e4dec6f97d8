"""Benchmarks: `python -m bench [section …] [--quick]` (see bench/__main__.py).

Every figure is measured next to a baseline in the same run, so that a noisy machine
moves both and leaves their ratio alone.
"""
