"""Generators apart from the runtime: the embedded sample guide and synthetic guides for benchmarks."""
