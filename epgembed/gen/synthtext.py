"""The text of synthetic guides (epgembed.gen.synth): per-language pseudo-word
vocabularies with a Zipf sampler, the episode markers and symbols real titles carry, and
the Bloom filter that keeps titles distinct. Everything is invented from syllables and
seeded; shared by the guide generator (synth.py) and the flat one of before (synthflat.py).
"""
from __future__ import annotations

import hashlib

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
EPISODE_FORMS = ("{s} S{a} E{b}", "{s} S{a:02d}E{b:02d}", "{s} - Folge {c}", "{s} ({c})",
                 "{s} - Teil {a}", "{s} Ep. {b}", "{s} (HD)", "{s} [OmU]", "{s} (Wh.)")


def vocab_size(shows: int) -> int:
    """Heaps' law over ~3.5 words per title: 12k words at 10k shows, 160k at 1M."""
    return int(40 * (3.5 * shows) ** 0.55)


class Bloom:
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


class Vocab:
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


# the small words real titles are full of ("the", "der", "de" and "-" lead the shared dumps' counts)
FUNCTION_WORDS = {
    "en": "the of and a in to on with for my your at from - is you all".split(),
    "de": "der die das und von im mit zu den ein auf - für in am".split(),
    "fr": "le la les de des du et un une à en - au pour sur".split(),
    "es": "el la los las de del y en un una con - por para al".split(),
    "ja": list("のとにで"),
}
# the genres of each language's broadcast guides and of the streaming line-ups (which name theirs
# in English), most used first as in the shared dumps' counts (streaming: the Pluto dumps';
# English: au_freeview's; German: de_magenta's; French: fr_kazer's): each kind and language
# leads with genres of its own, so no one category holds most of a guide.
GENRE_NAMES = {
    "streaming": ("Comedy|Drama|Reality|Science Fiction|Entertainment|Documentary|Kids & Family|"
                  "News & Information|Anime|Movie|Action|Crime|Music|Special Interest|Sports|Fantasy|"
                  "Thriller|Animation|Talk|Nature|History|Travel|Cooking|Lifestyle|Romance|Horror|Western|"
                  "Game Show|Classic TV|Sitcom|True Crime|Paranormal|Young Adult"),
    "en": ("Special Interest|Kids & Family|News|Drama|Comedy|Reality|Sports|Documentary|Movie|"
           "Entertainment|Crime|Lifestyle|Music|Action|Thriller|Animation|Talk|Nature|History|Travel|"
           "Cooking|Science & Technology|Romance|Horror|Western|Magazine|Game Show|Religion|Weather|"
           "Politics|Home & Garden|Sitcom|Soap|Fantasy|Science Fiction|Instructional & Educational"),
    "de": ("Dokumentation|Zeichentrick|Kinder|Abenteuer|Krimi|Komödie|Nachrichten|Unterhaltung|"
           "Natur und Tiere|Wissen|Spielfilm|Drama|Sport|Musik|Talk|Geschichte|Reisen|Kochen|Magazin|"
           "Action|Thriller|Liebe|Horror|Western|Fantasy|Science-Fiction|Show|Religion|Wetter|Politik|"
           "Heimat|Gesellschaft|Familie|Auto|Mystery|Reality"),
    "fr": ("Documentaire|Film|Magazine|Divertissement|Météo|Sport|Information|Jeunesse|Téléfilm|"
           "Feuilleton|Comédie|Drame|Téléréalité|Policier|Musique|Débat|Dessin animé|Nature|Histoire|"
           "Voyage|Cuisine|Science|Action|Thriller|Romance|Horreur|Western|Fantastique|"
           "Science-fiction|Jeu|Religion|Politique|Société"),
    "es": ("Noticias|Entretenimiento|Infantil|Documentales|Animación|Comedia|Música|Telenovela|"
           "Deportes|Policíaca|Película|Entrevistas|Naturaleza|Historia|Viajes|Cocina|Ciencia|Revista|"
           "Acción|Suspense|Romance|Terror|Western|Fantasía|Ciencia ficción|Concurso|Religión|Tiempo|"
           "Política|Familia|Drama|Reality"),
    "ja": "アニメ|ドラマ|バラエティ|ニュース|スポーツ|ドキュメンタリー|映画|音楽|趣味|教育|旅|料理",
}
GENRES = {lang: names.split("|") for lang, names in GENRE_NAMES.items()}
SERIES_CATEGORY = "Series"          # streaming line-ups put it on most of their titles


def person(vocab: Vocab, rng: np.random.Generator) -> str:
    """An invented person's name: two capitalised words of a language's vocabulary."""
    a, b = rng.integers(0, len(vocab.words), 2)
    return f"{vocab.words[int(a)].capitalize()} {vocab.words[int(b)].capitalize()}"
