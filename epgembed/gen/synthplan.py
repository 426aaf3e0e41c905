"""The plan of a synthetic guide (epgembed.gen.synth): its shape (GuideShape, the knobs
calibrated against the shared dumps' model), its feeds and channels, drawn before any show.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from epgembed.gen.synthtext import GENRES, LANGS, Vocab, vocab_size

MINUTES = (5, 15, 25, 30, 45, 60, 90, 120, 180)
TOPIC_WORDS = 30                       # words of a genre's topic that its titles draw from


@dataclass(frozen=True)
class GuideShape:
    """The guide's structure; each pair is (broadcast, streaming). Measured from the shared
    dumps where a figure says so; the rest calibrated (issue 27, bench/calib.py) until a model
    trained on 11,791 synthetic titles has the shared model's neighbour cosines and spectrum
    (within 0.03) and cluster-probe recall (within 0.02): bench/results/calib.md."""
    feed_titles: int = 1700            # titles a feed, lognormal (shared dumps: 439-2,876)
    feed_sigma: float = 0.5
    streaming_share: float = 0.48      # titles in streaming line-ups (4 of the 7 dumps: 48%)
    lang_share: tuple[float, ...] = (0.37, 0.39, 0.14, 0.08, 0.02)   # LANGS' shares of titles
    channel_titles: tuple[float, float] = (30.0, 5.0)   # median titles a channel (24-58; 3-12)
    channel_sigma: float = 1.0         # lognormal spread (shared: 1 / 5 / 31 / 76 at p10/50/90/99)
    copies_share: float = 0.6          # broadcast channels with 2-4 regional copies
    bare_channels: float = 0.1         # channels whose guide writes no category (a provider's
    # whole channel, as de_magenta's): their titles are the isolated ones (shared: nn1 median
    # 0.72 without a category); 0 left the 10th percentiles of nn1 and nn10 +0.04. ~10% of
    # titles then have no category (shared: 4.8%): they stand for every isolated kind of title
    no_category_share: float = 0.01    # ... and single titles without one
    series_share: tuple[float, float] = (0.08, 0.5)     # draws that are a series, not a title
    # (0.75 of streaming draws made 46% of the titles episodes, shared: 36%)
    words: tuple[float, float, float] = (2.3, 1.3, 2.0)  # title words past the first: a single
    # title, a series' name, an episode's (Poisson means)
    episodes: float = 5.0              # episodes of a series in a feed: median, lognormal; the
    episodes_sigma: float = 1.8        # shared dumps' series: median 4, p90 22, up to 137
    airings: tuple[float, float] = (2.0, 1.0)            # median airings a title, lognormal
    airings_sigma: float = 1.2         # (shared dumps: median 1-2, mean 2-10, a long tail)
    home_hour_share: float = 0.7       # broadcast airings at the title's own hour
    genre_exponent: tuple[float, float] = (1.25, 1.25)  # rank ** -e: a feed's genres' shares;
    # 1.1 spread the variance too thin (top10/top20 -0.05/-0.06), 1.3 gave the top genres too
    # much (top1/top5 +0.04); merged over feeds the shared dumps' fall off as rank ** -0.85
    genre_shuffle: float = 0.8         # each feed's own order of its kind's list (ranks x
    # lognormal noise): the shared feeds lead with different genres, not all with one
    theme_share: tuple[float, float] = (0.55, 0.95)      # titles of their channel's genre
    sub_share: float = 0.6             # ... and its sub-genre
    sub_only_share: float = 0.05       # ... or its sub-genre alone: small categories (0.15 left
    # 10% of titles with no 100 neighbours above 0.35, shared: 0.44)
    second_share: float = 0.4          # a second genre besides, a popular one (as channels'):
    # the shared dumps' titles carry 1.9 categories; fewer left the 100th neighbours too far
    series_category_share: float = 0.9  # streaming titles that carry `Series` (broad: > 30%)
    usual_minutes_share: float = 0.8   # airings of the channel's usual duration
    brand_share: float = 0.15          # title words from the channel's brand words
    topic_share: float = 0.2           # title words from the genre's topic, and description
    desc_topic_share: float = 0.15     # words: 0.3 made titles of a genre near twins (nn1 p10 +0.05)
    function_share: float = 0.2        # title words (not the first) that are small words
    shared_words: float = 0.0          # Zipf words of other languages' titles that are English
    zipf_exponent: float = 1.0
    vocab_scale: float = 2.5           # words of the vocabulary: this x synthtext.vocab_size
    desc_share: float = 0.92
    series_desc_share: float = 0.15    # episodes described as their series
    # feed traits: the share of (broadcast, streaming) feeds whose guide writes each field
    people: int = 60                   # the credits' pool of each feed and genre ...
    people_exponent: float = 1.6       # ... drawn Zipf (a few leads in many titles)
    credits: tuple[float, float] = (0.67, 0.0)
    rating: tuple[float, float] = (0.67, 0.0)
    country: tuple[float, float] = (0.33, 0.0)
    year: tuple[float, float] = (0.67, 1.0)
    placeholder_year: tuple[float, float] = (0.0, 0.25)


@dataclass(frozen=True)
class Feed:
    lang: str
    streaming: bool
    genres: tuple[str, ...]            # its category names, most used first
    traits: frozenset[str]             # credits, rating, country, year, placeholder_year


@dataclass(frozen=True)
class Channel:
    ids: tuple[str, ...]               # the channel and its regional copies
    feed: int
    titles: int
    genre: int                         # into its feed's genres
    sub: str
    minutes: int
    decade: int
    brand: tuple[int, ...]             # word ids of its language's vocabulary
    bare: bool = False                 # its guide writes no category


@functools.lru_cache(maxsize=64)
def genre_cdf(genres: int, exponent: float) -> np.ndarray:
    """Cumulative shares of a feed's genres by rank: rank ** -exponent, normalised."""
    w = np.cumsum(np.arange(1, genres + 1, dtype=np.float64) ** -exponent)
    return w / w[-1]


def sub_genres(shows: int) -> int:
    """Sub-genres of each genre: 7 at 12k titles, 67 at 1M (the shared dumps: 321 categories)."""
    return max(1, round(shows ** 0.5 / 15))


class GuidePlan:
    """A guide's feeds and channels (its vocabularies and genre topics with them), drawn
    before any show: ~100k channels at 1M titles, a few MB."""

    def __init__(self, shows: int, seed: int = 0, shape: GuideShape = GuideShape()):
        self.shape, self.n_shows, self.seed = shape, shows, seed
        self.rng = np.random.default_rng(seed)
        total = int(shape.vocab_scale * vocab_size(shows))
        self.vocab = {lang: Vocab(lang, max(200, int(total * share)), self.rng, shape.zipf_exponent)
                      for lang, share in zip(LANGS, shape.lang_share) if share > 0}
        self.topics: dict[tuple[str, str], np.ndarray] = {}
        self.feeds: list[Feed] = []
        self.channels: list[Channel] = []
        self._plan()

    def _plan(self) -> None:
        """The feeds: N / feed_titles of them, lognormal sizes summing to N. Kinds and
        languages are dealt, not drawn: largest feed first, each to the kind and the language
        furthest below its share of titles, so even the 7 feeds of a 12k guide have the mix
        of the shared dumps."""
        s, rng, n = self.shape, self.rng, self.n_shows
        w = rng.lognormal(0.0, s.feed_sigma, max(1, round(n / s.feed_titles)))
        sizes = np.floor(w / w.sum() * n).astype(np.int64)
        sizes[: n - int(sizes.sum())] += 1
        langs = [lang for lang, share in zip(LANGS, s.lang_share) if share > 0]
        share = np.array([x for x in s.lang_share if x > 0]) / sum(s.lang_share)
        made, streamed, kinds = np.zeros(len(langs)), 0, {}
        for i in np.argsort(-sizes, kind="stable").tolist():
            size = int(sizes[i])
            lang = int(np.argmax(share * (made.sum() + size) - made))
            streaming = streamed + size / 2 <= s.streaming_share * n
            made[lang] += size
            streamed += size * streaming
            kinds[i] = (langs[lang], streaming)
        for i, size in enumerate(sizes.tolist()):
            if size:
                self._plan_feed(*kinds[i], size)

    def _plan_feed(self, lang: str, streaming: bool, size: int) -> None:
        s, rng, k = self.shape, self.rng, int(streaming)
        names = GENRES["streaming" if streaming else lang]    # most used first, each feed its own order
        rank = np.arange(1, len(names) + 1) * rng.lognormal(0.0, s.genre_shuffle, len(names))
        names = [names[i] for i in np.argsort(rank, kind="stable")]
        traits = frozenset(t for t in ("credits", "rating", "country", "year", "placeholder_year")
                           if rng.random() < getattr(s, t)[k])
        feed = len(self.feeds)
        self.feeds.append(Feed(lang, streaming, tuple(names), traits))
        weights = np.arange(1, len(names) + 1, dtype=np.float64) ** -s.genre_exponent[k]
        n_sub, vocab = sub_genres(self.n_shows), self.vocab[lang]
        left, i = size, 0
        while left > 0:
            titles = int(min(left, max(1, round(rng.lognormal(np.log(s.channel_titles[k]), s.channel_sigma)))))
            left -= titles
            genre = int(rng.choice(len(names), p=weights / weights.sum()))
            named = "en" if streaming else lang              # the language of its category names
            word = self.vocab[named].words[int(self._topic(named, names[genre])[int(rng.integers(n_sub))])]
            sub = f"{word.capitalize()} {names[genre]}"       # "courtroom drama", "family animation"
            copies = 1 if streaming or rng.random() >= s.copies_share else int(rng.integers(2, 5))
            ids = tuple(f"f{feed:04d}.c{i:03d}{'' if c == 0 else '-' + 'abcd'[c]}.synth" for c in range(copies))
            self.channels.append(Channel(ids, feed, titles, genre, sub, int(rng.choice(MINUTES)),
                                         int(rng.integers(195, 203)) * 10,
                                         tuple(int(w) for w in rng.integers(20, min(len(vocab.words), 3000), 3)),
                                         bool(rng.random() < s.bare_channels)))
            i += 1

    def _topic(self, lang: str, genre: str) -> np.ndarray:
        """TOPIC_WORDS mid-frequency word ids of `lang` that titles of `genre` prefer (seeded by
        both), then as many more as the genre has sub-genres to name (67 at 1M titles)."""
        key = (lang, genre)
        if key not in self.topics:
            r = np.random.default_rng([self.seed, LANGS.index(lang), *genre.encode()])
            n = len(self.vocab[lang].words)
            self.topics[key] = r.integers(min(20, n // 4), min(n, 4000), max(TOPIC_WORDS, sub_genres(self.n_shows)))
        return self.topics[key]
