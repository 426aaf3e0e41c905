"""Synthetic XMLTV guides of any size with the structure of real ones (scale benchmarks).

    python -m epgembed.gen.synth OUT.xml.gz --shows 100000 [--seed 0] [--structure flat]

A guide is a set of feeds, each a provider's line-up in one language of ~1,700 titles (the
seven shared dumps hold 439-2,876 each):

- a broadcast feed (as au_freeview, de_magenta, fr_kazer): tens of channels of ~30 titles,
  a title aired several times around its own hour, often on regional copies of its
  channel; credits, ratings, countries and years where the feed has them; few series;
- a streaming line-up (as the Pluto dumps): hundreds of thematic channels of a few titles,
  most of them `Series: Episode` titles aired once or twice, categories in English with a
  broad `Series`, a year (some feeds write one placeholder year everywhere).

A channel has a genre (the category of most of its titles) and a sub-genre, a usual
duration and a few brand words; titles and descriptions draw words from the channel's
brand, the genre's topic, the language's small words and a Zipf vocabulary with a long tail
(synthtext.py), an episode's description often its series'. GuideShape's defaults are
calibrated so that a model trained on the guide has the neighbour cosines, spectrum and
cluster-probe recall of the model of the shared dumps (issue 27: bench/calib.py,
bench/results/calib.md). Feeds and channels are planned first (synthplan.py: ~100k
channels at 1M titles, a few MB); shows are generated and written in chunks, so 1M titles
never sit in memory. `--structure flat` writes the flat guide of before (synthflat.py: the worst case).
Same seed, size and structure -> identical bytes.
"""
from __future__ import annotations

import argparse
import gzip
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from epgembed.gen.synthflat import FlatSynth
from epgembed.gen.synthplan import MINUTES, TOPIC_WORDS, Channel, Feed, GuidePlan, GuideShape, genre_cdf
from epgembed.gen.synthtext import EPISODE_FORMS, FUNCTION_WORDS, SERIES_CATEGORY, Bloom, person

COUNTRIES = ("DE", "US", "GB", "FR", "AT", "IT", "ES", "CA", "AU", "SE")
RATINGS = ("G", "PG", "M", "MA 15+", "0", "6", "12", "16", "18")


@dataclass(frozen=True)
class SynthConfig:
    shows: int = 10_000
    seed: int = 0
    structure: str = "guide"           # "guide" (this module) or "flat" (synthflat.py)
    shape: GuideShape = field(default_factory=GuideShape)
    chunk: int = 5000                  # programmes written at a time

    def __post_init__(self) -> None:
        if self.structure not in ("guide", "flat"):
            raise ValueError(f"structure must be 'guide' or 'flat', not {self.structure!r}")


class GuideSynth(GuidePlan):
    """The shows of a planned guide and their airings, as XMLTV."""

    def __init__(self, shows: int, seed: int = 0, shape: GuideShape = GuideShape()):
        super().__init__(shows, seed, shape)
        self.people: dict[tuple[int, int], list[str]] = {}     # credits' pools, by (feed, genre)
        self.bloom = Bloom()

    # ------------------------------------------------------------------ text
    def words(self, ch: Channel, genre: int, n: int, brand: float, topic: float, small: float) -> list[str]:
        """n words of the channel's language: its brand words, the topic of the title's genre,
        small words (never first) and the Zipf vocabulary, with those shares; of the Zipf
        words, `shared_words` are English (names and loanwords every guide has)."""
        feed, rng = self.feeds[ch.feed], self.rng
        v, en = self.vocab[feed.lang], self.vocab["en"]
        ids, shared = v.sample(rng, n), en.sample(rng, n)
        r, r2 = rng.random(n), rng.random(n)
        t = self._topic(feed.lang, feed.genres[genre])[:TOPIC_WORDS]
        out = []
        for j in range(n):
            if r[j] < brand:
                out.append(v.words[ch.brand[int(rng.integers(len(ch.brand)))]])
            elif r[j] < brand + topic:
                out.append(v.words[int(t[int(rng.integers(len(t)))])])
            elif j > 0 and r[j] < brand + topic + small:
                fw = FUNCTION_WORDS[feed.lang]
                out.append(fw[int(rng.integers(len(fw)))])
            elif r2[j] < self.shape.shared_words:
                out.append(en.words[int(shared[j])])
            else:
                out.append(v.words[int(ids[j])])
        if feed.lang == "ja" and n > 1:
            return ["".join(out)]
        return out

    def title(self, ch: Channel, genre: int, n: int) -> str:
        s = self.shape
        text = " ".join(self.words(ch, genre, n, s.brand_share, s.topic_share, s.function_share))
        return text[:1].upper() + text[1:]

    def unique_title(self, ch: Channel, genre: int, mean_words: float, prefix: str = "") -> str:
        for attempt in range(50):
            t = prefix + self.title(ch, genre, int(min(8, 1 + self.rng.poisson(mean_words))) + (attempt > 10))
            if self.bloom.add(t.casefold()):
                return t
        return t

    def desc(self, ch: Channel, genre: int) -> str | None:
        if self.rng.random() >= self.shape.desc_share:
            return None
        s = self.shape
        return " ".join(self.words(ch, genre, int(8 + self.rng.integers(0, 40)), 0.1, s.desc_topic_share,
                                   0.25)).capitalize() + "."

    # ------------------------------------------------------------------ shows
    def genre(self, ch: Channel) -> int:
        """A title's genre: its channel's, or (off its channel's theme) one of its feed's."""
        s, rng, feed = self.shape, self.rng, self.feeds[ch.feed]
        if rng.random() < s.theme_share[int(feed.streaming)]:
            return ch.genre
        return self.popular_genre(feed)

    def popular_genre(self, feed: Feed) -> int:
        """One of the feed's genres, drawn as its channels' genres are (the popular ones most often)."""
        cdf = genre_cdf(len(feed.genres), self.shape.genre_exponent[int(feed.streaming)])
        return int(min(len(cdf) - 1, np.searchsorted(cdf, self.rng.random(), side="right")))

    def categories(self, ch: Channel, genre: int) -> list[str]:
        s, rng, feed = self.shape, self.rng, self.feeds[ch.feed]
        if ch.bare or rng.random() < s.no_category_share:
            return []
        if genre == ch.genre and rng.random() < s.sub_only_share:
            return [ch.sub]
        out = [feed.genres[genre]]
        if genre == ch.genre and rng.random() < s.sub_share:
            out.append(ch.sub)
        if rng.random() < s.second_share:
            other = feed.genres[self.popular_genre(feed)]
            if other not in out:
                out.append(other)
        if feed.streaming and rng.random() < s.series_category_share:
            out.insert(int(rng.integers(len(out) + 1)), SERIES_CATEGORY)
        return out

    def credits(self, ch: Channel, genre: int) -> list[str]:
        key = (ch.feed, genre)
        if key not in self.people:
            r = np.random.default_rng([self.seed, 7, *key])
            self.people[key] = [person(self.vocab[self.feeds[ch.feed].lang], r) for _ in range(self.shape.people)]
        pool = self.people[key]
        picks = np.minimum(self.rng.zipf(self.shape.people_exponent, int(self.rng.integers(1, 5))) - 1, len(pool) - 1)
        return list(dict.fromkeys(pool[int(i)] for i in picks))

    def programmes(self, ch: Channel, title: str, desc: str | None, cats: list[str], episode: str | None,
                   year: int, extra: dict) -> list[str]:
        s, rng, feed = self.shape, self.rng, self.feeds[ch.feed]
        k = int(feed.streaming)
        airings = int(min(200, max(1, round(rng.lognormal(np.log(s.airings[k]), s.airings_sigma)))))
        la = "" if feed.lang == "en" else f' lang="{feed.lang}"'
        hour = int(rng.integers(24))
        channels = ch.ids[: int(rng.integers(1, len(ch.ids) + 1))]
        body = (f"<desc{la}>{escape(desc)}</desc>" if desc else "") + extra.get("credits", "") + \
            (f"<date>{year}</date>" if year else "") + \
            "".join(f"<category{la}>{escape(c)}</category>" for c in cats) + \
            (f'<episode-num system="onscreen">{escape(episode)}</episode-num>' if episode else "") + \
            extra.get("tail", "")
        out = []
        for a in range(airings):
            h = hour if not feed.streaming and rng.random() < s.home_hour_share else int(rng.integers(24))
            d, m = int(rng.integers(14)), int(rng.integers(60))
            minutes = ch.minutes if rng.random() < s.usual_minutes_share else int(rng.choice(MINUTES))
            start = 60 * (24 * d + h) + m
            sub = f"<sub-title{la}>{escape(extra['sub'])}</sub-title>" if extra.get("sub") else ""
            out.append(f'<programme start="{_stamp(start)}" stop="{_stamp(start + minutes)}" '
                       f"channel={quoteattr(channels[a % len(channels)])}>"
                       f"<title{la}>{escape(title)}</title>{sub}{body}</programme>\n")
        return out

    def extra(self, ch: Channel, genre: int, episodic: bool) -> dict:
        feed, rng, out = self.feeds[ch.feed], self.rng, {}
        if "credits" in feed.traits:
            out["credits"] = "<credits>" + "".join(f"<actor>{escape(p)}</actor>" for p in self.credits(ch, genre)) + \
                "</credits>"
        tail = ""
        if "country" in feed.traits:
            tail += f"<country>{COUNTRIES[min(len(COUNTRIES) - 1, int(rng.zipf(1.8)) - 1)]}</country>"
        if "rating" in feed.traits:
            tail += f"<rating><value>{escape(RATINGS[int(rng.integers(len(RATINGS)))])}</value></rating>"
        out["tail"] = tail
        if episodic:
            out["sub"] = " ".join(self.words(ch, genre, 3, 0.0, 0.2, 0.2)).capitalize()
        return out

    def year(self, ch: Channel) -> int:
        feed = self.feeds[ch.feed]
        if "year" not in feed.traits:
            return 0
        if "placeholder_year" in feed.traits:
            return 1970
        return int(ch.decade + self.rng.integers(-15, 10))

    def channel_shows(self, ch: Channel):
        """The programmes of each title of one channel: series of episodes and single titles."""
        s, rng, feed = self.shape, self.rng, self.feeds[ch.feed]
        k, left = int(feed.streaming), ch.titles
        while left > 0:
            genre = self.genre(ch)
            if rng.random() < s.series_share[k]:
                episodes = int(min(left, max(2, round(rng.lognormal(np.log(s.episodes), s.episodes_sigma)))))
                name = self.unique_title(ch, genre, s.words[1])
                desc, cats, year = self.desc(ch, genre), self.categories(ch, genre), self.year(ch)
                for e in range(episodes):
                    title = self.unique_title(ch, genre, s.words[2], name + ": ")
                    own = desc if desc and rng.random() < s.series_desc_share else self.desc(ch, genre)
                    marker = f"S{1 + e // 12} E{1 + e % 12}" if feed.streaming else None
                    yield self.programmes(ch, title, own, cats, marker, year, self.extra(ch, genre, not k))
                left -= episodes
            else:
                title = self.unique_title(ch, genre, s.words[0])
                if not feed.streaming and rng.random() < 0.1:
                    title = EPISODE_FORMS[int(rng.integers(len(EPISODE_FORMS)))].format(
                        s=title, a=int(rng.integers(1, 9)), b=int(rng.integers(1, 30)), c=int(rng.integers(1, 4000)))
                yield self.programmes(ch, title, self.desc(ch, genre), self.categories(ch, genre), None,
                                      self.year(ch), self.extra(ch, genre, not k and rng.random() < 0.4))
                left -= 1

    def shows(self):
        """Yield the XML of each title's airings, channel after channel; n_shows titles. Each
        feed's channel elements come before its programmes, as when feeds' dumps are joined:
        the ingest refuses 100k tags without a programme (83k channels at 1M titles)."""
        feed = -1
        for ch in self.channels:
            if ch.feed != feed:
                feed = ch.feed
                yield [self.channel_xml(feed)]
            yield from self.channel_shows(ch)

    def channel_xml(self, feed: int | None = None) -> str:
        """The channel elements of one feed (none before the first: each feed brings its own)."""
        return "".join(f'<channel id="{c}"><display-name>Synth {c}</display-name></channel>\n'
                       for ch in self.channels if ch.feed == feed for c in ch.ids)

    def counts(self) -> dict:
        return {"feeds": len(self.feeds), "channels": sum(len(c.ids) for c in self.channels),
                "vocabulary": sum(len(v.words) for v in self.vocab.values())}


def _stamp(minute: int) -> str:
    d, m = divmod(minute, 1440)
    return f"202601{1 + d % 28:02d}{m // 60:02d}{m % 60:02d}00 +0000"


def write_synth(path: str | Path, cfg: SynthConfig) -> dict:
    """Write the catalog to `path` (gzip when it ends in .gz); returns counts."""
    path = Path(path)
    synth = GuideSynth(cfg.shows, cfg.seed, cfg.shape) if cfg.structure == "guide" else FlatSynth(cfg.shows, cfg.seed)
    raw = open(path, "wb")  # noqa: SIM115 - closed below
    f = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=3, mtime=0) if path.suffix == ".gz" else raw
    programmes, buf = 0, []
    try:
        f.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<tv generator-info-name="epgembed.gen.synth">\n')
        f.write(synth.channel_xml().encode())
        for progs in synth.shows():
            buf.extend(progs)
            if len(buf) >= cfg.chunk:
                f.write("".join(buf).encode())
                programmes += sum(p.startswith("<programme") for p in buf)
                buf = []
        f.write(("".join(buf) + "</tv>\n").encode())
        programmes += sum(p.startswith("<programme") for p in buf)
    finally:
        if f is not raw:
            f.close()
        raw.close()
    return {"shows": cfg.shows, "programmes": programmes, **synth.counts(), "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m epgembed.gen.synth", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--shows", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--structure", choices=("guide", "flat"), default="guide")
    args = ap.parse_args(argv)
    if args.shows < 1:
        ap.error("--shows must be >= 1")
    counts = write_synth(args.out, SynthConfig(shows=args.shows, seed=args.seed, structure=args.structure))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
