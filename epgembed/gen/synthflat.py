"""The flat synthetic guide of before issue 27 (`python -m epgembed.gen.synth --structure
flat`), kept as the worst case of the unseen-title search: the 1M catalog the probe and
HNSW were first measured on (docs/SCALE.md).

Titles of 1-8 Zipf words, `Series: Episode` titles grouped in series, episode markers,
1 + geometric airings per show (mean 3) on a few of a handful of channels drawn at random,
categories with a power-law size distribution and 30 topic words each, a broad
`Series`-like category on ~40% of shows. No feeds, no channel themes, no durations, no
credits: its trained vectors have almost no neighbourhood structure (1st and 100th
neighbours at cosine 0.61 and 0.45 at 1M, a flat spectrum). Same seed and size -> the bytes
the generator wrote before issue 27.
"""
from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from epgembed.gen.synthtext import EMOJI, EPISODE_FORMS, LANG_SHARE, LANGS, Bloom, Vocab, vocab_size

BROAD = {"en": "Series", "de": "Serie", "fr": "Série", "es": "Serie", "ja": "シリーズ"}
GENRES = ("Drama|Comedy|News|Documentary|Sport|Kids|Reality|Crime|Movie|Music|Talk|Animation|"
          "Nature|History|Travel|Cooking|Science|Lifestyle|Action|Thriller|Romance|Horror|Western|"
          "Fantasy|Science Fiction|Magazine|Game Show|Religion|Weather|Politics|Krimi|Dokumentation|"
          "Unterhaltung|Nachrichten|Natur und Tiere|Abenteuer|Zeichentrick|Heimat|Téléfilm|"
          "Documentaire|Divertissement|Dessin animé|Feuilleton|Telenovela|Noticias|Deportes|"
          "Infantil|Comedia|Documentales|アニメ|ドラマ|バラエティ").split("|")


@dataclass(frozen=True)
class FlatShape:
    """The knobs of the flat guide (as they were)."""
    airings_p: float = 1 / 3          # airings per show = 1 + geometric(p): mean 1 / p
    series_share: float = 0.15        # shows that are `Series: Episode` titles
    episode_marker_share: float = 0.35  # shows whose airings carry episode markers
    no_category_share: float = 0.08
    broad_share: float = 0.40         # a `Series` category on this share (broad: not supervision)
    second_category_share: float = 0.45
    topic_share: float = 0.5          # title words drawn from the category's topic
    category_exponent: float = 1.1    # power law of category sizes
    zipf_exponent: float = 1.05       # word frequencies
    desc_share: float = 0.85
    subtitle_share: float = 0.6


def n_categories(shows: int) -> int:
    return int(40 + 0.5 * shows ** 0.5)     # 90 at 10k, 198 at 100k, 540 at 1M


def n_channels(shows: int) -> int:
    return int(30 + shows // 2000)


class FlatSynth:
    def __init__(self, shows: int, seed: int = 0, cfg: FlatShape = FlatShape()):
        self.cfg, self.n_shows, self.seed = cfg, shows, seed
        self.rng = np.random.default_rng(seed)
        total = vocab_size(shows)
        self.vocab = {lang: Vocab(lang, max(200, int(total * share)), self.rng, cfg.zipf_exponent)
                      for lang, share in zip(LANGS, LANG_SHARE)}
        self.n_cat = n_categories(shows)
        w = np.arange(1, self.n_cat + 1, dtype=np.float64) ** -cfg.category_exponent
        self.cat_cdf = np.cumsum(w / w.sum())
        self.lang_cdf = np.cumsum(LANG_SHARE / LANG_SHARE.sum())
        self.cat_names = self._category_names()
        self.topics: dict[tuple[int, str], np.ndarray] = {}
        self.channels = [f"ch{i:04d}.synth" for i in range(n_channels(shows))]
        self.bloom = Bloom()
        # a draw starts a series (6 episodes on average) with this probability
        self.series_draw = cfg.series_share / (6 * (1 - cfg.series_share) + cfg.series_share)

    def _category_names(self) -> list[str]:
        names = list(GENRES[: self.n_cat])
        en = self.vocab["en"].words
        i = 0
        while len(names) < self.n_cat:   # "Drama - Bolemi": sub-genres beyond the base list
            names.append(f"{GENRES[i % len(GENRES)]} - {en[50 + i].capitalize()}")
            i += 1
        return names

    def topic(self, cat: int, lang: str) -> np.ndarray:
        """30 words of `lang` that titles of category `cat` prefer (seeded by cat, lang)."""
        key = (cat, lang)
        if key not in self.topics:
            r = np.random.default_rng([self.seed, cat, LANGS.index(lang)])
            n = len(self.vocab[lang].words)       # mid-frequency words, not the head
            self.topics[key] = r.integers(min(20, n // 4), min(n, 4000), 30)
        return self.topics[key]

    # ------------------------------------------------------------------ text
    def words(self, lang: str, n: int, cat: int | None) -> list[str]:
        v, rng = self.vocab[lang], self.rng
        ids = v.sample(rng, n)
        if cat is not None:
            t = self.topic(cat, lang)
            use = rng.random(n) < self.cfg.topic_share
            ids = np.where(use, t[rng.integers(0, len(t), n)], ids)
        out = [v.words[i] for i in ids]
        if lang == "ja" and n > 1 and rng.random() < 0.5:
            return ["".join(out)]            # no spaces between CJK words
        return out

    def title(self, lang: str, cat: int | None) -> str:
        n = int(min(8, 1 + self.rng.poisson(2.0)))   # 1-8 words, mode 2-3
        ws = self.words(lang, n, cat)
        r = self.rng.random()
        if r < 0.012:
            ws.append(EMOJI[int(self.rng.integers(len(EMOJI)))])
        elif r < 0.02:
            ws[0] = "#" + ws[0]
        text = " ".join(ws)
        return text[:1].upper() + text[1:] if lang != "ja" else text

    def unique_title(self, lang: str, cat: int | None, prefix: str = "") -> str:
        for attempt in range(50):
            t = prefix + self.title(lang, cat)
            if attempt > 10:                 # crowded short titles: add a word
                t += " " + self.vocab[lang].words[int(self.rng.integers(len(self.vocab[lang].words)))]
            if self.bloom.add(t.casefold()):
                return t
        return t

    def desc(self, lang: str, cat: int | None) -> str:
        ws = self.words(lang, int(6 + self.rng.integers(0, 14)), cat)
        return (" ".join(ws)).capitalize() + "."

    # ------------------------------------------------------------------ shows
    def _draw(self, cdf: np.ndarray) -> int:
        return int(min(np.searchsorted(cdf, self.rng.random()), len(cdf) - 1))

    def show_categories(self, lang: str) -> list[str]:
        rng, cfg = self.rng, self.cfg
        if rng.random() < cfg.no_category_share:
            return []
        cats = [self._draw(self.cat_cdf)]
        if rng.random() < cfg.second_category_share:
            c2 = self._draw(self.cat_cdf)
            if c2 != cats[0]:
                cats.append(c2)
        names = [self.cat_names[c] for c in cats]
        if rng.random() < cfg.broad_share:
            names.insert(int(rng.integers(0, len(names) + 1)), BROAD[lang])
        return names

    def programmes(self, title: str, lang: str, cats: list[str], cat: int | None,
                   series_suffix: str | None, day: int) -> list[str]:
        rng, cfg = self.rng, self.cfg
        airings = int(min(40, rng.geometric(cfg.airings_p)))   # >= 1, mean 1 / p
        markers = rng.random() < cfg.episode_marker_share
        desc = self.desc(lang, cat) if rng.random() < cfg.desc_share else None
        chans = rng.choice(len(self.channels), size=min(3, airings), replace=True)
        la = "" if lang == "en" else f' lang="{lang}"'
        cat_xml = "".join(f"<category{la}>{escape(c)}</category>" for c in cats)
        out = []
        for a in range(airings):
            shown = title
            if markers:
                form = EPISODE_FORMS[int(rng.integers(len(EPISODE_FORMS)))]
                shown = form.format(s=title, a=int(rng.integers(1, 9)), b=int(rng.integers(1, 30)),
                                    c=int(rng.integers(1, 4000)))
            minute = int(rng.integers(0, 1440 * 14))
            d, m = divmod(minute, 1440)
            start = f"202601{1 + (day + d) % 28:02d}{m // 60:02d}{m % 60:02d}00 +0000"
            sub = ""
            if series_suffix is not None and rng.random() < 0.5:
                sub = f"<sub-title{la}>{escape(series_suffix)}</sub-title>"
            elif rng.random() < cfg.subtitle_share:
                sub = f"<sub-title{la}>{escape(' '.join(self.words(lang, 3, None)).capitalize())}</sub-title>"
            ds = f"<desc{la}>{escape(desc)}</desc>" if desc else ""
            ch = self.channels[int(chans[a % len(chans)])]
            out.append(f'<programme start="{start}" stop="{start}" channel={quoteattr(ch)}>'
                       f"<title{la}>{escape(shown)}</title>{sub}{ds}{cat_xml}</programme>\n")
        return out

    def shows(self):
        """Yield the XML of each show's airings; exactly n_shows distinct titles."""
        rng, cfg = self.rng, self.cfg
        made = 0
        while made < self.n_shows:
            lang = LANGS[self._draw(self.lang_cdf)]
            cats = self.show_categories(lang)
            cat = self.cat_names.index(next(c for c in cats if c != BROAD[lang])) \
                if any(c != BROAD[lang] for c in cats) else None
            if rng.random() < self.series_draw:
                episodes = int(min(self.n_shows - made, 1 + rng.geometric(0.2)))   # mean 6
                prefix = self.unique_title(lang, cat) + ": "
                for _ in range(episodes):
                    full = self.unique_title(lang, cat, prefix)
                    yield self.programmes(full, lang, cats, cat, full[len(prefix):], made)
                    made += 1
            else:
                yield self.programmes(self.unique_title(lang, cat), lang, cats, cat, None, made)
                made += 1

    def channel_xml(self) -> str:
        return "".join(f'<channel id="{c}"><display-name>Synth {i}</display-name></channel>\n'
                       for i, c in enumerate(self.channels))

    def counts(self) -> dict:
        return {"categories": self.n_cat, "channels": len(self.channels),
                "vocabulary": sum(len(v.words) for v in self.vocab.values())}
