"""Model: two lookup tables (token rows, category rows), the title vector, sampling, training."""
