"""Synthetic XMLTV catalogs of any size that look like real guides (for the scale benchmarks).

    python -m epgembed.gen.synth OUT.xml.gz --shows 100000 [--seed 0]

Everything is invented (pseudo-words built from syllables), seeded and streamed: shows are
generated and written in chunks, so 1M shows never sit in memory (memory is the vocabulary,
the category topics and a 16 MiB Bloom filter that keeps titles distinct).

What it imitates (measured on the shared dumps): titles of 1-8 words, Zipf-distributed
words with a long tail, per-language vocabularies (English, German, French, Spanish with
their accents, some Japanese-like CJK words, a few emoji/★/#hashtags), `Series: Episode`
titles grouped in series, episode markers that the normalizer strips (`S2 E5`, `S03E05`,
`Folge 12`, `(3608)`, `Teil 2`), meta suffixes (`(HD)`, `[OmU]`, `(Wh.)`), 1 + geometric airings per
show (mean 3) on a few of many channels, categories with a power-law size distribution
(plus a broad `Series`-like category on ~40% of shows), ~8% of shows without a category,
short descriptions and sub-titles. Category topics give titles of one category shared
words, so a trained model has something to learn. Same seed and size -> identical bytes.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

LANGS = ("en", "de", "fr", "es", "ja")
LANG_SHARE = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
SYLLABLES = {
    "en": "ba be bi bo bu ca co cu da de di do fa fe fi fo ga go ha he hi ho ja jo ka ke ki la le li lo "
          "lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si so su ta te ti to tu "
          "va ve vi wa we wi ya yo za ze th sh ch st tr bl gr ck ng ow ea oo er an in on en ar or".split(),
    "de": "ba be bi bu da de di do fa fe fi ga ge gi ha he hi ho ka ke ki ko la le li lo ma me mi mo "
          "na ne ni no pa pe ra re ri ro sa se si so ta te ti to wa we wi zu ze sch ch st ei au äu ä "
          "ö ü ß ie en er un ge ber mann burg heim dorf wald".split(),
    "fr": "ba be bo ca ce co da de di do fa fe fi la le li lo ma me mi mo na ne ni no pa pe pi po ra "
          "re ri ro sa se si so ta te ti to va ve vi ou eau ai é è ê à ç ée ie on an en oi ette elle "
          "eur ier".split(),
    "es": "ba be bi bo ca ce ci co da de di do fa fe fi ga go la le li lo ma me mi mo na ne ni no pa "
          "pe pi po ra re ri ro sa se si so ta te ti to va ve vi ña ño ñe á é í ó ú ll ch rr io ia "
          "ción dad".split(),
    "ja": list("のはにをがでとしたいるかなりすれもこまあうえおくけさせそちつてにぬねひふへほみむめやゆよらろわん"
               "山川田中本日月火水木金土人大小上下東西南北夜空海花星光雪風愛夢恋猫犬龍剣戦物語学園少女"),
}
EMOJI = ["★", "♥", "🎬", "⚽", "🎵", "🔥", "😂", "🐾", "🌍", "✨"]
BROAD = {"en": "Series", "de": "Serie", "fr": "Série", "es": "Serie", "ja": "シリーズ"}
GENRES = ("Drama|Comedy|News|Documentary|Sport|Kids|Reality|Crime|Movie|Music|Talk|Animation|"
          "Nature|History|Travel|Cooking|Science|Lifestyle|Action|Thriller|Romance|Horror|Western|"
          "Fantasy|Science Fiction|Magazine|Game Show|Religion|Weather|Politics|Krimi|Dokumentation|"
          "Unterhaltung|Nachrichten|Natur und Tiere|Abenteuer|Zeichentrick|Heimat|Téléfilm|"
          "Documentaire|Divertissement|Dessin animé|Feuilleton|Telenovela|Noticias|Deportes|"
          "Infantil|Comedia|Documentales|アニメ|ドラマ|バラエティ").split("|")
EPISODE_FORMS = ("{s} S{a} E{b}", "{s} S{a:02d}E{b:02d}", "{s} - Folge {c}", "{s} ({c})",
                 "{s} - Teil {a}", "{s} Ep. {b}", "{s} (HD)", "{s} [OmU]", "{s} (Wh.)")


@dataclass(frozen=True)
class SynthConfig:
    shows: int = 10_000
    seed: int = 0
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
    chunk: int = 5000                 # shows generated and written at a time


def n_categories(shows: int) -> int:
    return int(40 + 0.5 * shows ** 0.5)     # 90 at 10k, 198 at 100k, 540 at 1M


def n_channels(shows: int) -> int:
    return int(30 + shows // 2000)


def vocab_size(shows: int) -> int:
    """Heaps' law over ~3.5 words per title: 12k words at 10k shows, 160k at 1M."""
    return int(40 * (3.5 * shows) ** 0.55)


class _Bloom:
    """Title keys already used (2 hashes over 2^27 bits; a false positive only redraws a title)."""

    def __init__(self, bits: int = 1 << 27):
        self.bits, self.mask = bytearray(bits // 8), bits - 1

    def add(self, key: str) -> bool:
        """False when `key` was (probably) seen; otherwise records it."""
        d = hashlib.blake2b(key.encode(), digest_size=16).digest()
        h1, h2 = int.from_bytes(d[:8], "little") & self.mask, int.from_bytes(d[8:], "little") & self.mask
        seen = all(self.bits[h >> 3] >> (h & 7) & 1 for h in (h1, h2))
        if seen:
            return False
        for h in (h1, h2):
            self.bits[h >> 3] |= 1 << (h & 7)
        return True


class _Vocab:
    """Per-language pseudo-words sorted by frequency rank, with a Zipf sampler."""

    def __init__(self, lang: str, size: int, rng: np.random.Generator, exponent: float):
        syl = SYLLABLES[lang]
        words: dict[str, None] = {}
        while len(words) < size:
            n = rng.integers(1, 5, size)
            picks = rng.integers(0, len(syl), (size, 4))
            for k, row in zip(n, picks):
                w = "".join(syl[j] for j in row[:k])
                if len(w) > 1 or lang == "ja":
                    words.setdefault(w, None)
        self.words = list(words)[:size]
        ranks = np.arange(1, size + 1, dtype=np.float64)
        cdf = np.cumsum((ranks + 15.0) ** -exponent)      # Zipf-Mandelbrot: no giant head word
        self.cdf = cdf / cdf[-1]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.words) - 1)


class Synth:
    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        total = vocab_size(cfg.shows)
        self.vocab = {lang: _Vocab(lang, max(200, int(total * share)), self.rng, cfg.zipf_exponent)
                      for lang, share in zip(LANGS, LANG_SHARE)}
        self.n_cat = n_categories(cfg.shows)
        w = np.arange(1, self.n_cat + 1, dtype=np.float64) ** -cfg.category_exponent
        self.cat_cdf = np.cumsum(w / w.sum())
        self.lang_cdf = np.cumsum(LANG_SHARE / LANG_SHARE.sum())
        self.cat_names = self._category_names()
        self.topics: dict[tuple[int, str], np.ndarray] = {}
        self.channels = [f"ch{i:04d}.synth" for i in range(n_channels(cfg.shows))]
        self.bloom = _Bloom()
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
            r = np.random.default_rng([self.cfg.seed, cat, LANGS.index(lang)])
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
        """Yield the XML of each show's airings; exactly cfg.shows distinct titles."""
        rng, cfg = self.rng, self.cfg
        made = 0
        while made < cfg.shows:
            lang = LANGS[self._draw(self.lang_cdf)]
            cats = self.show_categories(lang)
            cat = self.cat_names.index(next(c for c in cats if c != BROAD[lang])) \
                if any(c != BROAD[lang] for c in cats) else None
            if rng.random() < self.series_draw:
                episodes = int(min(cfg.shows - made, 1 + rng.geometric(0.2)))   # mean 6
                prefix = self.unique_title(lang, cat) + ": "
                for _ in range(episodes):
                    full = self.unique_title(lang, cat, prefix)
                    yield self.programmes(full, lang, cats, cat, full[len(prefix):], made)
                    made += 1
            else:
                yield self.programmes(self.unique_title(lang, cat), lang, cats, cat, None, made)
                made += 1


def write_synth(path: str | Path, cfg: SynthConfig) -> dict:
    """Write the catalog to `path` (gzip when it ends in .gz); returns counts."""
    path = Path(path)
    synth = Synth(cfg)
    raw = open(path, "wb")  # noqa: SIM115 - closed below
    f = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=3, mtime=0) if path.suffix == ".gz" else raw
    programmes, buf = 0, []
    try:
        f.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<tv generator-info-name="epgembed.gen.synth">\n')
        f.write("".join(f'<channel id="{c}"><display-name>Synth {i}</display-name></channel>\n'
                        for i, c in enumerate(synth.channels)).encode())
        for progs in synth.shows():
            buf.extend(progs)
            if len(buf) >= cfg.chunk:
                f.write("".join(buf).encode())
                programmes += len(buf)
                buf = []
        f.write(("".join(buf) + "</tv>\n").encode())
        programmes += len(buf)
    finally:
        if f is not raw:
            f.close()
        raw.close()
    return {"shows": cfg.shows, "programmes": programmes, "categories": synth.n_cat,
            "channels": len(synth.channels), "vocabulary": sum(len(v.words) for v in synth.vocab.values()),
            "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m epgembed.gen.synth", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--shows", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.shows < 1:
        ap.error("--shows must be >= 1")
    counts = write_synth(args.out, SynthConfig(shows=args.shows, seed=args.seed))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
