"""Offline inspection: why a neighbour (leave-one-token-out explanations), outlier scans, the HTML report."""
