"""`mps train` and `mps promote` end to end on real ticks: BAC (LEAN) through the CLI a user runs.

    .venv/bin/python benchmarks/train_real.py [--days 5] [--test-days 2] [--cal-days 1] [--fast] [--keep DIR]

Every step is the `mps` command itself, on a fresh lake and profile in a temporary directory:
`mps ingest lean` (trade and quote ticks of the chosen BAC days), `mps reconcile` (1 s and 1 m silver
bars), `mps featurize --tf 1s` (tick_v2 features and mid-quote labels into gold), `mps train --model
specs-tick --symbol BAC:US` (fit, calibrate, conformal, ONNX export, MLflow registration) and
`mps promote specs-tick` (the strategy's gates with their evidence; a refusal is a result, printed
with its reasons, and leaves no champion). Prints each step's wall time and the last lines of its
output. Skips with a reason when ../shared/data is absent. Needs no NATS unless the model passes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BAC_DAYS = ("20131007", "20131008", "20131009", "20131010", "20131011")


def _profile(tmp: Path) -> Path:
    path = tmp / "profile.yaml"
    path.write_text(
        "name: real-bac\n"
        f"lake: {{root: '{tmp / 'lake'}'}}\n"
        f"prefect: {{home: '{tmp / 'prefect'}'}}\n"
        f"mlflow: {{tracking_uri: 'sqlite:///{tmp / 'mlflow.db'}', artifact_root: '{tmp / 'mlruns'}'}}\n"
        f"nats: {{url: 'nats://127.0.0.1:1', embedded: true, store_dir: '{tmp / 'nats'}'}}\n"
        f"state_dir: '{tmp}'\n"
    )
    return path


def _step(name: str, args: list[str], tail: int = 12) -> int:
    """Run one `mps` command; print its exit status, wall time and the end of what it printed.

    The command's own report is on stdout (Prefect and MLflow log to stderr, shown only on failure).
    """
    t0 = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "mps"), *args], capture_output=True, text=True, cwd=ROOT)
    print(f"\n## {name}: exit {proc.returncode}, {time.perf_counter() - t0:.0f} s wall\n")
    print("\n".join(proc.stdout.strip().splitlines()[-tail:]))
    if proc.returncode != 0 and not proc.stdout.strip():
        print("\n".join(proc.stderr.strip().splitlines()[-tail:]))
    return proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--days", type=int, default=5, help="BAC days of 2013-10-07..11 (at least 3)")
    ap.add_argument("--test-days", type=int, default=2, help="held-out days (the log-score CI needs 2)")
    ap.add_argument("--cal-days", type=int, default=1)
    ap.add_argument("--fast", action="store_true", help="the small model (smoke runs)")
    ap.add_argument("--keep", type=Path, help="work here and keep the lake, MLflow and report")
    args = ap.parse_args()
    if not (args.data / "lean" / "equity" / "usa" / "tick" / "bac").is_dir():
        print(f"skipped: no BAC ticks under {args.data / 'lean'} (../shared/data is absent)")
        return 0
    days = BAC_DAYS[: args.days]
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="mps-train-real-"))
    tmp.mkdir(parents=True, exist_ok=True)
    profile = str(_profile(tmp))
    first = datetime.strptime(days[0], "%Y%m%d")
    end = (datetime.strptime(days[-1], "%Y%m%d") + timedelta(days=1)).strftime("%Y-%m-%dT00:00")
    start = first.strftime("%Y-%m-%dT00:00")
    files = ", ".join(f"equity/usa/tick/bac/{d}_{kind}.zip" for d in days for kind in ("trade", "quote"))
    print(f"# BAC {days[0]}..{days[-1]} through the mps CLI (work dir {tmp})")
    steps = [
        ("mps ingest lean", ["ingest", "lean", "-P", f"root={args.data / 'lean'}", "-P", f"files=[{files}]",
                             "--profile", profile]),
        ("mps reconcile", ["reconcile", "--start", start, "--end", end, "--tf", "1s", "--tf", "1m",
                           "--symbol", "BAC:US", "--profile", profile]),
        ("mps featurize --tf 1s", ["featurize", "--tf", "1s", "--start", start, "--end", end, "--symbol", "BAC:US",
                                   "--profile", profile]),
        ("mps train", ["train", "--model", "specs-tick", "--symbol", "BAC:US", "--test-days", str(args.test_days),
                       "--cal-days", str(args.cal_days), *(["--fast"] if args.fast else []), "--profile", profile]),
        ("mps promote", ["promote", "specs-tick", "--profile", profile]),
    ]  # fmt: skip
    for name, cli in steps:
        rc = _step(name, cli, tail=60 if name == "mps promote" else 12)
        if rc != 0 and name != "mps promote":  # a refused promotion exits non-zero and is still a result
            print(f"\nstopped: {name} failed")
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
