"""Artifact: the self-describing model folder (bundle) and the versioned models root (registry)."""
