"""The model file contract (DESIGN section 7, contracts/model.md), as every reader sees it.

An exported ONNX model describes itself in ``metadata_props``: name and version, feature set and
feature order, lookback, horizons, bucket edges, calibration and conformal quantiles, and the sha256
of the golden vectors shipped beside it. Scorers (the Python reference, the API's as-of path) read it
here; ``training.onnx_export`` writes it. Reading needs only ``onnx``, never torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from core.errors import ContractError

CONTRACT_VERSION = "1"
MIN_OPSET = 17


@dataclass(frozen=True)
class ModelMetadata:
    """What a model file says about itself (metadata_props; see contracts/model.md)."""

    model_name: str
    model_version: str
    feature_set: str
    feature_names: tuple[str, ...]
    lookback: int
    horizons: tuple[int, ...]
    horizon_unit: str  # "s" (tick models) or "bars"
    tf: str  # timeframe of the FeatureUpdates it scores, e.g. "1s"
    bucket_edges_bps: tuple[float, ...]  # K + 1 edges
    calibration_temperatures: tuple[float, ...]  # one per horizon, already applied in the graph
    conformal_alpha: float = 0.1
    conformal_qhat_bps: tuple[float, ...] = field(default=())  # one per horizon
    golden_file: str = ""
    golden_sha256: str = ""

    def props(self) -> dict[str, str]:
        """Return the metadata_props mapping (structured values JSON-encoded)."""
        return {
            "contract": CONTRACT_VERSION,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_set": self.feature_set,
            "feature_names": json.dumps(list(self.feature_names)),
            "lookback": str(self.lookback),
            "horizons": json.dumps(list(self.horizons)),
            "horizon_unit": self.horizon_unit,
            "tf": self.tf,
            "bucket_edges_bps": json.dumps(list(self.bucket_edges_bps)),
            "calibration_temperatures": json.dumps(list(self.calibration_temperatures)),
            "conformal_alpha": repr(float(self.conformal_alpha)),
            "conformal_qhat_bps": json.dumps(list(self.conformal_qhat_bps)),
            "golden_file": self.golden_file,
            "golden_sha256": self.golden_sha256,
        }

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Parse metadata_props; a missing or malformed key is a ContractError naming it."""

        def get(key: str) -> str:
            if key not in props:
                raise ContractError(f"model metadata lacks {key!r} (contracts/model.md)")
            return props[key]

        try:
            meta = cls(
                model_name=get("model_name"),
                model_version=get("model_version"),
                feature_set=get("feature_set"),
                feature_names=tuple(json.loads(get("feature_names"))),
                lookback=int(get("lookback")),
                horizons=tuple(int(h) for h in json.loads(get("horizons"))),
                horizon_unit=get("horizon_unit"),
                tf=get("tf"),
                bucket_edges_bps=tuple(float(e) for e in json.loads(get("bucket_edges_bps"))),
                calibration_temperatures=tuple(float(t) for t in json.loads(get("calibration_temperatures"))),
                conformal_alpha=float(get("conformal_alpha")),
                conformal_qhat_bps=tuple(float(q) for q in json.loads(get("conformal_qhat_bps"))),
                golden_file=get("golden_file"),
                golden_sha256=get("golden_sha256"),
            )
        except (ValueError, TypeError) as exc:
            raise ContractError(f"model metadata is malformed: {exc}") from exc
        meta.check()
        return meta

    def check(self) -> None:
        """Raise ContractError if the fields disagree with each other."""
        h = len(self.horizons)
        if len(self.calibration_temperatures) != h or len(self.conformal_qhat_bps) != h:
            raise ContractError("calibration_temperatures and conformal_qhat_bps need one entry per horizon")
        edges = np.asarray(self.bucket_edges_bps)
        if len(edges) < 3 or not np.all(np.diff(edges) > 0):
            raise ContractError("bucket_edges_bps must be at least 3 strictly increasing edges")
        if self.lookback < 1 or not self.feature_names:
            raise ContractError("lookback must be >= 1 and feature_names non-empty")

    @property
    def n_buckets(self) -> int:
        return len(self.bucket_edges_bps) - 1


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_metadata(onnx_path: str | Path) -> ModelMetadata:
    """Read and validate the metadata_props of an exported model."""
    proto = onnx.load_model(str(onnx_path), load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
