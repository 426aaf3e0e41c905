import pytest

from epgembed.config import TokenizerConfig
from epgembed.text.tokenize import PAD_ID
from epgembed.text.tokenize import Tokenizer, token_text

pytestmark = pytest.mark.unit

TITLES = ["Football Tonight", "Football Weekly", "Tennis Tonight", "Kitchen Heroes",
          "Great Kitchen Battle", "Tatort", "Rote Rosen (3608)", "Les Experts: Miami",
          "Hey Arnold! S3 Ep. 42", "News at Six", "Morning News"] * 3


def test_byte_fallback_leaves_nothing_unknown():
    tok = Tokenizer.train(TITLES, TokenizerConfig(seed=0))
    unk = 1 + tok.sp.unk_id()
    for text in ["★ Stars ★", "東京 News", "#TBT 😀", "Ωmega", "Football Tonight"]:
        ids = tok.encode(text)
        assert ids and PAD_ID not in ids and unk not in ids, text


def test_words_alongside_pieces_and_normalization_shared():
    tok = Tokenizer.train(TITLES, TokenizerConfig(seed=0, min_word_count=2))
    names = [tok.token_name(i) for i in tok.encode("FOOTBALL tonight S2 Ep. 4")]
    assert "[football]" in names and "[tonight]" in names
    assert tok.encode("Football Tonight") == tok.encode("football\u00a0TONIGHT (HD)")
    assert token_text("Rote Rosen (3608)") == "rote rosen"


def test_tokenizer_is_deterministic_and_round_trips(tmp_path):
    a = Tokenizer.train(TITLES, TokenizerConfig(seed=3))
    b = Tokenizer.train(TITLES, TokenizerConfig(seed=3))
    assert a.sp_bytes == b.sp_bytes and a.words == b.words
    a.save(tmp_path)
    c = Tokenizer.load(tmp_path)
    for t in TITLES + ["Unseen Title ★"]:
        assert c.encode(t) == a.encode(t)


def test_word_only_tokenizer_for_the_ablation():
    tok = Tokenizer.train(TITLES, TokenizerConfig(pieces=False, min_word_count=1))
    assert tok.sp is None and tok.encode("Football Tonight") == [tok.word_id["football"], tok.word_id["tonight"]]


def test_description_context_words_are_weighted_and_stopwords_left_out():
    titles = [f"Show {i}" for i in range(40)]
    contexts = [f"the detective solves a murder case {i}" if i % 2 else f"the chef cooks a dish {i}"
                for i in range(40)]
    cfg = TokenizerConfig(context_words=3, context_weight=0.25, context_max_df=0.6)
    tok = Tokenizer.train(titles, cfg, contexts)
    assert "detective" in tok.context_words and "chef" in tok.context_words
    assert "the" not in tok.context_words and "a" not in tok.context_words   # in > 60% of texts
    items = tok.item_tokens("Show 1", "The detective solves a murder case")
    ctx = [(name, w) for _, name, w in items if w != 1.0]
    assert ctx == [("[detective]", 0.25), ("[solves]", 0.25), ("[murder]", 0.25)]  # capped at 3
    ids, weights = tok.encode_items(["Show 1", "Show 2"], ["The detective", ""])
    assert ids.shape == weights.shape and weights[1][ids[1] == 0].sum() == 0
    assert tok.encode("Show 1") == [i for i, _, w in items if w == 1.0]  # queries: title only
