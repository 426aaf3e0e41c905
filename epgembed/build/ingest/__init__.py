"""Ingest: XMLTV dumps (files, archives, pipes) into programmes, programmes into the catalog."""
