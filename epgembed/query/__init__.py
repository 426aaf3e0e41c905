"""Query: related titles, explanations of a pair, outlier scans and their HTML report."""
