"""Guide features: what a programme's XMLTV record says besides its text, as tokens.

A title's bag (StarSpace-style) holds its text tokens and, for a catalog item, the guide's
structure, each feature kind with its own weight (FeatureConfig), all trained by the same
leave-one-out loss:

    channel=<id>       the channels that air it, weighted by their share of its airings
    slot=<0..7>        the three-hour slot of its start time (as the feed writes it)
    day=weekday|weekend
    duration=<bucket>  minutes, in buckets (10, 20, 35, 50, 70, 100, 150, longer)
    episodic=yes|no    an <episode-num> or <sub-title> is present
    credit=<person>    <credits> people (actors, directors, presenters, ...)
    year=<decade>      <date> year, by decade
    country=<code>     <country>
    rating=<value>     <rating><value>

A catalog item aggregates its airings: a feature's share is the share of the item's
airings that carry it. Where a feed lacks a field, the kind is simply absent.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import lru_cache
from typing import Iterable, Protocol

from epgembed.config import FeatureConfig
from epgembed.text.normalize import clean_text, fold

KINDS = ("channel", "slot", "day", "duration", "episodic", "credit", "year", "country", "rating")
DURATION_BUCKETS = (10, 20, 35, 50, 70, 100, 150)
MAX_CREDITS = 8            # people per airing (the first named: the leads)
MAX_FEATURE_CHARS = 80


class GuideRecord(Protocol):
    channel: str
    start: str
    stop: str
    sub_title: str | None
    episode: bool
    credits: tuple[str, ...]
    year: str
    country: str
    rating: str


@lru_cache(maxsize=1 << 16)
def parse_time(stamp: str) -> datetime | None:
    """An XMLTV time ("20220725031800 +0000") as written (the feed's own clock), or None."""
    d = (stamp or "")[:12]
    if len(d) < 12 or not d.isdigit() or not d.isascii():
        return None
    try:
        return datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]))
    except ValueError:
        return None


def duration_bucket(minutes: float) -> str:
    for edge in DURATION_BUCKETS:
        if minutes <= edge:
            return str(edge)
    return "long"


@lru_cache(maxsize=1 << 16)
def _value(text: str | None) -> str:
    return fold(clean_text(text))[:MAX_FEATURE_CHARS] if text else ""


def _slot(t: datetime | None, minutes: float | None) -> list[str]:
    out = []
    if t is not None:
        out += [f"slot={t.hour // 3}", f"day={'weekend' if t.weekday() >= 5 else 'weekday'}"]
    if minutes is not None and 0 < minutes <= 24 * 60:
        out.append(f"duration={duration_bucket(minutes)}")
    return out


def channel_feature(channel: str) -> str:
    """The feature of the channel that airs a programme."""
    return f"channel={channel}"


def context_features(channel: str | None = None, start: str | None = None,
                     minutes: float | None = None) -> list[str]:
    """The features a schedule slot alone gives (what a query may carry as context)."""
    return ([channel_feature(channel)] if channel else []) + _slot(parse_time(start or ""), minutes)


def programme_features(p: GuideRecord) -> list[str]:
    """Feature names of one airing (kind=value), each once."""
    start, stop = parse_time(p.start), parse_time(getattr(p, "stop", ""))
    minutes = (stop - start).total_seconds() / 60 if start and stop else None
    out = ([channel_feature(p.channel)] if p.channel else []) + _slot(start, minutes)
    out.append(f"episodic={'yes' if getattr(p, 'episode', False) or p.sub_title else 'no'}")
    people = (_value(c) for c in getattr(p, "credits", ())[:MAX_CREDITS])
    out += [f"credit={c}" for c in dict.fromkeys(people) if c]
    year = getattr(p, "year", "")[:4]
    if year.isdigit() and year.isascii() and 1900 <= int(year) <= 2100:
        out.append(f"year={year[:3]}0s")
    for kind in ("country", "rating"):
        value = _value(getattr(p, kind, ""))
        if value:
            out.append(f"{kind}={value}")
    return out


def kind_of(feature: str) -> str:
    return feature.split("=", 1)[0]


def item_features(counts: Counter, airings: int, cfg: FeatureConfig) -> dict[str, float]:
    """An item's features from the airings that carry each (`counts`): share of airings,
    the `cfg.per_kind` most frequent of each kind, shares under `cfg.min_share` left out."""
    if airings <= 0:
        return {}
    by_kind: dict[str, list[tuple[str, int]]] = {}
    for f, n in counts.items():
        by_kind.setdefault(kind_of(f), []).append((f, n))
    out = {}
    for kind, items in by_kind.items():
        items.sort(key=lambda fn: (-fn[1], fn[0]))
        for f, n in items[: cfg.per_kind]:
            share = n / airings
            if share >= cfg.min_share:
                out[f] = round(share, 4)
    return dict(sorted(out.items()))


def feature_weight(feature: str, share: float, cfg: FeatureConfig) -> float:
    """The weight of a feature token in a title's bag: its kind's weight times its share."""
    return float(getattr(cfg, kind_of(feature), 0.0)) * share


def vocabulary(item_feature_sets: Iterable[Iterable[str]], cfg: FeatureConfig) -> list[str]:
    """Features of enabled kinds that at least `cfg.min_items` items carry (sorted)."""
    df: Counter[str] = Counter()
    for feats in item_feature_sets:
        df.update(f for f in feats if getattr(cfg, kind_of(f), 0.0) > 0)
    return sorted(f for f, n in df.items() if n >= cfg.min_items)
