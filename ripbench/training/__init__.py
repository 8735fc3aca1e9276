"""Training code for the models that ship with ripbench: :mod:`ripbench.training.shapes`.

Importing this package is cheap; torch and diffusers load when a training module is imported.
"""
