"""Configs: a user's file is strict, a model folder's manifest is read as built (a format 1
manifest's config through the format's converter, artifact/upgrade.py)."""
import json

import pytest

from epgembed.artifact import upgrade
from epgembed.config import Config

pytestmark = pytest.mark.unit


def test_a_config_file_with_an_unknown_option_is_an_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"dim": 8, "optimizer": "adagrad"}}))
    with pytest.raises(ValueError, match="unknown train option"):
        Config.load(path)


def test_a_manifest_config_rebuilds_the_config_a_model_was_built_with():
    built = Config().replace(train={"dim": 8, "epochs": 2}, index={"search_k": 123, "center": False})
    assert Config.from_dict(json.loads(json.dumps(built.to_dict()))) == built


def test_a_format_1_config_loses_the_options_this_version_no_longer_has():
    old = {"train": {"dim": 8, "optimizer": "sparse_adam", "context_task": 0.0},
           "index": {"search_k": 5}, "retired_section": {"x": 1}}
    with pytest.raises(ValueError, match="unknown train option"):
        Config.from_dict(old)                       # format 2 holds exactly Config's options
    new = upgrade.config(old)
    c = Config.from_dict(new)
    assert (c.train.dim, c.index.search_k) == (8, 5) and new == c.to_dict()
    assert c.train.lr == Config().train.lr          # what the manifest does not say: today's default


def test_the_feature_kinds_are_one_list():
    """text/features.py KINDS is the one list of guide feature kinds: FeatureConfig has a weight
    per kind, in its order (feature_weight reads it by the kind's name: a kind without a field
    would weigh 0 without a word), and no other field but its three settings; the answer
    shape's FeatureKind is that list."""
    from dataclasses import fields
    from typing import get_args

    from epgembed.config import FeatureConfig
    from epgembed.query.shapes import FeatureKind
    from epgembed.text.features import KINDS
    weights = [f.name for f in fields(FeatureConfig) if f.name not in ("per_kind", "min_share", "min_items")]
    assert tuple(weights) == KINDS and all(isinstance(getattr(FeatureConfig(), k), float) for k in KINDS)
    assert get_args(FeatureKind) == KINDS
