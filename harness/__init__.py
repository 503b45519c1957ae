"""lstm-bench: measures recurrent networks in PyTorch.

Layout: models.py (the implementations), registry.py (names, backends, skips),
tutorial.py (the tutorial's example, corrected), env.py (threads, provenance),
cli.py (python -m harness ...).
"""
