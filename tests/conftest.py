"""Shared fixtures: generated images and tiny models, built once per test session."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import helpers  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_path(models_dir):
    """Path of a tiny model with the given planted fault (cached per session)."""
    cache = {}

    def get(fault: str = "clean") -> str:
        if fault not in cache:
            cache[fault] = helpers.save_model(str(models_dir), fault)
        return cache[fault]

    return get


@pytest.fixture()
def images_dir(tmp_path):
    directory = tmp_path / "images"
    helpers.write_images(directory, 20)
    return directory


def score_images(tmp_path, model: str, *flags: str, images: int = 20) -> str:
    """Runs the real job over ``images`` generated PNGs (made once per tmp_path); returns the
    output directory. Later flags override earlier ones (argparse keeps the last)."""
    from pipeline.run import run

    images_dir = tmp_path / "images"
    if not images_dir.exists():
        helpers.write_images(images_dir, images)
    output = str(tmp_path / "out")
    argv = ["--input", f"{images_dir}/*.png", "--model", model, "--output", output, "--overwrite"]
    run([*argv, *flags], save_main_session=False)
    return output


def read_jsonl(directory) -> list[dict]:
    records = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("part-"):
            with open(os.path.join(directory, name)) as f:
                records.extend(json.loads(line) for line in f if line.strip())
    return records


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def verdict_model(models_dir):
    """Path of a tiny model from ``helpers.save_verdict_model`` (cached per session)."""
    cache = {}

    def get(kind: str) -> str:
        if kind not in cache:
            cache[kind] = helpers.save_verdict_model(str(models_dir), kind)
        return cache[kind]

    return get


@pytest.fixture(scope="session")
def signature_model(models_dir):
    """Path of a tiny SavedModel from ``helpers.save_signature_model`` (cached per session)."""
    cache = {}

    def get(kind: str) -> str:
        if kind not in cache:
            cache[kind] = helpers.save_signature_model(str(models_dir), kind)
        return cache[kind]

    return get
