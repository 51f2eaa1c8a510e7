"""Profiles and the strategy file are typed and strict: typos are errors naming the key."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.profile import available_profiles, load_profile
from core.strategy import DEFAULT_STRATEGY, load_strategy


def test_both_profiles_load_through_one_mapping():
    assert {"local", "prod"} <= set(available_profiles())
    local, prod = load_profile("local"), load_profile("prod")
    assert local.lake.root.endswith(".mps/lake") and local.nats.embedded
    assert prod.lake.root.startswith("s3://") and prod.lake.storage_options["aws_conditional_put"] == "etag"


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown profile 'staging' .*; available: local, prod"):
        load_profile("staging")


def test_typo_in_a_profile_names_the_key(tmp_path):
    (tmp_path / "local.yaml").write_text(
        "name: local\nlake: {root: x, storag_options: {}}\nmlflow: {tracking_uri: a, artifact_root: b}\n"
    )
    with pytest.raises(ConfigError, match=r"local.yaml: lake.storag_options: Extra inputs are not permitted"):
        load_profile("local", directory=tmp_path, base=tmp_path)


def test_relative_paths_resolve_against_the_base(tmp_path):
    prof = load_profile("local", base=tmp_path)
    assert prof.lake.root == str(tmp_path / ".mps" / "lake")


def test_default_strategy_validates():
    strategy = load_strategy()
    tick = next(m for m in strategy.models if m.kind == "tick")
    assert tick.horizons == [1, 5, 10, 30, 60, 120, 300, 600]
    assert tick.buckets.count == 101 and strategy.sizing_path().exists()


def test_every_model_sizing_names_features_of_its_own_feature_set():
    """The scorer refuses to bind a sizing whose vol or ADV feature the model does not read: the
    strategy's default sizing names tick_v1's rv_300s_ann and adv_notional, which tick_v2 lacks."""
    from backtest.sizing import SizingConfig
    from feature_store.registry import get

    strategy = load_strategy()
    for model in strategy.models:
        sizing = SizingConfig.load(strategy.sizing_path(model.name))
        named = {sizing.realized_vol_feature, sizing.adv_feature} - {None}
        assert named <= set(get(model.feature_set).names), (model.name, named)
    assert strategy.sizing_path("specs-tick").name == "sizing_tick_v2.json"
    assert strategy.sizing_path("no-such-model") == strategy.sizing_path()


@pytest.mark.parametrize(
    "edit, message",
    [
        (("walk_forward: {", "walk_forward: {train_dayz: 3, "), "walk_forward.train_dayz: Extra inputs"),
        (("kind: tick", "kind: tik"), "models.0.kind: Input should be 'tick' or 'bar'"),
        (("{lo_bps: -50, hi_bps: 50", "{lo_bps: 50, hi_bps: -50"), "hi_bps must be greater than lo_bps"),
    ],
)
def test_strategy_errors_name_the_key(tmp_path, edit, message):
    text = DEFAULT_STRATEGY.read_text().replace(*edit, 1)
    path = tmp_path / "strategy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_strategy(path)


def test_a_profile_file_of_ones_own_is_loaded_by_path(tmp_path):
    from core.profile import load_profile

    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nlake: {root: lake}\nmlflow: {tracking_uri: 'sqlite:///m.db', artifact_root: art}\nstate_dir: st\n"
    )
    prof = load_profile(str(path), base=tmp_path)
    assert prof.lake.root == str(tmp_path / "lake") and prof.state_dir == str(tmp_path / "st")
    assert prof.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'm.db'}"
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile(str(tmp_path / "missing.yaml"))
