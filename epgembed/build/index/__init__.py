"""Index build: the Annoy forest, the neighbour table (exact or clustered), the probe files."""
