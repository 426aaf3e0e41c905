"""Index: building the Annoy forest and the neighbour table, and serve-time lookups in them."""
