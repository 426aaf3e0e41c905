"""Tokenizer: sentencepiece pieces (byte fallback, so nothing is unknown) + whole words
+ guide features.

Token ids: 0 is PAD; 1..P are sentencepiece pieces; P+1..P+W are whole words that at least
`min_word_count` titles use; then the guide features (epgembed/text/features.py: channel, slot,
duration, credits, ...) that at least `features.min_items` catalog titles carry. Every
caller (training, indexing, service, inspection) goes through `Tokenizer.encode` /
`item_tokens`, which apply the shared normalization first.
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
import json
from array import array
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import sentencepiece as spm

from epgembed.config import FeatureConfig, TokenizerConfig
from epgembed.text.features import feature_weight, vocabulary
from epgembed.text.normalize import clean_text, fold, title_forms

FORMAT = "epgembed-tokenizer/2"   # format 1: artifact/upgrade.py
TOKENIZER_FILE = "tokenizer.json"
PAD_ID = 0        # the id no token has: padding of a bag, a zero row of every token table
_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


def token_text(title: str) -> str:
    """The text a title is tokenized from: its catalog key (normalize.title_forms)."""
    return title_forms(title).key


def words_of(text: str) -> list[str]:
    return _WORD.findall(text)


def auto_vocab_size(n_distinct_words: int, cfg: TokenizerConfig) -> int:
    """Piece vocabulary from the data size: about half the distinct words, bounded."""
    if cfg.vocab_size:
        return cfg.vocab_size
    return int(min(cfg.max_vocab, max(cfg.min_vocab, 300 + n_distinct_words // 2)))


class Tokenizer:
    def __init__(self, sp_model: bytes | None, words: list[str], cfg: TokenizerConfig,
                 context_words: list[str] | None = None, features: list[str] | None = None,
                 feature_cfg: FeatureConfig | None = None, ngrams: list[str] | None = None):
        self.cfg = cfg
        self.sp_bytes = sp_model
        self.sp = None
        if sp_model is not None:
            self.sp = spm.SentencePieceProcessor()
            self.sp.LoadFromSerializedProto(sp_model)
        self.n_pieces = self.sp.GetPieceSize() if self.sp is not None else 0
        self.words = list(words)
        self.word_id = {w: 1 + self.n_pieces + i for i, w in enumerate(self.words)}
        # words allowed in description context (frequent words are stopwords, left out)
        self.context_words = list(context_words or [])
        self._context_ok = set(self.context_words)
        self.ngrams = list(ngrams or [])
        first = 1 + self.n_pieces + len(self.words)
        self.ngram_id = {g: first + i for i, g in enumerate(self.ngrams)}
        self.features = list(features or [])
        self.feature_cfg = feature_cfg or FeatureConfig()
        first = 1 + self.n_pieces + len(self.words) + len(self.ngrams)
        self.feature_id = {f: first + i for i, f in enumerate(self.features)}

    @property
    def vocab_size(self) -> int:
        return 1 + self.n_pieces + len(self.words) + len(self.ngrams) + len(self.features)

    # ---------------------------------------------------------------- training
    @classmethod
    def train(cls, titles: Iterable[str], cfg: TokenizerConfig | None = None,
              contexts: Iterable[str] = (), item_features: Iterable[Iterable[str]] = (),
              feature_cfg: FeatureConfig | None = None) -> "Tokenizer":
        cfg = cfg or TokenizerConfig()
        feature_cfg = feature_cfg or FeatureConfig()
        texts = sorted({t for t in (token_text(x) for x in titles) if t})
        if not texts:
            raise ValueError("no titles to train the tokenizer on")
        word_titles: Counter[str] = Counter()
        for t in texts:
            word_titles.update(set(words_of(t)))
        words = sorted(w for w, c in word_titles.items() if c >= cfg.min_word_count) if cfg.words else []
        context_words: list[str] = []
        df: Counter[str] = Counter()   # description words: in how many descriptions (streamed)
        n_docs = 0
        for c in contexts if cfg.context_words else ():
            if c:
                df.update(set(words_of(fold(c))))
                n_docs += 1
        if n_docs:
            limit = max(2.0, cfg.context_max_df * n_docs)
            context_words = sorted(w for w, c in df.items()
                                   if cfg.min_word_count <= c <= limit and not w.isdigit())
            words = sorted(set(words) | set(context_words))
        ngrams: list[str] = []
        if cfg.ngram_max:     # n-grams that at least min_word_count titles' words have
            grams: Counter[str] = Counter()
            for t in texts:
                grams.update({g for w in words_of(t) for g in char_ngrams(w, cfg.ngram_min, cfg.ngram_max)})
            ngrams = sorted(g for g, c in grams.items() if c >= cfg.min_word_count)
        sp_bytes = None
        if cfg.pieces or not words:
            sp_bytes = _train_sentencepiece(_sample(texts, cfg.sp_max_sentences, cfg.seed),
                                            auto_vocab_size(len(word_titles), cfg), cfg.seed)
        return cls(sp_bytes, words, cfg, context_words, vocabulary(item_features, feature_cfg),
                   feature_cfg, ngrams)

    # ---------------------------------------------------------------- encoding
    def tokens(self, title: str) -> list[tuple[int, str]]:
        """(id, surface) pairs of a raw title: pieces first, then whole words."""
        return [(i, self.token_name(i)) for i in self.encode(title)]

    def encode(self, title: str) -> list[int]:
        """A title's tokens: its key's sentencepiece pieces, then its whole words."""
        text = token_text(title)
        pieces = self.sp.EncodeAsIds(text) if self.sp is not None and text else []
        return self._title_ids(text, pieces)

    def query_tokens(self, title: str) -> tuple[list[int], list[float]]:
        """(ids, weights) of a title as a query's text: its tokens (weight 1), then the
        character n-grams of its words (TokenizerConfig.ngram_weight each)."""
        text = token_text(title)
        pieces = self.sp.EncodeAsIds(text) if self.sp is not None and text else []
        return self._query_ids(text, pieces)

    def _query_ids(self, text: str, pieces: list[int]) -> tuple[list[int], list[float]]:
        ids = self._title_ids(text, pieces)
        grams = self._ngram_weights(text) if ids else {}
        return ids + list(grams), [1.0] * len(ids) + list(grams.values())

    def query_views(self, titles: list[str], chunk: int = 8192) -> "Packed":
        """Every title as a query's text (`query_tokens`), packed one after another: the
        text view that training predicts categories from."""
        out = _PackedBuilder()
        for start in range(0, len(titles), chunk):
            texts = [token_text(t) for t in titles[start: start + chunk]]
            pieces = (self.sp.Encode(texts, out_type=int, num_threads=1)
                      if self.sp is not None else [[] for _ in texts])
            for text, ps in zip(texts, pieces):
                out.add(*self._query_ids(text, ps))
        return out.packed()

    def guide_views(self, text: "Packed", token_ids: np.ndarray, token_weights: np.ndarray) -> "Packed":
        """Every title's text view followed by the guide features of its catalog bag
        (token_ids / token_weights: encode_items' rows): a title with a schedule, no description."""
        feature = token_ids >= self.vocab_size - len(self.features)
        n_feat = feature.sum(axis=1).astype(np.int64)
        lengths = text.lengths + n_feat
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # positions of each title's text tokens, then of its features, in the output
        text_pos = np.repeat(starts, text.lengths) + _ranks(text.lengths)
        feat_pos = np.repeat(starts + text.lengths, n_feat) + _ranks(n_feat)
        ids = np.empty(int(lengths.sum()), np.int32)
        weights = np.empty(len(ids), np.float32)
        ids[text_pos], weights[text_pos] = text.ids, text.weights
        ids[feat_pos], weights[feat_pos] = token_ids[feature], token_weights[feature]
        return Packed(ids, weights, lengths)

    def item_tokens(self, title: str, context: str = "",
                    features: dict[str, float] | None = None) -> list[tuple[int, str, float]]:
        """(id, surface, weight) of a catalog title: its tokens (weight 1), then up to
        `context_words` description words (weight `context_weight`) it does not already
        have, then its guide features (their kind's weight times their share)."""
        ids = self.encode(title)
        out = [(i, self.token_name(i), 1.0) for i in ids]
        if context and self._context_ok:
            out.extend((i, self.token_name(i), self.cfg.context_weight)
                       for i in self._context_ids(context, set(ids)))
        out.extend((i, self.token_name(i), w) for i, w in self.feature_tokens(features))
        return out

    def feature_tokens(self, features: dict[str, float] | None) -> list[tuple[int, float]]:
        """(id, weight) of the known features among `features` (feature -> share)."""
        if not features or not self.feature_id:
            return []
        out = []
        for f, share in features.items():
            fid = self.feature_id.get(f)
            w = feature_weight(f, share, self.feature_cfg) if fid is not None else 0.0
            if w > 0:
                out.append((fid, w))
        return out

    def encode_items(self, titles: list[str], contexts: list[str],
                     features: list[dict[str, float]] | None = None,
                     chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids [S, L] (int32) and weights [S, L] (0 at PAD) of catalog titles with context:
        the ids and weights of `item_tokens`, encoded in batches (sentencepiece's batch call)
        into flat arrays first, so the only [S, L] arrays are the two returned."""
        flat_ids, flat_w, lengths = array("q"), array("f"), array("q")
        for start in range(0, len(titles), chunk):
            texts = [token_text(t) for t in titles[start: start + chunk]]
            pieces = (self.sp.Encode(texts, out_type=int, num_threads=1)
                      if self.sp is not None else [[] for _ in texts])
            feats = features[start: start + chunk] if features else [None] * len(texts)
            for text, ps, context, f in zip(texts, pieces, contexts[start: start + chunk], feats):
                row = self._title_ids(text, ps)
                n_title = len(row)
                if context and self._context_ok:
                    row.extend(self._context_ids(context, set(row)))
                extra = self.feature_tokens(f)
                flat_w.extend([1.0] * n_title)
                flat_w.extend([self.cfg.context_weight] * (len(row) - n_title))
                row.extend(i for i, _ in extra)
                flat_w.extend(w for _, w in extra)
                flat_ids.extend(row)
                lengths.append(len(row))
        lens = np.frombuffer(lengths, dtype=np.int64) if len(lengths) else np.zeros(0, np.int64)
        width = max([1] + ([int(lens.max())] if len(lens) else []))
        ids = np.zeros((len(lens), width), dtype=np.int32)   # int32: half of int64 at 1M titles
        weights = np.zeros((len(lens), width), dtype=np.float32)
        mask = np.arange(width)[None, :] < lens[:, None]
        ids[mask] = np.frombuffer(flat_ids, dtype=np.int64) if len(flat_ids) else 0
        weights[mask] = np.frombuffer(flat_w, dtype=np.float32) if len(flat_w) else 0
        return ids, weights

    def _title_ids(self, text: str, pieces: list[int]) -> list[int]:
        """The ids of `tokens` for an already normalized text and its sentencepiece ids."""
        out = [1 + i for i in pieces] if text else []
        word_id = self.word_id
        for w in words_of(text):
            wid = word_id.get(w)
            if wid is not None:
                out.append(wid)
        return out[: self.cfg.max_tokens]

    def _ngram_weights(self, text: str) -> dict[int, float]:
        """n-gram id -> weight for a normalized text: each word's known n-grams share
        TokenizerConfig.ngram_weight (as fastText averages a word's n-grams), so a long word
        weighs no more than a short one; an n-gram of two words adds up."""
        out: dict[int, float] = {}
        if not self.ngram_id:
            return out
        gid, total = self.ngram_id, self.cfg.ngram_weight
        for w in words_of(text):
            known = [i for i in (gid.get(g) for g in char_ngrams(w, self.cfg.ngram_min, self.cfg.ngram_max))
                     if i is not None]
            for i in known:
                out[i] = out.get(i, 0.0) + total / len(known)
        return out

    def _context_ids(self, context: str, have: set[int]) -> list[int]:
        """The description-word ids `item_tokens` adds to a title that has ids `have`."""
        out: list[int] = []
        for w in words_of(fold(clean_text(context))):
            wid = self.word_id.get(w)
            if w in self._context_ok and wid is not None and wid not in have:
                out.append(wid)
                have.add(wid)
                if len(out) >= self.cfg.context_words:
                    break
        return out

    def token_name(self, token_id: int) -> str:
        if token_id == PAD_ID:
            return "<pad>"
        if token_id <= self.n_pieces:
            return self.sp.IdToPiece(token_id - 1)
        if token_id <= self.n_pieces + len(self.words):
            return f"[{self.words[token_id - 1 - self.n_pieces]}]"
        if token_id <= self.n_pieces + len(self.words) + len(self.ngrams):
            return f"{{{self.ngrams[token_id - 1 - self.n_pieces - len(self.words)]}}}"
        return f"<{self.features[token_id - 1 - self.n_pieces - len(self.words) - len(self.ngrams)]}>"

    # ---------------------------------------------------------------- files
    def save(self, directory: Path) -> list[str]:
        files = [TOKENIZER_FILE]
        if self.sp_bytes is not None:
            (directory / "tokenizer.model").write_bytes(self.sp_bytes)
            files.append("tokenizer.model")
        meta = {"format": FORMAT, "config": self.cfg.__dict__, "n_pieces": self.n_pieces,
                "words": self.words, "context_words": self.context_words, "pad_id": PAD_ID,
                "features": self.features, "feature_config": dataclasses.asdict(self.feature_cfg),
                "ngrams": self.ngrams}
        (directory / TOKENIZER_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return files

    @classmethod
    def load(cls, directory: Path, meta: dict | None = None) -> "Tokenizer":
        """The tokenizer saved in `directory`; `meta`: its tokenizer.json as the caller read
        it (a model folder's reader passes an older format through artifact/upgrade.py)."""
        if meta is None:
            meta = json.loads((directory / TOKENIZER_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{directory}/{TOKENIZER_FILE}: unknown format {found!r} (expected {FORMAT})")
        sp_path = directory / "tokenizer.model"
        sp_bytes = sp_path.read_bytes() if sp_path.exists() else None
        tok = cls(sp_bytes, meta["words"], TokenizerConfig(**meta["config"]), meta["context_words"],
                  meta["features"], FeatureConfig(**meta["feature_config"]), meta["ngrams"])
        if tok.n_pieces != meta["n_pieces"]:
            raise ValueError(f"{directory}: tokenizer.model has {tok.n_pieces} pieces, expected {meta['n_pieces']}")
        return tok


@dataclass(frozen=True)
class Packed:
    """Token bags one after another (no padding): bag b is ids[o: o + lengths[b]] with
    o = lengths[:b].sum(), each token with its weight."""
    ids: np.ndarray        # int32
    weights: np.ndarray    # float32
    lengths: np.ndarray    # int64, one per bag


class _PackedBuilder:
    def __init__(self):
        self.ids, self.weights, self.lengths = array("q"), array("f"), array("q")

    def add(self, ids: list[int], weights: list[float]) -> None:
        self.ids.extend(ids)
        self.weights.extend(weights)
        self.lengths.append(len(ids))

    def packed(self) -> Packed:
        return Packed(np.frombuffer(self.ids, dtype=np.int64).astype(np.int32),
                      np.frombuffer(self.weights, dtype=np.float32).copy(),
                      np.frombuffer(self.lengths, dtype=np.int64).copy())


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each n of `lengths`, one run after another."""
    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def char_ngrams(word: str, lo: int, hi: int) -> list[str]:
    """fastText's character n-grams of a word, with its boundaries marked: "<ab>" ->
    "<a", "ab", "b>", "<ab", "ab>" for n in lo..hi (the whole word itself left out)."""
    w = f"<{word}>"
    return [w[i: i + n] for n in range(lo, hi + 1) for i in range(len(w) - n + 1) if w[i: i + n] != w]


def _sample(texts: list[str], limit: int, seed: int) -> list[str]:
    """`texts` itself when it has at most `limit` entries (0: no limit); otherwise a seeded
    sample of `limit` of them, in their order (sentencepiece's time and memory grow with it)."""
    if not limit or len(texts) <= limit:
        return texts
    keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=limit, replace=False))
    return [texts[i] for i in keep]


def _train_sentencepiece(texts: list[str], vocab_size: int, seed: int) -> bytes:
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    chars = len(set("".join(texts)))
    # byte fallback reserves 256 ids; the rest must also cover every kept character
    vocab_size = max(vocab_size, 256 + min(chars, 2000) + 8)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", byte_fallback=True, character_coverage=0.9995,
        hard_vocab_limit=False, split_digits=True, num_threads=1,
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        max_sentence_length=4096, minloglevel=2, shuffle_input_sentence=False,
        normalization_rule_name="identity",
    )
    return model.getvalue()
