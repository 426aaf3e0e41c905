"""A whole programme as a query: the vector a catalog item with this one airing gets.

A client that has tomorrow's guide can send everything it says about a title the catalog
lacks (requests.ProgrammeQuery). Its bag is made of the tokens a catalog item gets in
training (Tokenizer.item_tokens): the title's tokens, its description's words as context
words, and the guide features of this one airing with share 1 (text/features.py), so the
vector is the one training gives a title that aired once this way.

    vector = programme_vector(model, ProgrammeQuery(title="...", desc="...", channel="..."))
"""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np

from epgembed.config import Config, FeatureConfig
from epgembed.query.requests import ProgrammeQuery
from epgembed.text.features import context_features, item_features, programme_features
from epgembed.text.normalize import clean_text
from epgembed.text.tokenize import Tokenizer


def airing_features(p: ProgrammeQuery, cfg: FeatureConfig) -> dict[str, float]:
    """Feature -> share of the programme's one airing, as a catalog item that aired once
    gets them (item_features of its programme_features)."""
    # the features.GuideRecord of the airing without its schedule slot (channel, start,
    # duration: context_features gives those, also a duration without a start)
    airing = SimpleNamespace(channel="", start="", stop="", sub_title=p.sub_title,
                             episode=bool(p.episode_num), credits=tuple(p.credits),
                             year=str(p.year) if p.year is not None else "",
                             country=p.country or "", rating=p.rating or "")
    names = context_features(p.channel, p.start, p.duration) + programme_features(airing)
    return item_features(Counter(names), 1, cfg)


def description(p: ProgrammeQuery, chars: int) -> str:
    """The text of the programme's context words, as the catalog keeps one airing's
    (ingest/catalog_build.py: its description, else its sub-title, cleaned, at most
    `chars` characters; nothing when `chars` is 0)."""
    text = p.desc or p.sub_title
    return clean_text(text[: chars * 2])[:chars] if text and chars else ""


def programme_tokens(tokenizer: Tokenizer, p: ProgrammeQuery, cfg: Config) -> list[tuple[int, str, float]]:
    """(token id, surface, weight) of the programme's bag (Tokenizer.item_tokens)."""
    return tokenizer.item_tokens(p.title, description(p, cfg.catalog.context_chars),
                                 airing_features(p, cfg.features))


def programme_vector(model, p: ProgrammeQuery) -> np.ndarray | None:
    """The programme's vector in `model` (a RelatedModel), or None when its bag is empty."""
    tokens = programme_tokens(model.tokenizer, p, model.config)
    if not tokens:
        return None
    return model.vector_of([i for i, _, _ in tokens], [w for _, _, w in tokens])
