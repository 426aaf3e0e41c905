"""Format 1 -> 2, in one place: what a folder or a history night written before format 2
becomes when it is read. Nothing on disk is rewritten (a version's files keep their
hashes); every reader of an older file calls one of these:

    manifest(data, 1, folder)   manifest.json  (artifact/manifest.py read_manifest)
    tokenizer(meta)             tokenizer.json (artifact/folder.py read_folder)
    config(sections)            a manifest's "config" and the tokenizer's own
    night_row(row)              a history night's programme rows (nightly/nightfile.py)

Format 1 grew without a version change; a format 1 manifest may lack what later code
added: `search` (then: exact search up to the default limit, else Annoy), `neighbours` and
`neighbour_table` (then: no table; a table was exact), `feature_kinds` (counted from the
catalog, or found inside `counts`), `quality`, `libraries`, and the data summary's
`skip_counts`, `empty_titles`, `dropped_programmes` (then: not recorded, so none). Its config
may hold options since removed (left out) and lack options since added (their defaults).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from epgembed.config import Config, FeatureConfig, IndexConfig
from epgembed.text.tokenize import FORMAT as TOKENIZER_FORMAT

TOKENIZER_V1 = "epgembed-tokenizer/1"
NIGHT_ROW_FIELDS = 7      # [channel, start, title, sub_title, [categories], desc, {guide}]


def manifest(data: dict, version: int, folder: Path) -> dict:
    """A format `version` manifest as format 2 (only 1 is older). What format 1 always had
    is left as it is: when missing, the typed manifest names it."""
    if version != 1:
        raise ValueError(f"no upgrade from format {version}")
    m = {**data, "format_version": 2, "config": config(data.get("config") or {})}
    if isinstance(m.get("counts"), dict):
        m["counts"] = dict(m["counts"])
        kinds = m["counts"].pop("feature_kinds", None)
        if m.get("feature_kinds") is None:
            m["feature_kinds"] = kinds if kinds is not None else _catalog_kinds(folder)
    m["neighbours"] = m.get("neighbours") or 0
    if m["neighbours"] and not m.get("neighbour_table"):
        m["neighbour_table"] = {"method": "exact", "recall_at_10": None}
    m.setdefault("neighbour_table", None)
    if isinstance(m.get("n_shows"), int):
        m["search"] = _search(m.get("search"), m["n_shows"], folder)
    m["quality"] = m.get("quality") or {}
    m["libraries"] = m.get("libraries") or {}
    if isinstance(m.get("data"), dict):
        m["data"] = {"skip_counts": {}, "empty_titles": 0, "dropped_programmes": {}, **m["data"]}
    return m


def _search(entry: dict | None, n: int, folder: Path) -> dict:
    if not entry:
        return {"method": "exact" if n <= IndexConfig().search_exact_max_shows else "annoy"}
    entry = dict(entry)
    if entry.get("method") == "probe" and "rows" not in entry:
        # the first probe entries gave clusters probed ("probe") rather than rows scored
        clusters = entry.get("clusters") or len(np.load(folder / "centroids.npy", mmap_mode="r",
                                                        allow_pickle=False))
        entry["clusters"] = int(clusters)
        entry["rows"] = int(entry.pop("probe")) * n // max(1, int(clusters))
    return entry


def _catalog_kinds(folder: Path) -> dict[str, int] | None:
    """The shows per feature kind of the folder's catalog (None: no catalog to count)."""
    from epgembed.artifact.catalog import Catalog
    path = folder / "catalog.jsonl"
    return Catalog.load(path).feature_kinds() if path.is_file() else None


def config(sections: dict) -> dict:
    """A format 1 config: options this version no longer has left out, missing ones at
    their defaults (format 2 holds every option of Config, and no other)."""
    default = Config()
    known = {f.name: {g.name for g in dataclasses.fields(getattr(default, f.name))}
             for f in dataclasses.fields(Config)}
    return Config.from_dict({name: {k: v for k, v in values.items() if k in known[name]}
                             for name, values in sections.items() if name in known}).to_dict()


def tokenizer(meta: dict) -> dict:
    """tokenizer.json of format 1 as format 2 (a format 2 one, or another, as it is)."""
    if not isinstance(meta, dict) or meta.get("format") != TOKENIZER_V1:
        return meta
    features = dataclasses.asdict(FeatureConfig(**(meta.get("feature_config") or {})))
    return {**meta, "format": TOKENIZER_FORMAT, "config": config({"tokenizer": meta["config"]})["tokenizer"],
            "context_words": meta.get("context_words") or [], "features": meta.get("features") or [],
            "feature_config": features, "ngrams": meta.get("ngrams") or []}


def night_row(row: list) -> list:
    """A history row of format 1 (5, 6 or 7 fields: rows before descriptions, before the
    guide fields) as the 7 fields of format 2."""
    if not isinstance(row, list) or not 5 <= len(row) <= NIGHT_ROW_FIELDS:
        raise ValueError(f"not a programme row of 5 to {NIGHT_ROW_FIELDS} fields")
    return [*row[:5], row[5] if len(row) > 5 else None,
            row[6] if len(row) > 6 and isinstance(row[6], dict) else {}]
