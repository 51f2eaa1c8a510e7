"""training.onnx_export writes the model contract: dynamic batch, metadata_props, golden vectors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from contracts.regen_golden import tiny_metadata
from core.errors import ContractError
from training.onnx_export import ModelMetadata, champion_pointer, export_model, read_metadata, run_onnx, sha256_file
from training.tiny_model import TinyTickConfig, TinyTickModel, example_inputs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = TinyTickConfig(lookback=8, d_model=8, d_hidden=16, horizons=(1, 5, 60), seed=3)
    meta = tiny_metadata(cfg, "7")
    path = export_model(TinyTickModel(cfg).eval(), meta, tmp_path_factory.mktemp("export"), example_inputs(cfg, 3))
    return cfg, path


def test_export_writes_contract_metadata(exported):
    cfg, path = exported
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["features"] and [o.name for o in proto.graph.output] == ["probs"]
    meta = read_metadata(path)
    assert meta.model_version == "7" and meta.lookback == 8 and meta.horizons == (1, 5, 60)
    assert meta.feature_names == cfg.feature_names and meta.n_buckets == 101
    assert sha256_file(path.with_name(meta.golden_file)) == meta.golden_sha256


@pytest.mark.parametrize("batch", [1, 5])
def test_exported_graph_has_dynamic_batch_and_matches_torch(exported, batch):
    cfg, path = exported
    x = example_inputs(cfg, batch, seed=99)
    probs = run_onnx(path, x.numpy())
    assert probs.shape == (batch, 3, 101)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    meta = read_metadata(path)
    with torch.no_grad():
        p = TinyTickModel(cfg).eval()(x)
        t = torch.tensor(meta.calibration_temperatures)[None, :, None]
        expected = torch.softmax(torch.log(p) / t, dim=-1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_champion_pointer_follows_its_schema(exported):
    import jsonschema
    from scorer_helpers import CONTRACTS

    _, path = exported
    pointer = champion_pointer(path, read_metadata(path), promoted_at_ns=1)
    jsonschema.validate(pointer, json.loads((CONTRACTS / "champion_pointer.schema.json").read_text()))
    assert pointer["onnx_uri"].startswith("file://") and pointer["sha256"] == sha256_file(path)


def test_metadata_rejects_missing_and_inconsistent_keys(exported):
    _, path = exported
    props = read_metadata(path).props()
    with pytest.raises(ContractError, match="lookback"):
        ModelMetadata.from_props({k: v for k, v in props.items() if k != "lookback"})
    with pytest.raises(ContractError, match="per horizon"):
        ModelMetadata.from_props({**props, "conformal_qhat_bps": "[1.0]"})
    with pytest.raises(ContractError, match="batch|B >= 2"):
        cfg = TinyTickConfig(lookback=8)
        export_model(TinyTickModel(cfg), tiny_metadata(cfg, "1"), path.parent / "x", example_inputs(cfg, 1))
