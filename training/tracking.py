"""MLflow tracking and model registry for MPS models (DESIGN sections 7, 9, 10).

One ``Tracker`` per profile (``mlflow.tracking_uri`` and ``artifact_root``): SQLite and a local
artifact directory on a laptop, an MLflow server with S3 artifacts in production. Everything goes
through an explicit ``MlflowClient`` (no global ``mlflow.set_tracking_uri``), so two trackers can
live in one process (tests do that).

A training run logs params, metrics (per horizon and fold), plots, the data versions it read (the
Delta table versions, as ``data.<table>`` params) and the exported model directory (ONNX + golden
vectors + model card) as artifacts under ``model/``; ``register`` turns that directory into a new
version of the registered model, tagged with the ONNX sha256. Aliases (never stages): ``champion``
is the serving model, ``challenger`` the latest registered candidate. The registered model's tag
``champion_history`` (JSON list of versions) lets ``rollback`` restore the previous champion.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import MpsError

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
MODEL_DIR = "model"


class TrackingError(MpsError):
    """The tracking server or registry refused an operation, or a model/version does not exist."""


@dataclass(frozen=True)
class Tracker:
    """Where runs and models are recorded: an MLflow tracking URI (also the registry) and artifact root."""

    tracking_uri: str
    artifact_root: str

    @classmethod
    def from_profile(cls, profile) -> Tracker:
        """The tracker of a ``core.profile.Profile`` (its ``mlflow`` section)."""
        return cls(profile.mlflow.tracking_uri, profile.mlflow.artifact_root)

    def client(self) -> MlflowClient:
        """An MLflow client bound to this tracker's URIs."""
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it with artifacts under the artifact root."""
        client = self.client()
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        root = self.artifact_root.rstrip("/")
        location = f"{root}/{name}" if "://" in root else Path(root, name).resolve().as_uri()
        return client.create_experiment(name, artifact_location=location)

    def log_run(
        self,
        experiment: str,
        run_name: str,
        *,
        params: dict[str, Any],
        metrics: dict[str, float],
        data_versions: dict[str, int] | None = None,
        artifacts: dict[str, Path] | None = None,
        tags: dict[str, str] | None = None,
        timestamp_ms: int = 0,
    ) -> str:
        """Record one finished run; return its id.

        ``data_versions`` maps a table name (``gold.features``) to the Delta version read;
        ``artifacts`` maps an artifact folder (``plots``, ``model``) to a local file or directory.
        ``timestamp_ms`` stamps the metrics (the caller's clock; domain code never reads the time).
        """
        from mlflow.entities import Metric, Param, RunTag

        client = self.client()
        run = client.create_run(self.experiment_id(experiment), run_name=run_name, tags=tags or {})
        run_id = run.info.run_id
        plist = [Param(k, _param(v)) for k, v in params.items()]
        plist += [Param(f"data.{k}", str(int(v))) for k, v in (data_versions or {}).items()]
        mlist = [Metric(k, float(v), int(timestamp_ms), 0) for k, v in metrics.items()]
        tlist = [RunTag(f"data.{k}", str(int(v))) for k, v in (data_versions or {}).items()]
        for i in range(0, max(len(plist), len(mlist), 1), 100):  # MLflow's batch limits
            client.log_batch(run_id, metrics=mlist[i : i + 100], params=plist[i : i + 100], tags=tlist[i : i + 100])
        for folder, path in (artifacts or {}).items():
            path = Path(path)
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=folder)
            else:
                client.log_artifact(run_id, str(path), artifact_path=folder)
        client.set_terminated(run_id, "FINISHED")
        return run_id

    def register(self, run_id: str, model_name: str, *, tags: dict[str, str] | None = None) -> str:
        """Register the run's ``model/`` artifacts as a new version of ``model_name``; alias it ``challenger``."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            client.create_registered_model(model_name, tags={HISTORY_TAG: "[]"})
        source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_DIR}"
        mv = client.create_model_version(model_name, source=source, run_id=run_id, tags=tags or {})
        client.set_registered_model_alias(model_name, CHALLENGER, mv.version)
        return str(mv.version)

    def next_version(self, model_name: str) -> str:
        """The version number ``register`` will give next (models are exported with it in their metadata)."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client().search_model_versions(f"name = '{model_name}'")
        except MlflowException:
            return "1"
        return str(max((int(v.version) for v in versions), default=0) + 1)

    def alias(self, model_name: str, alias: str) -> str | None:
        """The version an alias points to, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client().get_model_version_by_alias(model_name, alias).version)
        except MlflowException:
            return None

    def version_tags(self, model_name: str, version: str) -> dict[str, str]:
        """Tags of one model version (its sha256, metrics summary, promotion outcome)."""
        return dict(self._version(model_name, version).tags)

    def tag_version(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        """Set tags on one model version."""
        client = self.client()
        for k, v in tags.items():
            client.set_model_version_tag(model_name, version, k, v)

    def history(self, model_name: str) -> list[str]:
        """Versions that have been champion, oldest first (the current champion last)."""
        tags = self.client().get_registered_model(model_name).tags
        return list(json.loads(tags.get(HISTORY_TAG, "[]")))

    def set_champion(self, model_name: str, version: str, *, history: list[str] | None = None) -> None:
        """Point ``champion`` at ``version`` and record the history (appending ``version`` by default)."""
        client = self.client()
        hist = history if history is not None else [*self.history(model_name), version]
        client.set_registered_model_alias(model_name, CHAMPION, version)
        client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(hist))

    def materialise(self, model_name: str, version: str, models_dir: Path) -> Path:
        """Copy a version's model artifacts to ``models_dir/<name>/v<version>/`` and return the ONNX path.

        The scorer reads ONNX files from the local filesystem (file:// pointers), wherever the
        registry stores its artifacts (a directory, S3).
        """
        from mlflow.artifacts import download_artifacts

        mv = self._version(model_name, version)
        dst = Path(models_dir) / model_name / f"v{version}"
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        local = Path(download_artifacts(artifact_uri=mv.source, dst_path=str(dst), tracking_uri=self.tracking_uri))
        if local != dst:  # downloads land in dst/<last path part>
            for item in local.iterdir():
                shutil.move(str(item), dst / item.name)
            local.rmdir()
        onnx_files = sorted(dst.glob("*.onnx"))
        if len(onnx_files) != 1:
            raise TrackingError(
                f"{model_name} v{version}: expected one .onnx file in {mv.source}, got {len(onnx_files)}"
            )
        return onnx_files[0]

    def evidence(self, model_name: str, version: str, dst: Path) -> Path:
        """Download the version's run ``evidence`` artifact (the held-out windows it was judged on)."""
        from mlflow.artifacts import download_artifacts

        run_id = self._version(model_name, version).run_id
        Path(dst).mkdir(parents=True, exist_ok=True)
        local = Path(
            download_artifacts(
                run_id=run_id, artifact_path="evidence", dst_path=str(dst), tracking_uri=self.tracking_uri
            )
        )
        files = sorted(local.glob("*.npz")) if local.is_dir() else [local]
        if len(files) != 1:
            raise TrackingError(f"{model_name} v{version}: run {run_id} has no single evidence .npz")
        return files[0]

    def _version(self, model_name: str, version: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version(model_name, str(version))
        except MlflowException as exc:
            raise TrackingError(f"model {model_name!r} has no version {version!r} in {self.tracking_uri}") from exc


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]  # MLflow's param value limit
