"""Artifact: the model folder as one typed unit: its manifest and table of files
(manifest.py), its parts (parts.py, catalog.py, show.py), reading and writing it
(folder.py), its file-system safety (bundle.py) and the format 1 -> 2 converter (upgrade.py)."""
