"""The catalog items a fresh dump adds to a trained catalog (a refresh: nightly/refresh.py).

    shows = added_shows(catalog, programmes, cfg)     # ids len(catalog).., in key order

The dump's programmes are built into items the way ingest builds them (catalog_build:
episode markers stripped, spellings merged, airings, guide features, description). An item
is new when the catalog knows neither its key nor any of its other spellings (its aliases,
or a spelling that squashes alike: the nightly would merge it into that show). A title
the catalog has keeps its item until the nightly, whatever the dump says of it (a moved
airing, new categories). A new item is linked to a series the catalog has the way ingest
links it: "Der Bergdoktor: Neue Folge" to "der bergdoktor" when that title airs alone in the
catalog or names a series there, "Live: News Central" to "news central"; else to what the
dump itself says (a new series with several episodes in it), else to none.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Iterable

from epgembed.artifact.catalog import Catalog
from epgembed.artifact.show import Show
from epgembed.build.ingest.catalog_build import ProgrammeLike, build_catalog
from epgembed.config import Config
from epgembed.text.normalize import split_series, squash


def added_shows(catalog: Catalog, programmes: Iterable[ProgrammeLike], cfg: Config,
                dropped: Counter[str] | None = None) -> list[Show]:
    """The items of `programmes` that `catalog` lacks, with ids len(catalog).. (in the
    order of their keys) and linked to the catalog's series; `dropped` as build_catalog's."""
    fresh = build_catalog(programmes, cfg.catalog, dropped, cfg.features)
    squashed = {squash(k) for k in catalog.by_key}
    new = [s for s in fresh.shows
           if not any(k in catalog.by_key or squash(k) in squashed for k in (s.key, *s.aliases))]
    return [dataclasses.replace(s, id=len(catalog) + i, series=series_of(catalog, s))
            for i, s in enumerate(new)]


def series_of(catalog: Catalog, show: Show) -> str | None:
    """The series a new item belongs to: a series of the catalog its key names (its part
    before ": " or " - " airs alone there or names a series; or its longer part after a
    label does), else the one the fresh dump gave it (catalog_build), else None."""
    split = split_series(show.key)
    if split is not None:
        prefix, suffix = split[0], show.key[len(split[0]):].lstrip(" :-|\u2013\u2014")
        if prefix in catalog.series_keys:
            return prefix
        for head in (prefix, suffix if len(suffix) > len(prefix) else None):
            i = catalog.by_key.get(head) if head else None
            if i is not None:
                return catalog.shows[i].series or catalog.keys[i]
    return show.series
