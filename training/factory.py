"""Models and baselines by name: what the strategy's ``architecture`` field selects.

Baselines are fitted beside every model on the same windows (DESIGN section 11): climatology and
EWMA-vol Student-t always, GARCH(1,1)-t for bar models. The one-step return feature (for the
volatility baselines) is the first feature named ``ret_1*`` / ``log_ret_1*`` (else the first one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.errors import ConfigError
from training.models.base import Buckets


def return_feature(names: Sequence[str]) -> int:
    """Index of the one-step log return among ``names``."""
    for i, n in enumerate(names):
        if n in ("ret_1s", "ret_1", "log_ret_1", "ret_1b", "logret_1"):
            return i
    for i, n in enumerate(names):
        if n.startswith(("ret_1", "log_ret_1")):
            return i
    return 0


def make_model(architecture: str, buckets: Buckets, feature_names: Sequence[str], fast: bool = False):
    """A fresh model for ``architecture`` (transformer, lightgbm, baseline); ``fast`` shrinks it for tests."""
    if architecture == "transformer":
        from training.models.transformer import PriceTransformer, TransformerConfig

        tcfg = (
            TransformerConfig(max_epochs=2, d_model=16, n_layers=1, batch_size=256, lr=3e-3)
            if fast
            else TransformerConfig()
        )
        return PriceTransformer(buckets, replace(tcfg, ret_feature=return_feature(feature_names)))
    if architecture == "lightgbm":
        from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig

        cfg = LightGBMConfig(n_estimators=20, n_bins=9) if fast else LightGBMConfig()
        return LightGBMBuckets(buckets, cfg)
    if architecture == "baseline":
        return baselines("tick", buckets, feature_names)["ewma_t"]
    raise ConfigError(f"architecture {architecture!r} cannot be trained here (transformer, lightgbm, baseline)")


def baselines(kind: str, buckets: Buckets, feature_names: Sequence[str], horizons: Sequence[int] = ()) -> dict:
    """Fresh baselines for a ``tick`` or ``bar`` model, keyed by name."""
    from training.models.climatology import Climatology
    from training.models.ewma_t import EwmaT, EwmaTConfig

    ret = return_feature(feature_names)
    out = {"climatology": Climatology(buckets), "ewma_t": EwmaT(buckets, EwmaTConfig(ret_feature=ret))}
    if kind == "bar":
        from training.models.garch_t import GarchT, GarchTConfig

        out["garch_t"] = GarchT(buckets, GarchTConfig(horizon_steps=tuple(horizons), ret_feature=ret))
    return out
