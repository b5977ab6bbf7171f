"""Beam I/O shared by both jobs: matching inputs, writers, reading earlier runs' predictions."""
