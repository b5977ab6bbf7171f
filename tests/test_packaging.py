"""What Dataflow workers install: an sdist of this repository, and the custom container's pins.

DataflowRunner turns ``--setup_file ./setup.py`` into ``python setup.py sdist`` (``python -m
build`` when installed) and every worker pip-installs that archive. These tests build the same
sdist (from a copy of the checkout's sources), check that it carries every module of
``pipeline/`` and ``transforms/``, install it alone (``--no-deps``) into a fresh directory and
import the job from there, from outside the checkout, so a module that only works because the
repository is on ``sys.path`` fails here and not on a worker. The Dockerfile is not built (no
Docker engine here); its base image and pins are checked against what is installed and against
setup.py.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import apache_beam
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "transforms")


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    # Built from a copy of the checkout's sources: ``setup.py sdist`` creates and deletes
    # ``batch-score-0.1.0/`` and ``*.egg-info`` where it runs, which races with any other build
    # in the checkout (the Dataflow dry runs of test_dataflow.py under pytest -n 2).
    checkout = tmp_path_factory.mktemp("checkout") / "batch-score"
    shutil.copytree(
        REPO,
        checkout,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "data", "out", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    out = tmp_path_factory.mktemp("sdist")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(out)],
        cwd=checkout,
        check=True,
        capture_output=True,
        text=True,
    )
    (archive,) = out.glob("*.tar.gz")
    return archive


def _modules_in_repo() -> set[str]:
    return {
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


@pytest.mark.slow
def test_sdist_carries_every_module(sdist):
    with tarfile.open(sdist) as archive:
        # Members are "batch-score-0.1.0/<path>".
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = _modules_in_repo() - names
    assert not missing, f"modules the workers would not get: {sorted(missing)}"
    assert {"setup.py", "pipeline/run.py", "transforms/score/scoring.py"} <= names


@pytest.mark.slow
def test_sdist_installs_alone_and_the_job_imports_from_it(sdist, tmp_path):
    target = tmp_path / "site"
    # --no-index and --no-build-isolation: offline, with this venv's setuptools (an isolated
    # build would download setuptools from PyPI; Dataflow workers do exactly that).
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        + ["--no-build-isolation", "--no-cache-dir", "--target", str(target), str(sdist)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    # The parent venv provides the dependencies; the installed copy must shadow the editable
    # checkout, and the cwd is outside the repository.
    probe = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from importlib import metadata\n"
        "import pipeline.run, transforms.score.scoring, transforms.core.model_reading\n"
        "scripts = metadata.distribution('batch-score').entry_points.select("
        "group='console_scripts')\n"
        "print(json.dumps({'run': pipeline.run.__file__,"
        " 'scoring': transforms.score.scoring.__file__,"
        " 'model': transforms.core.model_reading.__file__,"
        " 'scripts': {e.name: e.value for e in scripts}}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    for module in ("run", "scoring", "model"):
        assert Path(found[module]).is_relative_to(target), found[module]
    assert found["scripts"] == {
        "batch-score": "pipeline.console_scripts:batch_score",
        "batch-compare": "pipeline.console_scripts:batch_compare",
    }


def _required_pins() -> list[str]:
    """setup.py's REQUIRED list, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "REQUIRED":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no REQUIRED list")


def test_dockerfile_matches_beam_python_and_setup_py():
    dockerfile = (REPO / "Dockerfile").read_text()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"FROM apache/beam_python{python}_sdk:{apache_beam.__version__}\n" in dockerfile
    for pin in _required_pins():
        assert f'"{pin}"' in dockerfile, f"Dockerfile lacks setup.py's pin {pin}"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
