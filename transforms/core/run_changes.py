"""What changed between two runs and the likely cause of their differences: the ``changes``
and ``cause`` of a run comparison's summary, from the two ``run.json`` records.

Pure Python (no Beam): a change is a differing fact of the runs (model digest, preprocessing
spec, package versions, hardware, runner, batch shape, determinism), by kind; the kinds present
name the cause.
"""

from __future__ import annotations

from typing import Any

# Causes (``summary["cause"]``).
MODEL_CHANGE = "model_change"
PREPROCESSING_CHANGE = "preprocessing_change"
NUMERIC = "numeric"
NONDETERMINISM = "nondeterminism"
NO_CHANGE = "none"
NO_COMMON_KEYS = "no_common_keys"  # nothing compared: no cause of differences to name
UNKNOWN = "unknown"
# Nothing differs but scores that are NaN or Inf in both runs alike.
NON_FINITE_SCORES = "non_finite_scores"

# run.json fields worth comparing, by the kind of change they are.
_OPTIONS_BATCH = ("batch_size", "pad_batches")


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat = {}
        for name, item in value.items():
            flat |= _flatten(item, f"{prefix}.{name}")
        return flat
    return {prefix: value}


def _facts(run: dict) -> dict[str, tuple[str, Any]]:
    """The comparable facts of a run.json: dotted name -> (kind, value)."""
    options = run.get("options") or {}
    environment = dict(run.get("environment") or {})
    # Older run.json files kept threads and runner at the top level.
    environment.setdefault("threads", run.get("threads"))
    environment.setdefault("runner", run.get("runner"))
    facts: dict[str, tuple[str, Any]] = {"model_digest": ("model", run.get("model_digest"))}
    for name, value in _flatten(run.get("preprocessing") or {}, "preprocessing").items():
        facts[name] = ("preprocessing", value)
    for name, value in (run.get("package_versions") or {}).items():
        facts[f"package_versions.{name}"] = ("engine", value)
    for name, value in environment.items():
        if name == "cpu_flags":
            facts["environment.cpu_flags"] = ("hardware", sorted(value or []))
            continue
        kind = "runner" if name == "runner" else "hardware"
        for flat, item in _flatten(value, f"environment.{name}").items():
            facts[flat] = (kind, item)
    for name in _OPTIONS_BATCH:
        facts[f"options.{name}"] = ("batch_shape", options.get(name))
    facts["options.deterministic"] = ("determinism", options.get("deterministic"))
    return facts


def run_changes(baseline: dict | None, candidate: dict | None) -> list[dict[str, Any]]:
    """What differs between two run.json records: [{what, kind, baseline, candidate}].

    CPU flags are reported as the flags only one side has, not two lists of a hundred.
    """
    if baseline is None or candidate is None:
        return []
    a, b = _facts(baseline), _facts(candidate)
    changes = []
    for name in sorted(a.keys() | b.keys()):
        kind = (a.get(name) or b.get(name))[0]
        old, new = (a.get(name) or (kind, None))[1], (b.get(name) or (kind, None))[1]
        if old == new:
            continue
        if name == "environment.cpu_flags" and old is not None and new is not None:
            old, new = sorted(set(old) - set(new)), sorted(set(new) - set(old))
        changes.append({"what": name, "kind": kind, "baseline": old, "candidate": new})
    return changes


def likely_cause(changes: list[dict], differ: int, runs_known: bool = True) -> str:
    """The likely cause of the differences, from what changed between the runs.

    model digest differs -> model_change; else preprocessing differs -> preprocessing_change;
    else engine, hardware, runner, batch shape or determinism differs -> numeric; else (the same
    setup) scores that differ -> nondeterminism, and none that differ -> none. Without both
    run.json records nothing can be said: unknown.
    """
    kinds = {change["kind"] for change in changes}
    if "model" in kinds:
        return MODEL_CHANGE
    if "preprocessing" in kinds:
        return PREPROCESSING_CHANGE
    if kinds:
        return NUMERIC
    if not runs_known:
        return UNKNOWN
    return NONDETERMINISM if differ else NO_CHANGE
