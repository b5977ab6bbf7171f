"""Refusals before work: every bad argument or unusable resource stops the job at start-up.

Each case runs the real command line in-process (``pipeline.run.main``) and checks the contract:
exit status 2, exactly one line on stderr that names the problem (and the flag to fix), and
nothing written: the output directory is not created, an existing one is left as it was.
"""

from __future__ import annotations

import os
import stat

import pytest

from pipeline.run import main


def _tree(root) -> dict[str, bytes | None]:
    """Every path under root with its contents (None for directories), for before/after."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory, model_path):
    """Inputs, models and output locations the cases point at (built once per module)."""
    import helpers
    import keras

    root = tmp_path_factory.mktemp("refusals")
    helpers.write_images(root / "images", 3)
    (root / "no_images").mkdir()
    (root / "garbage.keras").write_bytes(b"this is not a zip archive\n" * 10)

    inputs = keras.Input((10,))
    keras.Model(inputs, keras.layers.Dense(3)(inputs)).save(str(root / "dense.keras"))

    # A Lambda whose function leaves a mark when it runs. An unsafe load runs it (rebuilding the
    # functional graph calls it), so the mark tells whether loading executed code from the file.
    marker = str(root / "lambda_ran")
    inputs = keras.Input((*helpers.IMAGE_SIZE, 3))
    x = keras.layers.Lambda(
        lambda t, path: (open(path, "w").close(), t * 2.0)[1], arguments={"path": marker}
    )(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(helpers.NUM_CLASSES)(x)).save(str(root / "lambda.keras"))
    os.remove(marker)  # building the model ran the function once, here, on purpose

    (root / "a_file").write_text("not a directory\n")
    (root / "empty_manifest.txt").write_text("# nothing here yet\n\n   \n")
    # A bundle whose labels.txt was edited to fewer labels than the model has classes.
    from pipeline.export import export_bundle
    from transforms.core.preprocess import PreprocessSpec

    net = helpers.build_model()
    export_bundle(net, str(root / "short_labels_bundle"), PreprocessSpec(helpers.IMAGE_SIZE))
    (root / "short_labels_bundle" / "assets" / "labels.txt").write_text("cat\ndog\n")
    (root / "previous_run" / "predictions").mkdir(parents=True)
    (root / "previous_run" / "predictions" / "part-00000-of-00001.jsonl").write_text('{"k": 1}\n')
    (root / "previous_run" / "run.json").write_text("{}\n")
    return {"root": root, "model": model_path(), "marker": marker}


def _good(world, output: str) -> list[str]:
    """A valid command line, for cases that break one thing."""
    return [
        "--input",
        f"{world['root']}/images/*.png",
        "--model",
        world["model"],
        "--output",
        output,
    ]


def _with(flag: str, value: str):
    """Case builder: the good command line with ``flag`` replaced (or added)."""

    def build(world, output):
        argv = _good(world, output)
        if flag in argv:
            argv[argv.index(flag) + 1] = value.format(root=world["root"])
            return argv
        return argv + [flag, *value.format(root=world["root"]).split()]

    return build


# (case id, command line builder, words the message must contain)
CASES = [
    ("missing_model", _with("--model", "{root}/absent.keras"), ["--model", "not found"]),
    (
        "unloadable_model",
        _with("--model", "{root}/garbage.keras"),
        ["--model", "cannot load model", "garbage.keras"],
    ),
    (
        "model_input_not_an_image",
        _with("--model", "{root}/dense.keras"),
        ["--model", "[None, 10]", "image tensor"],
    ),
    (
        "lambda_model_refused_in_safe_mode",
        _with("--model", "{root}/lambda.keras"),
        ["--model", "lambda.keras", "Lambda"],
    ),
    (
        "image_size_does_not_match_model",
        _with("--image_size", "32 32"),
        ["--image_size 32 32", "does not match", "16x16"],
    ),
    (
        "input_matches_nothing",
        _with("--input", "{root}/no_images/*.png"),
        ["--input", "matched no files", "check the path"],
    ),
    (
        "input_manifest_missing",
        lambda world, output: [
            "--input_manifest",
            f"{world['root']}/absent_manifest.txt",
            "--model",
            world["model"],
            "--output",
            output,
        ],
        ["--input_manifest", "does not exist", "check the path"],
    ),
    (
        "output_under_a_file",
        lambda world, output: _good(world, f"{world['root']}/a_file/out"),
        ["--output", "a_file is a file, not a directory"],
    ),
    (
        "output_is_a_file",
        lambda world, output: _good(world, f"{world['root']}/a_file"),
        ["--output", "is a file"],
    ),
    (
        "output_not_empty_without_overwrite",
        lambda world, output: _good(world, f"{world['root']}/previous_run"),
        ["--output", "not empty", "--overwrite"],
    ),
    ("batch_size_zero", _with("--batch_size", "0"), ["--batch_size 0", "at least 1"]),
    ("atol_nan", _with("--atol", "nan"), ["--atol nan", "finite"]),
    ("rtol_inf", _with("--rtol", "inf"), ["--rtol inf", "finite"]),
    (
        "image_size_over_the_pixel_guard",
        _with("--image_size", "100000 100000"),
        ["--image_size 100000 100000", "--max_image_pixels"],
    ),
    ("max_file_bytes_zero", _with("--max_file_bytes", "0"), ["--max_file_bytes", "positive"]),
    (
        "empty_manifest",
        lambda world, output: [
            "--input_manifest",
            f"{world['root']}/empty_manifest.txt",
            "--model",
            world["model"],
            "--output",
            output,
        ],
        ["--input_manifest", "lists no image URIs"],
    ),
    (
        "bundle_labels_do_not_match_classes",
        _with("--model", "{root}/short_labels_bundle"),
        ["--model", "2 labels for 4 classes"],
    ),
    ("output_is_the_root", _with("--output", "/"), ["--output '/'", "root"]),
    ("output_is_a_pattern", _with("--output", "{root}/out_*"), ["--output", "glob character"]),
    (
        "reconcile_fraction_above_one",
        _with("--reconcile_fraction", "1.5"),
        ["--reconcile_fraction 1.5", "[0, 1]"],
    ),
    (
        "unknown_normalization",
        _with("--normalization", "bogus"),
        ["--normalization 'bogus'", "symmetric"],
    ),
    ("top_k_zero", _with("--top_k", "0"), ["--top_k 0", "at least 1"]),
    ("unknown_output_format", _with("--output_format", "csv"), ["--output_format", "jsonl"]),
    (
        "sweep_sizes_not_integers",
        _with("--sweep_batch_sizes", "a,b"),
        ["--sweep_batch_sizes", "integers"],
    ),
    (
        "no_output",
        lambda world, output: _good(world, output)[:-2],
        ["no output", "--output"],
    ),
    (
        "bundle_with_image_size",
        lambda world, output: (
            _good(world, output)[:2] + ["--output", output, "--image_size", "28", "28"]
        ),
        ["bundle", "--image_size"],
    ),
]


@pytest.mark.parametrize("case, build, words", CASES, ids=[case[0] for case in CASES])
def test_refused_with_one_line_and_nothing_written(world, capsys, case, build, words):
    output = str(world["root"] / f"out_{case}")
    argv = build(world, output)
    before = _tree(world["root"])

    status = main(argv)

    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("batch-score: error: ")
    for word in words:
        assert word in lines[0], f"{word!r} missing from: {lines[0]}"
    assert not os.path.exists(output)
    assert _tree(world["root"]) == before, "a refused run changed files"


def test_lambda_in_a_keras_file_never_runs(world, capsys):
    """Safe mode refuses the file before deserialising the function, let alone calling it."""
    status = main(_with("--model", "{root}/lambda.keras")(world, str(world["root"] / "out_l")))
    assert status == 2
    assert "Lambda" in capsys.readouterr().err
    assert not os.path.exists(world["marker"])


def test_export_refuses_labels_that_do_not_match_the_classes(world, capsys, tmp_path):
    from pipeline.export import main as export_main

    for text, words in (("cat\ndog\n", "2 labels"), ("a\n\nb\nc\nd\n", "line 2 is blank")):
        labels = tmp_path / "labels.txt"
        labels.write_text(text)
        bundle = tmp_path / "bundle"
        status = export_main(
            ["--model", world["model"], "--output", str(bundle), "--labels", str(labels)]
        )
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and words in lines[0], lines
        assert not bundle.exists()


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root writes through permission bits (os.access ignores them)",
)
def test_output_in_read_only_directory_is_refused(world, capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        status = main(_good(world, str(locked / "out")))
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1
        assert "not writable" in lines[0] and str(locked) in lines[0]
        assert os.listdir(locked) == []
    finally:
        locked.chmod(stat.S_IRWXU)
