"""Evaluation: the protocol's held-out split, its scores, and the systems it compares."""
