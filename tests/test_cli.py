"""The command lines as a user meets them: --help, misspelled flags, a quiet start, the default
model from anywhere. Subprocess cases run the real ``python -m`` commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli, compare, console_scripts, flags, job_flags, shard, tool_flags
from pipeline.options import ScoringOptions, parse_args
from pipeline.run import main

REPO = Path(__file__).resolve().parents[1]
# Lines TensorFlow, absl, CUDA probing, oneDNN and Beam's worker option parsing print at start.
NOISE = re.compile(
    r"absl::InitializeLog|cuda|cuInit|oneDNN|cpu_feature_guard|TensorFlow binary|"
    r"Discarding unparseable|^[IWE]0000 ",
    re.IGNORECASE | re.MULTILINE,
)


def _python(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True
    )


def _flat(text: str) -> str:
    return " ".join(text.split())


COMMANDS = [
    job_flags.RUN,
    tool_flags.EXPORT,
    tool_flags.PREDICT_ONE,
    tool_flags.DEMO,
    job_flags.COMPARE,
    tool_flags.SHARD,
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.prog.split(".")[-1])
def test_help_lists_every_flag_with_its_default_without_tensorflow_or_beam(command):
    module = command.prog.split()[-1]
    # Help answered by the real entry point, and neither heavy library imported for it.
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{module!r}, '--help']\n"
        f"try:\n    runpy.run_module({module!r}, run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('STATUS', code, 'tensorflow' in sys.modules, 'apache_beam' in sys.modules)\n"
    )
    result = _python("-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("STATUS 0 False False")
    text = _flat(result.stdout)
    for flag in cli.flag_names(command):
        assert f" {flag} " in text, flag
    assert text.count("(default: ") == len(cli.flag_names(command))


def test_job_help_states_contract_defaults_beam_flags_and_exit_codes():
    result = _python("-m", "pipeline.run", "--help")
    assert result.returncode == 0
    text = _flat(result.stdout)
    for group in ("inputs:", "model and preprocessing:", "batching:", "reconciliation:"):
        assert group in text
    expected = {
        "--batch_size": "32",
        "--reconcile_fraction": "0.01",
        "--reconcile_min": "300",
        "--top_k": "5",
        "--atol": "1e-05",
        "--rtol": "0.0001",
        "--output_format": "jsonl",
        "--input_format": "files",
        "--image_feature": "image/encoded",
        "--key_feature": "image/filename, else image/id, else URI#record-index",
        "--image_column": "image",
        "--max_image_pixels": "50,000,000",
        "--log_level": "warning",
    }
    for flag, default in expected.items():
        assert re.search(rf" {flag} .*?\(default: {re.escape(default)}\)", text), flag
    for beam_flag in ("--runner", "--project", "--region", "--temp_location", "--setup_file"):
        assert beam_flag in text
    for status in ("0 success", "2 bad arguments", "3 reconciliation verdict", "130 interrupted"):
        assert status in text
    # Every flag the job accepts is in the help, and nothing else.
    accepted = {a.option_strings[0] for a in cli.parser_for(job_flags.RUN)._actions}
    assert accepted - {"-h"} == set(cli.flag_names(job_flags.RUN))
    assert set(ScoringOptions(["--batch_size", "8"]).get_all_options(current_only=True)) == {
        name.lstrip("-") for name in cli.flag_names(job_flags.RUN)
    }


def test_compare_help_states_defaults_beam_flags_and_exit_codes():
    result = _python("-m", "pipeline.compare", "--help")
    assert result.returncode == 0
    text = _flat(result.stdout)
    for group in ("runs:", "comparison:", "outputs:"):
        assert group in text
    expected = {
        "--baseline": "required",
        "--candidate": "required",
        "--output": "required",
        "--atol": "1e-05",
        "--rtol": "0.0001",
        "--sample_fraction": "1.0, every key",
        "--num_shards": "0",
        "--top_k_only": "off",
        "--log_level": "warning",
    }
    for flag, default in expected.items():
        assert re.search(rf" {flag} .*?\(default: {re.escape(default)}\)", text), flag
    for beam_flag in ("--runner", "--direct_num_workers", "--project", "--setup_file"):
        assert beam_flag in text
    for status in ("0 the comparison was written", "2 bad arguments", "3 verdict fail"):
        assert status in text
    assert "130 interrupted" in text


def test_shard_help_states_defaults_and_choices():
    result = _python("-m", "pipeline.shard", "--help")
    assert result.returncode == 0
    text = _flat(result.stdout)
    for flag, default in {
        "--input": "required",
        "--format": "required",
        "--records_per_shard": "1000",
        "--compression": "none",
        "--keys": "uri",
    }.items():
        assert re.search(rf" {flag} .*?\(default: {re.escape(default)}\)", text), flag
    assert "--format {tfrecord,parquet}" in text and "exit status: 0 success; 2 bad" in text


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        (["--batch-size", "8"], "--batch_size"),
        (["--reconcile-fraction", "1"], "--reconcile_fraction"),
        (["--batchsize=8"], "--batch_size"),
        (["--temp-location", "gs://b/tmp"], "--temp_location"),  # one of Beam's
    ],
)
def test_misspelled_flag_exits_2_naming_the_right_one_and_writes_nothing(
    tmp_path, images_dir, model_path, capsys, typo, meant
):
    output = tmp_path / "out"
    argv = ["--input", f"{images_dir}/*.png", "--model", model_path(), "--output", str(output)]
    assert main(argv + typo) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0] == f"batch-score: error: unknown flag {typo[0]}; did you mean {meant}?"
    assert not output.exists()


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        (["--candidat", "RUN"], "--candidate"),
        (["--sample-fraction", "0.5"], "--sample_fraction"),
        (["--atoll=1"], "--atol"),
        (["--temp-location", "gs://b/tmp"], "--temp_location"),  # one of Beam's
        (["--batch_size", "8"], None),  # the scoring job's, not the comparison's
    ],
)
def test_compare_refuses_a_misspelled_flag_naming_the_right_one(tmp_path, capsys, typo, meant):
    output = tmp_path / "cmp"
    argv = ["--baseline", str(tmp_path), "--output", str(output)]
    argv += [] if typo[0] == "--candidat" else ["--candidate", str(tmp_path)]
    assert compare.main(argv + typo) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    hint = f"did you mean {meant}?" if meant else "see --help"
    assert line == f"batch-compare: error: unknown flag {typo[0]}; {hint}"
    assert not output.exists()


def test_compare_parses_once_with_beams_flags_passing_through(tmp_path):
    argv = ["--baseline", "a/", "--candidate", "b", "--output", str(tmp_path / "c")]
    argv += ["--atol", "1e-3", "--runner", "DirectRunner", "--direct_num_workers", "2"]
    options, config = compare.parse_args(argv)
    assert options.get_all_options()["direct_num_workers"] == 2
    assert (config.baseline, config.candidate, config.atol) == ("a", "b", 1e-3)
    assert "--atol" not in (options._flags or [])
    with pytest.raises(flags.UsageError, match=r"^missing --candidate, --output \(required"):
        compare.parse_args(["--baseline", "a"])


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        (["--fromat", "tfrecord"], "--format"),
        (["--format", "tfrecord", "--records-per-shard", "3"], "--records_per_shard"),
        (["--format", "parquet", "--key", "relative"], "--keys"),
    ],
)
def test_shard_refuses_a_misspelled_flag_naming_the_right_one(
    tmp_path, images_dir, capsys, typo, meant
):
    output = tmp_path / "shards"
    assert shard.main(["--input", f"{images_dir}/*.png", "--output", str(output), *typo]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"shard: error: unknown flag {typo[-2]}; did you mean {meant}?"
    assert not output.exists()


def test_beam_flags_pass_through_and_ours_stay_out_of_beams_options():
    argv = ["--input", "x/*.png", "--output", "out", "--batch_size", "8"]
    argv += ["--runner", "DirectRunner", "--direct_num_workers", "2", "--dry_run=True"]
    options, config = parse_args(argv)
    assert options.get_all_options()["direct_num_workers"] == 2
    assert options.get_all_options()["runner"] == "DirectRunner"
    assert config.batch_size == 8
    # Workers parse the options they are sent; a flag of ours there would be "unparseable".
    assert "--batch_size" not in (options._flags or [])


def test_bad_value_is_one_line():
    with pytest.raises(flags.UsageError, match=r"^argument --batch_size: invalid int value: 'x'$"):
        parse_args(["--input", "a", "--output", "b", "--batch_size", "x"])


@pytest.mark.slow
def test_normal_run_is_quiet_and_the_default_model_works_from_another_directory(tmp_path):
    import helpers

    helpers.write_images(tmp_path / "images", 6)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _python(
        "-m", "pipeline.run", "--input", "../images/*.png", "--output", "out", cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr
    assert NOISE.search(result.stderr) is None, result.stderr
    # Nothing but the plain progress line a run longer than 10 s prints (stderr is a pipe).
    progress = r"scored [\d,]+/[\d,?]+ images(, [\d.,]+ images/s, ETA [\d:]+)?, \d+ errors"
    assert all(re.fullmatch(progress, line) for line in result.stderr.splitlines()), result.stderr
    assert result.stdout.startswith("scored 6 images, 0 errors, 0 with non-finite scores")
    assert "(matched 6, accounted: true)" in result.stdout.splitlines()[0]
    assert (elsewhere / "out" / "run.json").exists()


@pytest.mark.slow
def test_tensorflow_start_up_noise_is_kept_for_log_level_debug():
    probe = (
        "import sys\n"
        "from pipeline import quiet\n"
        "quiet.import_tensorflow_quietly()\n"
        "print('IMPORTED', file=sys.stderr, flush=True)\n"
        "quiet.configure_logging(sys.argv[1])\n"
    )
    at_warning = _python("-c", probe, "warning")
    assert at_warning.returncode == 0 and at_warning.stderr == "IMPORTED\n"
    debug = _python("-c", probe, "debug")
    assert debug.returncode == 0
    before, after = debug.stderr.split("IMPORTED\n")
    assert before == "" and NOISE.search(after), debug.stderr


def test_missing_default_model_says_it_is_the_default_and_how_to_build_it(
    tmp_path, images_dir, capsys, monkeypatch
):
    monkeypatch.setattr(flags, "default_data_dir", lambda: str(tmp_path / "no_demo"))
    output = tmp_path / "out"
    assert main(["--input", f"{images_dir}/*.png", "--output", str(output)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no --model given, and the default model (the demo bundle, " in line
    assert "python -m pipeline.demo" in line
    assert not output.exists()


def test_default_data_dir_is_the_checkouts_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert flags.default_model() == str(REPO / "data" / "demo_bundle")


def _flag_rows(readme: str, section: str) -> dict[str, str]:
    """The flag table rows (first cell -> second, the default) from ``section`` of a docs page
    to the next section."""
    text = readme[readme.index(section) :].split("\n## ", 1)[0]
    return {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in text.splitlines()
        if line.startswith("| `--")
    }


@pytest.mark.parametrize(
    ("command", "page", "section"),
    [
        (job_flags.RUN, "usage.md", "# Usage and flags"),
        (job_flags.COMPARE, "comparing.md", "# Comparing runs"),
        (tool_flags.SHARD, "shards.md", "**Making shards.**"),
    ],
    ids=["run", "compare", "shard"],
)
def test_docs_state_every_flag_and_its_default(command, page, section):
    rows = _flag_rows((REPO / "docs" / page).read_text(), section)
    for flag in (flag for _, group in command.flags for flag in group):
        row = next((k for k in rows if re.search(rf"`{flag.name}[ `]", k)), None)
        assert row is not None, f"{page}: {section} table lacks {flag.name}"
        assert rows[row], f"{page} states no default for {flag.name}"
        if command is not job_flags.RUN:  # these tables state the defaults as --help does
            assert rows[row].replace("`", "") == flag.default_text, flag.name


def test_contract_documents_every_dead_letter_reason():
    from transforms.core import records

    contract = (REPO / "docs" / "contract.md").read_text()
    documented = set(
        re.findall(r"^\| `([a-z_]+)` \| (?:read|decode|preprocess|score) \|", contract, re.M)
    )
    codes = {
        value
        for name, value in vars(records).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+", value)
    }
    assert codes and documented == codes


def test_nothing_in_the_repository_points_outside_it():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        if name.endswith((".md", ".py", ".sh", ".toml")) or name == "Dockerfile":
            # Spelt in two parts, so this file does not match itself.
            assert "DESIGN" + ".md" not in (REPO / name).read_text(), name


def test_console_script_and_main_answer_help(capsys):
    with pytest.raises(SystemExit) as exited:
        console_scripts.batch_score(["--batch_size", "8", "--help"])
    assert exited.value.code == 0
    assert "--reconcile_min RECONCILE_MIN" in capsys.readouterr().out
    assert main(["-h"]) == 0
    assert "exit status:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        console_scripts.batch_compare(["--baseline", "x", "--help"])
    assert exited.value.code == 0
    assert "--sample_fraction SAMPLE_FRACTION" in capsys.readouterr().out


def test_compare_console_script_answers_help_without_beam():
    probe = (
        "import sys\n"
        "from pipeline import console_scripts\n"
        "try:\n    console_scripts.batch_compare(['--help'])\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('STATUS', code, 'tensorflow' in sys.modules, 'apache_beam' in sys.modules)\n"
    )
    result = _python("-c", probe)
    assert result.stdout.strip().endswith("STATUS 0 False False"), result.stderr
    assert "python -m pipeline.compare --baseline RUN" in result.stdout
