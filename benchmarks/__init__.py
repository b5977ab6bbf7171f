"""Reproducible speed and memory benchmarks; ``python -m benchmarks.run`` runs them all."""
