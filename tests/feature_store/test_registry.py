"""The feature registry: declarations, set versions, lookups and the model contract check."""

from __future__ import annotations

import pytest

from core.errors import ConfigError, ContractError
from feature_store.registry import FeatureDef, FeatureSet, check_model_features, get, known, register


def _set(name: str = "t_reg", window: int = 3) -> FeatureSet:
    return FeatureSet(name, "1d", (FeatureDef("a", params={"n": window}, window=window), FeatureDef("b")))


def test_known_sets_include_bars_and_tick():
    assert {"bar_v1", "bar_1m_v1", "tick_v1"} <= set(known())
    fs = get("bar_v1")
    assert fs.tf == "1d" and fs.names[0] == "ret_1" and fs.index("rsi_14") == fs.names.index("rsi_14")
    assert fs["ema_20"].param == {"n": 20}


def test_unknown_set_lists_the_known_ones():
    with pytest.raises(ConfigError, match="bar_v1"):
        get("no_such_set")


def test_version_is_a_hash_of_the_definitions():
    a, b = _set(window=3), _set(window=3)
    assert a.version == b.version and len(a.version) == 12
    assert _set(window=4).version != a.version


def test_register_refuses_a_changed_definition_under_the_same_name():
    register(_set("t_reg_twice"))
    register(_set("t_reg_twice"))  # same definitions: fine
    with pytest.raises(ConfigError, match="registered twice"):
        register(_set("t_reg_twice", window=9))


@pytest.mark.parametrize(
    "bad",
    [
        lambda: FeatureDef("not an identifier"),
        lambda: FeatureDef("x", dtype="int8"),
        lambda: FeatureDef("x", window=-1),
        lambda: FeatureSet("dup", "1d", (FeatureDef("x"), FeatureDef("x"))),
        lambda: FeatureSet("empty", "1d", ()),
    ],
)
def test_bad_declarations_are_config_errors(bad):
    with pytest.raises(ConfigError):
        bad()


def test_model_contract_check():
    names = get("tick_v1").names
    check_model_features("tick_v1", names)
    with pytest.raises(ContractError, match="registry tick_v1"):
        check_model_features("tick_v1", tuple(reversed(names)))
    with pytest.raises(ContractError, match="not registered"):
        check_model_features("nope_v9", names)


def test_tiny_model_reads_the_registry():
    from training.tiny_model import TinyTickConfig

    assert TinyTickConfig().feature_names == get("tick_v1").names
