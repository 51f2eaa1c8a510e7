"""The feature registry: every feature declared once, every feature set versioned by its definitions.

A ``FeatureDef`` says what a feature is (name, version, parameters, input table and columns, window,
dtype, description) and how closely the streaming path must reproduce the batch value
(``stream_tolerance``). A ``FeatureSet`` is an ordered tuple of them for one timeframe; its
``version`` is a short sha256 of the definitions, so a model trained on one set refuses another.

Batch compute functions live in the family modules (``feature_store.bars``, ``feature_store.tick_features``,
...) keyed by feature name; the streaming featurizer, the model metadata and the scorer's input
order all read ``names`` from here.

Family modules register their sets when imported. ``get`` imports the modules in ``FEATURE_MODULES``
first, so ``get("bar_v1")`` works without the caller knowing where a set is declared; a new family
appends its module there.

    from feature_store.registry import get
    fs = get("bar_v1")
    fs.names        # ('ret_1', 'ret_5', ...)  model input order
    fs.version      # 'a1b2c3d4e5f6'
    fs["rsi_14"]    # FeatureDef
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError, ContractError

# Modules that declare feature sets (imported lazily by ``get``/``known``). Append, never reorder.
FEATURE_MODULES: list[str] = [
    "feature_store.tick_features",
    "feature_store.bars.definitions",
    "feature_store.tick.definitions",
    "feature_store.regime",
    "feature_store.cross_section",
    "feature_store.options",
    "feature_store.curve",
]

DTYPES = ("float64", "float32")


def _freeze(value: Any) -> Any:
    """Turn dicts/lists into sorted tuples so definitions hash and compare by value."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class FeatureDef:
    """One feature: what it reads, over which window, and the tolerance streaming must meet.

    ``params`` may be given as a dict; it is stored as a sorted tuple of (key, value) pairs.
    ``window`` counts rows of the input series (bars for bar sets, seconds for 1 s sets) the value
    depends on (0 = unbounded, e.g. an EMA or a cumulative sum).
    """

    name: str
    version: int = 1
    params: tuple | dict = ()  # stored as a sorted tuple of (key, value) pairs
    input_table: str = "silver.bars"
    input_columns: tuple[str, ...] = ("close",)
    window: int = 1
    dtype: str = "float64"
    description: str = ""
    stream_tolerance: float = 1e-9

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params) if self.params else ())
        object.__setattr__(self, "input_columns", tuple(self.input_columns))
        if not self.name.isidentifier():
            raise ConfigError(f"feature name {self.name!r} must be an identifier (it becomes a column)")
        if self.dtype not in DTYPES:
            raise ConfigError(f"feature {self.name}: dtype {self.dtype!r} not in {DTYPES}")
        if self.window < 0 or self.stream_tolerance < 0:
            raise ConfigError(f"feature {self.name}: window and stream_tolerance must be >= 0")

    @property
    def param(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)

    def spec(self) -> dict[str, Any]:
        """A JSON-able description (what the set version hashes)."""
        return {
            "name": self.name,
            "version": self.version,
            "params": [list(p) if isinstance(p, tuple) else p for p in self.params],
            "input_table": self.input_table,
            "input_columns": list(self.input_columns),
            "window": self.window,
            "dtype": self.dtype,
            "stream_tolerance": self.stream_tolerance,
        }


@dataclass(frozen=True)
class FeatureSet:
    """An ordered set of features for one timeframe (``tf``: "1s", "1m", "1d", ...)."""

    name: str
    tf: str
    features: tuple[FeatureDef, ...]
    description: str = ""
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        names = [f.name for f in self.features]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"feature set {self.name}: duplicate features {dup}")
        if not names:
            raise ConfigError(f"feature set {self.name}: no features")
        self._index.update({n: i for i, n in enumerate(names)})

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in model input order."""
        return tuple(f.name for f in self.features)

    @property
    def version(self) -> str:
        """Short sha256 of the set's definitions: changes whenever any definition changes."""
        payload = json.dumps(
            {"name": self.name, "tf": self.tf, "features": [f.spec() for f in self.features]},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def max_window(self) -> int:
        """The longest finite window of any feature (rows of warm-up history it needs)."""
        return max(f.window for f in self.features)

    def index(self, name: str) -> int:
        """Position of ``name`` in the input order."""
        try:
            return self._index[name]
        except KeyError:
            raise ConfigError(f"feature set {self.name} has no feature {name!r}; it has {list(self.names)}") from None

    def __getitem__(self, name: str) -> FeatureDef:
        return self.features[self.index(name)]

    def __len__(self) -> int:
        return len(self.features)

    def check_model(self, feature_set: str, feature_names: tuple[str, ...] | list[str]) -> None:
        """Raise ContractError unless a model consumes exactly this set, in this order."""
        if feature_set != self.name or tuple(feature_names) != self.names:
            raise ContractError(
                f"model wants {feature_set} {list(feature_names)}; registry {self.name} provides {list(self.names)}"
            )


FEATURE_SETS: dict[str, FeatureSet] = {}
_loaded = False


def register(feature_set: FeatureSet) -> FeatureSet:
    """Add a feature set; registering the same definitions again is a no-op, different ones an error."""
    old = FEATURE_SETS.get(feature_set.name)
    if old is not None and old.version != feature_set.version:
        raise ConfigError(
            f"feature set {feature_set.name} registered twice with different definitions "
            f"({old.version} vs {feature_set.version}); bump the name (e.g. _v2) instead"
        )
    FEATURE_SETS[feature_set.name] = feature_set
    return feature_set


def load_all() -> dict[str, FeatureSet]:
    """Import every module in ``FEATURE_MODULES`` (once) and return the registry."""
    global _loaded
    if not _loaded:
        for module in list(FEATURE_MODULES):
            importlib.import_module(module)
        _loaded = True
    return FEATURE_SETS


def get(name: str) -> FeatureSet:
    """The registered feature set ``name``; ConfigError listing the known sets otherwise."""
    if name not in FEATURE_SETS:
        load_all()
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ConfigError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}") from None


def known() -> list[str]:
    """Names of every registered feature set."""
    return sorted(load_all())


def check_model_features(feature_set: str, feature_names: tuple[str, ...] | list[str]) -> None:
    """Raise ContractError unless ``feature_names`` is exactly the registered order of ``feature_set``."""
    try:
        fs = get(feature_set)
    except ConfigError as exc:
        raise ContractError(f"model wants feature set {feature_set!r}, which is not registered: {exc}") from None
    fs.check_model(feature_set, feature_names)
