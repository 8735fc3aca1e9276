"""Data sets that ripbench generates or ships: :mod:`ripbench.datasets.shapes` (Simple Shapes).

Importing this package is cheap; each data set's module loads on first use.
"""
