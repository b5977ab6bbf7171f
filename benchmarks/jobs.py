"""One scoring job as a watched subprocess: ``python -m pipeline.run`` with a benchmark's model,
``--batch_size 32`` and no reconciliation; returns its ``run.json`` and what procwatch saw."""

from __future__ import annotations

import json
import os
import shutil
import sys

from benchmarks import procwatch
from benchmarks.run import ROOT, _env


def score(work: str, name: str, model: str, *flags: str) -> tuple[dict, procwatch.Outcome]:
    """Runs the job into ``work/out/NAME`` (logs in ``work/logs``).

    Raises:
      SystemExit: the job failed, or its run.json is not accounted.
    """
    # Brackets would be glob syntax to Beam's FileSystems.
    safe = name.replace("[", "_").replace("]", "").replace("#", "_")
    out = os.path.join(work, "out", safe)
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "pipeline.run", "--model", model, "--output", out,
               "--reconcile_fraction", "0", "--batch_size", "32", *flags]  # fmt: skip
    log = os.path.join(work, "logs", f"{safe}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    outcome = procwatch.run(command, env=_env(), log_path=log, cwd=ROOT)
    if outcome.returncode != 0:
        raise SystemExit(f"{name} failed; see {log}:\n{outcome.tail}")
    with open(os.path.join(out, "run.json")) as f:
        record = json.load(f)
    if not record["accounted"]:
        raise SystemExit(f"{name}: not accounted; see {out}")
    return record, outcome
