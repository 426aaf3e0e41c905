"""Building the catalog from programmes: one item per title as aired (episode markers
stripped), linked to its series, or series folded into one show (`fold_series`).

A show is what a viewer would call one title: episode markers are stripped
(normalize.title_key) and "Series: Episode" titles are linked to (or folded into) their
series when the data says the prefix is a series (it recurs with many different
suffixes, the suffix is the programme's sub-title, or the prefix also airs alone).
"CSI: Miami", always shown with the same suffix, stays whole. One show spelled two ways
("Star Trek: Deep Space Nine", "Star Trek - Deep Space Nine") is one item, the other
spelling its alias. Titles that are only an episode's number ("Episode 17") make no item.
Each item aggregates its airings' guide features (epgembed/text/features.py). Nothing here
knows about any provider.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

from epgembed.artifact.catalog import Catalog
from epgembed.artifact.show import FIELD_LIMITS, FieldLimits, Show
from epgembed.config import CatalogConfig, FeatureConfig
from epgembed.text.features import channel_feature, item_features, programme_features
from epgembed.text.normalize import (clean_text, drop_time_prefix, fold, is_bare_episode, normalize_category, split_series, squash,
                                     strip_episode, title_forms)

EMPTY_KEY = "title with an empty key"   # build_catalog's `dropped` count of such programmes
BARE_EPISODE = "title that is only an episode number"


class ProgrammeLike(Protocol):
    title: str
    sub_title: str | None
    categories: tuple[str, ...]
    channel: str


@dataclass(slots=True)
class _Acc:
    """What the programmes of one title add up to while a dump is read: one per title, so
    at 1M titles every field counts (about 2.7 KB a title; containers made when needed)."""
    airings: int = 0
    spellings: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    channels: list = field(default_factory=list)         # distinct, a few: a list is 150 B less
    subtitle_hits: int = 0   # airings whose sub-title is the part after the separator
    descs: Counter = field(default_factory=Counter)
    features: Counter = field(default_factory=Counter)   # guide feature -> airings carrying it
    aliases: set | None = None                           # other keys folded into this one

    def context(self, chars: int) -> str:
        out, n = [], 0
        for text, _ in self.descs.most_common():
            if n >= chars:
                break
            out.append(text[: chars - n])
            n += len(out[-1]) + 1
        return " ".join(out)

    def absorb(self, other: "_Acc", key: str, spellings: bool = True) -> None:
        """Fold `other` (the accumulator of `key`) into this one; `key` becomes an alias."""
        self.airings += other.airings
        self.categories.update(other.categories)
        self.channels += [c for c in other.channels if c not in self.channels]
        self.descs.update(other.descs)
        self.features.update(other.features)
        self.subtitle_hits += other.subtitle_hits
        self.aliases = (self.aliases or set()) | (other.aliases or set()) | {key}
        if spellings:
            self.spellings.update(other.spellings)

    def title(self, fallback: str) -> str:
        """The display title, always a spelling the feed aired (so an answer can be found in
        the schedule): the most frequent one without an episode part or a time prefix when
        there is one, else the most frequent (the shorter on a tie)."""
        if len(self.spellings) <= 1:
            return next(iter(self.spellings), fallback)
        ranked = sorted(self.spellings.items(), key=lambda kv: (kv[1], -len(kv[0]), kv[0]), reverse=True)
        return next((t for t, _ in ranked if not strip_episode(t)[1] and drop_time_prefix(t) == t),
                    ranked[0][0])


class _Memo(dict):
    """A bounded memo of a pure function (cleared when full): repeated airings, categories
    and channels are cleaned once, and equal results share one string object."""

    def __init__(self, fn, size: int = 1 << 16):
        super().__init__()
        self.fn, self.size = fn, size

    def __missing__(self, arg):
        if len(self) >= self.size:
            self.clear()
        value = self[arg] = self.fn(arg)
        return value


def _title_parts(strip: bool):
    """raw title -> (key, display spelling, why it makes no item or None)."""
    def parts(title: str) -> tuple[str, str, str | None]:
        forms = title_forms(title)
        key = forms.key if strip else forms.exact
        why = EMPTY_KEY if not key else BARE_EPISODE if strip and is_bare_episode(key) else None
        return key, forms.display, why
    return parts


def _accumulate(programmes: Iterable[ProgrammeLike], strip: bool = True, context_chars: int = 0,
                dropped: Counter[str] | None = None) -> dict[str, _Acc]:
    acc: dict[str, _Acc] = defaultdict(_Acc)
    titles = _Memo(_title_parts(strip))
    categories = _Memo(normalize_category)
    channels = _Memo(lambda c: c)
    feature_names = _Memo(lambda f: f)   # one string per distinct feature, not one per airing
    descs = _Memo(clean_text)
    subtitles = _Memo(lambda t: title_forms(t).key)
    for p in programmes:
        key, spelling, why = titles[p.title]
        if why:  # nothing left of the title, or only an episode number: counted, not a show
            if dropped is not None:
                dropped[why] += 1
            continue
        a = acc[key]
        a.airings += 1
        a.spellings[spelling] += 1
        for c in p.categories:
            nc = categories[c]
            if nc:
                a.categories[nc] += 1
        if p.channel:
            channel = channels[p.channel]
            if channel not in a.channels:
                a.channels.append(channel)
        a.features.update(feature_names[f] for f in programme_features(p))
        if context_chars:
            desc = getattr(p, "desc", None) or p.sub_title
            if desc and len(a.descs) < 16:
                a.descs[descs[desc[: context_chars * 2]]] += 1
        if p.sub_title:
            split = split_series(key)
            if split and subtitles[p.sub_title] == split[1]:
                a.subtitle_hits += 1
    return acc


def _merge_spellings(acc: dict[str, _Acc]) -> None:
    """Keys that squash alike (one show spelled with other punctuation) become one item:
    the key aired most often, the others its aliases."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key in acc:
        sq = squash(key)
        if sq:
            groups[sq].append(key)
    for keys in groups.values():
        if len(keys) > 1:
            keys.sort(key=lambda k: (-acc[k].airings, k))
            for other in keys[1:]:
                acc[keys[0]].absorb(acc.pop(other), other)


def _series_prefixes(acc: dict[str, _Acc], cfg: CatalogConfig) -> dict[str, str]:
    """key -> series key, for the keys that belong to a series (Show.series).

    - "Prefix: suffix" titles are episodes of the prefix when it recurs with several
      suffixes and the data says it is a series: the prefix also airs alone, a suffix is
      the programme's sub-title, or suffixes change often (`_is_series`);
    - a title that adds a word to a show that airs alone is that show: "Tennis Tonight -
      Live" is "Tennis Tonight" (the prefix airs alone), "Live: News Central" is "News
      Central" (the longer suffix airs alone).
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for key in acc:
        split = split_series(key)
        if split:
            groups[split[0]].append(key)
    series_of: dict[str, str] = {}
    for prefix, keys in groups.items():
        if _is_series(prefix, keys, acc, cfg):
            for k in keys:
                series_of[k] = prefix
    for prefix, keys in groups.items():
        for k in keys:
            if k in series_of:
                continue
            suffix = k[len(prefix):].lstrip(" :-|\u2013\u2014")
            if prefix in acc:
                series_of[k] = series_of.get(prefix, prefix)
            elif suffix in acc and len(suffix) > len(prefix):
                series_of[k] = series_of.get(suffix, suffix)
    return series_of


def _is_series(prefix: str, keys: list[str], acc: dict[str, _Acc], cfg: CatalogConfig) -> bool:
    """Whether the titles `keys` ("prefix: ...") are episodes of one series. Not when the
    prefix is a label that other shows carry ("Live: Racing Xtra", "Live: News Central"):
    it never airs alone, most of its titles are recurring shows of their own (several
    descriptions each, where an episode has one) and no channel carries most of them."""
    n = len(keys)  # distinct suffixes
    if n < 2:
        return False
    airings = sum(acc[k].airings for k in keys)
    if prefix in acc:
        return True
    recurring = sum(1 for k in keys if len(acc[k].descs) >= 2)
    channels = Counter(c for k in keys for c in acc[k].channels)
    if recurring * 2 >= n and max(channels.values(), default=0) * 2 < n:
        return False
    subtitles = any(acc[k].subtitle_hits for k in keys)
    return subtitles or (n >= cfg.series_min_suffixes and n / airings >= cfg.series_min_suffix_ratio)


def _display_prefix(spelling: str, prefix_key: str) -> str:
    split = split_series(spelling)
    if split and fold(split[0]) == prefix_key:
        # cut the spelling at the same separator, keeping its case
        for sep in (": ", " - ", " | ", " \u2013 ", " \u2014 "):
            i = spelling.find(sep)
            if i > 0 and fold(spelling[:i].strip()) == prefix_key:
                return spelling[:i].strip()
    return prefix_key


def build_catalog(programmes: Iterable[ProgrammeLike], cfg: CatalogConfig | None = None,
                  dropped: Counter[str] | None = None,
                  features: FeatureConfig | None = None) -> Catalog:
    """Fold programmes into shows; ids follow the order of the sorted show keys. `dropped`
    counts the programmes that make no show, by reason (EMPTY_KEY, BARE_EPISODE)."""
    cfg, fcfg = cfg or CatalogConfig(), features or FeatureConfig()
    acc = _accumulate(programmes, cfg.strip_episodes, cfg.context_chars, dropped)
    _merge_spellings(acc)
    series_of = _series_prefixes(acc, cfg)
    if not cfg.fold_series:
        return _unfolded(acc, series_of, cfg, fcfg)
    merged: dict[str, _Acc] = defaultdict(_Acc)
    for key in list(acc):      # popped as folded: the accumulators and shows never all coexist
        a = acc.pop(key)
        target = series_of.get(key, key)
        if target == key:
            merged[target].absorb(a, key)
            if merged[target].aliases:
                merged[target].aliases.discard(key)
        else:
            merged[target].absorb(a, key, spellings=False)
            for spelling, c in a.spellings.items():
                merged[target].spellings[_display_prefix(spelling, target)] += c
    return Catalog([_show(i, key, merged.pop(key), None, cfg, fcfg)
                    for i, key in enumerate(sorted(merged))])


def _show(i: int, key: str, a: _Acc, series: str | None, cfg: CatalogConfig,
          fcfg: FeatureConfig) -> Show:
    """The item of `key`, within FIELD_LIMITS (what Catalog.load would refuse is never built)."""
    show = Show(i, key, a.title(key), dict(a.categories), a.airings, sorted(a.channels),
                sorted((a.aliases or set()) - {key}), series, a.context(cfg.context_chars),
                item_features(a.features, a.airings, fcfg))
    return show if show.problem() is None else _capped(show, a)


def _capped(show: Show, a: _Acc, lim: FieldLimits = FIELD_LIMITS) -> Show:
    """`show` cut to `lim`, keeping its most frequent values: categories and channels by
    airings, aliases in key order (no count is kept per alias). Text over the show's total
    goes least frequent first: channels, then aliases, then categories. What one show
    gathers over many programmes and nights never fails a build (a single programme over
    a limit never gets here: the reader skips it)."""
    cats = sorted(show.categories, key=lambda c: (-show.categories[c], c))[: lim.categories]
    airings = {c: a.features.get(channel_feature(c), 0) for c in show.channels}
    channels = sorted(show.channels, key=lambda c: (-airings[c], c))[: lim.channels]
    aliases = show.aliases[: lim.aliases]
    fixed = [show.title, show.key, show.series or "", show.context, *show.features]
    total = sum(map(len, fixed)) + sum(len(v) for part in (channels, aliases, cats) for v in part)
    for part in (channels, aliases, cats):
        while total > lim.show_chars and part:
            total -= len(part.pop())
    show.categories = {c: show.categories[c] for c in cats}
    show.channels, show.aliases = sorted(channels), aliases
    return show.checked()


def _unfolded(acc: dict[str, _Acc], series_of: dict[str, str], cfg: CatalogConfig,
              fcfg: FeatureConfig) -> Catalog:
    """One item per title as aired (episode counters stripped), linked to its series."""
    prefixes = set(series_of.values())
    shows = []
    for i, key in enumerate(sorted(acc)):
        a = acc.pop(key)       # freed as its show is made (peak memory: one of the two)
        series = series_of.get(key, key if key in prefixes else None)
        shows.append(_show(i, key, a, series, cfg, fcfg))
    return Catalog(shows)


def iter_titles(catalog: Catalog) -> Iterator[str]:
    """Texts the tokenizer learns from: every show key and alias."""
    for s in catalog.shows:
        yield s.key
        yield from s.aliases
