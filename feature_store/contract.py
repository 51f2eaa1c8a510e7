"""The streaming contract (contracts/streaming.json): every NATS subject, stream and KV name, read at import.

The Rust scorer embeds the same file at build time (serving-rs/src/streaming.rs), so a subject
changed in the file changes both sides with no code edit. Nothing else in Python spells a subject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.errors import ContractError
from core.resources import contracts_dir
from feature_store.schema_check import errors, load_schema

STREAMING_FILE = "streaming.json"


def strict_json(text: str | bytes, source: str) -> Any:
    """Parse JSON refusing NaN/Infinity tokens (Rust's serde_json refuses them too)."""

    def refuse(token: str) -> Any:
        raise ContractError(f"{source}: {token} is not JSON (non-finite numbers are refused)")

    try:
        return json.loads(text, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ContractError):
            raise
        raise ContractError(f"{source}: not JSON: {exc}") from exc


def _prefix(template: str) -> str:
    """The template up to (not including) its first placeholder token: ``features.v1.{tf}.{s}`` -> ``features.v1``."""
    head = template.split(".{", 1)[0]
    return head


@dataclass(frozen=True)
class StreamingContract:
    """Subjects (templates with ``{placeholders}``), streams and the models KV bucket."""

    subjects: MappingProxyType
    streams: MappingProxyType
    models_bucket: str
    champion_key_template: str
    challenger_key_template: str
    models_history: int
    featurizer_state_bucket: str
    featurizer_state_key_template: str
    position_header: str
    source: str

    def subject(self, name: str, **tokens: str) -> str:
        """Fill subject template ``name`` (e.g. ``features``) with its tokens (``tf``, ``symbol``, ...)."""
        try:
            return self.subjects[name].format(**tokens)
        except KeyError as exc:
            raise ContractError(f"{self.source}: subject {name!r} needs token {exc}") from exc

    def prefix(self, name: str) -> str:
        """The fixed part of subject ``name`` before its first placeholder (``features.v1``)."""
        return _prefix(self.subjects[name])

    def pattern(self, name: str) -> str:
        """The NATS wildcard that matches every subject ``name`` can produce (``features.v1.>``)."""
        template = self.subjects[name]
        return template if "{" not in template else f"{self.prefix(name)}.>"

    def stream_subjects(self, stream: str) -> list[str]:
        """The subject filters of JetStream stream ``stream``."""
        return [self.pattern(n) for n in self.streams[stream]]

    def stream_of(self, subject_name: str) -> str:
        """Name of the JetStream stream that captures subject ``subject_name`` (e.g. ``signals`` -> ``SIGNALS``)."""
        for stream, names in self.streams.items():
            if subject_name in names:
                return stream
        raise ContractError(f"{self.source}: no stream captures subject {subject_name!r}")

    def champion_key(self, model_name: str) -> str:
        """The KV key of ``model_name``'s champion pointer."""
        return self.champion_key_template.format(model_name=model_name)

    def challenger_key(self, model_name: str) -> str:
        """The KV key of ``model_name``'s challenger pointer (scored in shadow by the running scorer)."""
        return self.challenger_key_template.format(model_name=model_name)

    def featurizer_state_key(self, engine: str, feature_set: str, tf: str) -> str:
        """The object name of one featurizer's restart checkpoint (``engine`` is rust or python)."""
        return self.featurizer_state_key_template.format(engine=engine, feature_set=feature_set, tf=tf)


def load_streaming(path: str | Path | None = None) -> StreamingContract:
    """Read and check the streaming contract (the packaged one by default); errors name the file."""
    path = Path(path) if path is not None else contracts_dir() / STREAMING_FILE
    try:
        raw = strict_json(path.read_bytes(), str(path))
    except OSError as exc:
        raise ContractError(f"{path}: cannot read the streaming contract: {exc}") from exc
    problems = errors(raw, load_schema("streaming.schema.json"))
    if not problems:
        subjects = raw["subjects"]
        problems = [
            f"streams/{s}: unknown subject {n!r}" for s, ns in raw["streams"].items() for n in ns if n not in subjects
        ]
    if problems:
        raise ContractError(f"{path}: " + "; ".join(problems))
    models = raw["kv"]["models"]
    state = raw["objects"]["featurizer_state"]
    return StreamingContract(
        subjects=MappingProxyType(dict(raw["subjects"])),
        streams=MappingProxyType({k: tuple(v) for k, v in raw["streams"].items()}),
        models_bucket=models["bucket"],
        champion_key_template=models["champion_key"],
        challenger_key_template=models["challenger_key"],
        models_history=int(models["history"]),
        featurizer_state_bucket=state["bucket"],
        featurizer_state_key_template=state["key"],
        position_header=state["position_header"],
        source=str(path),
    )


STREAMING = load_streaming()
