"""contracts/ is the single source of cross-language constants: edit the file, both sides follow.

Python reads contracts/streaming.json at import; Rust embeds it at build time (include_str!). The
Rust half compiles serving-rs/src/streaming.rs through the small contract-probe crate in a copy of
the tree whose contract was edited, so no scorer code changes and the full crate is not rebuilt.
Sizing files are validated by the same JSON-schema subset on both sides; jsonschema is the oracle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from scorer_helpers import CONTRACTS

from backtest.sizing import SizingConfig
from core.errors import ConfigError
from feature_store.contract import STREAMING, load_streaming
from mps.scorer_process import target_dir

REPO = CONTRACTS.parent
EDIT = ("features.v1.{tf}.{symbol}", "feat.v9.{tf}.{symbol}")


def _edited_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(CONTRACTS, root / "contracts", ignore=shutil.ignore_patterns("models", "golden", "__pycache__"))
    probe = REPO / "serving-rs"
    (root / "serving-rs").mkdir()
    shutil.copytree(probe / "src", root / "serving-rs" / "src")
    shutil.copytree(
        probe / "contract-probe", root / "serving-rs" / "contract-probe", ignore=shutil.ignore_patterns("target")
    )
    contract = root / "contracts" / "streaming.json"
    text = contract.read_text()
    assert EDIT[0] in text
    contract.write_text(text.replace(*EDIT))
    return root


def test_python_loader_follows_an_edited_contract(tmp_path):
    root = _edited_tree(tmp_path)
    edited = load_streaming(root / "contracts" / "streaming.json")
    assert edited.pattern("features") == "feat.v9.>" and edited.stream_subjects("FEATURES") == ["feat.v9.>"]
    assert STREAMING.pattern("features") == "features.v1.>"
    # At import, with the edited contracts package first on the path: no code edit.
    code = "from feature_store.messages import STREAMS, features_subject; print(features_subject('1s', 'A:US'), STREAMS['FEATURES'])"
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["feat.v9.1s.A:US", "['feat.v9.>']"]


@pytest.mark.slow
def test_rust_build_embeds_the_edited_contract(tmp_path):
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    root = _edited_tree(tmp_path)
    target = target_dir() / "contract-probe"  # its own: dependencies build once, the probe every time
    for stale in (target / "release" / ".fingerprint").glob("mps-contract-probe-*"):
        shutil.rmtree(stale)  # cargo keys path crates by a path-independent hash: force the rebuild
    env = {**os.environ, "CARGO_TARGET_DIR": str(target)}
    crate = root / "serving-rs" / "contract-probe"
    subprocess.run(["cargo", "build", "--release", "--offline", "-q"], cwd=crate, env=env, check=True, timeout=900)
    probe = target / "release" / "mps-contract-probe"
    out = subprocess.run([str(probe)], capture_output=True, text=True, check=True)
    rust = json.loads(out.stdout)
    assert rust["subjects"]["features"] == {"template": EDIT[1], "pattern": "feat.v9.>"}
    assert rust["streams"]["FEATURES"] == ["feat.v9.>"]


def test_scorer_binary_and_python_read_the_same_contract(scorer_bin):
    out = subprocess.run([str(scorer_bin), "--print-contract"], capture_output=True, text=True, check=True, timeout=30)
    rust = json.loads(out.stdout)
    for name in STREAMING.subjects:
        assert rust["subjects"][name] == {"template": STREAMING.subjects[name], "pattern": STREAMING.pattern(name)}
    assert rust["streams"] == {s: STREAMING.stream_subjects(s) for s in STREAMING.streams}
    assert (rust["models_bucket"], rust["champion_key"]) == (STREAMING.models_bucket, STREAMING.champion_key_template)
    assert rust["challenger_key"] == STREAMING.challenger_key_template


def _mutations() -> list[tuple[str, str]]:
    raw = json.loads((CONTRACTS / "sizing.json").read_text())
    text = json.dumps(raw)

    def with_(**kw) -> str:
        return json.dumps({**raw, **kw})

    return [
        ("as_shipped", text),
        ("nav_infinity", text.replace(f'"nav": {json.dumps(raw["nav"])}', '"nav": Infinity')),
        ("nav_nan", text.replace(f'"nav": {json.dumps(raw["nav"])}', '"nav": NaN')),
        ("nav_huge", text.replace(f'"nav": {json.dumps(raw["nav"])}', '"nav": 1e400')),
        ("alpha_above_1", with_(kelly_alpha=1.5)),
        ("alpha_zero", with_(kelly_alpha=0)),
        ("fee_negative", with_(fee_bps=-0.1)),
        ("horizon_float", with_(horizon=60.0)),
        ("horizon_zero", with_(horizon=0)),
        ("horizon_bool", with_(horizon=True)),
        ("staleness_string", with_(max_staleness_ms="5000")),
        ("vol_feature_null", with_(realized_vol_feature=None)),
        ("vol_feature_number", with_(realized_vol_feature=3)),
        ("unknown_key", with_(kelly_alfa=0.3)),
        ("missing_key", json.dumps({k: v for k, v in raw.items() if k != "nav"})),
        ("not_an_object", "[1, 2]"),
        ("integer_where_number", with_(target_vol=1)),
    ]


def test_sizing_files_are_accepted_by_rust_exactly_when_python_accepts_them(scorer_bin, tmp_path):
    schema = json.loads((CONTRACTS / "sizing.schema.json").read_text())
    verdicts = {}
    for name, text in _mutations():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        try:
            SizingConfig.load(path)
            python_ok = True
        except ConfigError:
            python_ok = False
        rust = subprocess.run(
            [str(scorer_bin), "--check-sizing", str(path)], capture_output=True, text=True, timeout=30
        )
        assert rust.returncode in (0, 2), rust.stderr
        verdicts[name] = (python_ok, rust.returncode == 0)
        try:  # the independent oracle, on what strict JSON can carry
            value = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            oracle_ok = not list(jsonschema.Draft202012Validator(schema).iter_errors(value))
            # JSON Schema counts 60.0 as an integer (both sides refuse it on purpose); 1e400 reads as inf.
            if name not in ("horizon_float", "nav_huge"):
                assert oracle_ok == python_ok, name
        except ValueError:
            pass
    assert all(p == r for p, r in verdicts.values()), verdicts
    assert verdicts["as_shipped"] == (True, True) and verdicts["nav_infinity"] == (False, False)
    assert sum(not p for p, _ in verdicts.values()) >= 12
