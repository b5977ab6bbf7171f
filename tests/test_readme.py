"""README's quick start shows what ./run_local.sh prints today."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run_local_commands() -> list[list[str]]:
    """The python commands of run_local.sh, continuation lines joined, "$@" dropped."""
    script = (REPO / "run_local.sh").read_text().replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["exec"]:
            words = words[1:]
        if words[:1] == ["python"]:
            commands.append([sys.executable, *(w for w in words[1:] if w != "$@")])
    return commands


def _shape(line: str) -> str:
    """A console line with its numbers (counts, rates, seconds) blanked; a diagnosis line (two
    spaces, a cause) as its place alone: which cause the demo meets depends on the CPU's
    kernels (``none`` where batch and single are bitwise equal, else ``numeric_batch_shape``)."""
    if re.match(r"  [a-z_]+: ", line):
        return "  <diagnosis>"
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", line.rstrip())


def _readme_run_local_output() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("`./run_local.sh` scores") :]
    return section.split("```\n", 2)[1].splitlines()


@pytest.mark.slow
def test_readme_shows_what_run_local_prints(tmp_path):
    demo, job = _run_local_commands()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    # The demo is built in the checkout (as run_local.sh does); the job runs from a scratch
    # directory that sees it as data/, so its output lands in scratch out/demo/.
    built = subprocess.run(demo, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    (tmp_path / "data").symlink_to(REPO / "data")
    scored = subprocess.run(job, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    # stdout: stderr holds the progress lines (every 10 s where it is not a terminal).
    printed = (built.stdout + scored.stdout).splitlines()
    assert [_shape(line) for line in printed] == [
        _shape(line) for line in _readme_run_local_output()
    ]


def test_readme_is_a_quick_start_that_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    linked = set(re.findall(r"\]\(docs/([a-z_]+\.md)\)", readme))
    assert linked == {p.name for p in (REPO / "docs").glob("*.md")}
