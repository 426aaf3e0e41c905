"""Nightly: retrain from fresh dumps with history, consistency gates and a quality gate, then publish."""
