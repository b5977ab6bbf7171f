"""The progress line: done/total, the summary's rate, ETA and errors, live on a terminal and
plain every ~10 s elsewhere, ended with a newline before the summary; its state lives only as long
as its run."""

from __future__ import annotations

import contextlib
import io
import re
import time

import pytest

from pipeline.options import parse_args
from pipeline.run import run_job
from pipeline.run_summary import print_run_summary
from pipeline.shard import write_shards
from transforms.score import progress
from transforms.score.progress import ProgressLine, show_progress


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, as a user's stderr does."""

    def isatty(self):
        return True


def test_line_states_done_total_rate_eta_and_errors():
    line = ProgressLine(_Terminal(), started=100.0)
    assert line.text(now=100.0) == "scored 0/? images, 0 errors"  # matching not finished
    line.add(matched=100)
    line.add(scored=40, errors=10)
    # 40 scored in 4 s since the run started: 10 images/s; 50 left: 5 s.
    assert line.text(now=104.0) == "scored 40/100 images, 10.0 images/s, ETA 0:00:05, 10 errors"
    line.add(scored=50)
    assert line.text(now=109.0) == "scored 90/100 images, 10.0 images/s, ETA 0:00:00, 10 errors"


def test_skipped_images_are_shown_and_need_no_time():
    line = ProgressLine(_Terminal(), started=100.0)
    line.add(matched=1000, skipped=900)
    line.add(scored=20, errors=0)
    # 20 scored in 2 s: 10 images/s; 80 left (900 of the 1,000 were skipped): 8 s.
    assert line.text(now=102.0) == (
        "scored 20/1,000 images, 10.0 images/s, ETA 0:00:08, 0 errors, 900 skipped"
    )


def test_plain_lines_every_interval_when_not_a_terminal():
    """CI logs and nohup get the same text as plain lines, no control codes, every interval."""
    stream = io.StringIO()
    with show_progress(stream, interval=0.05) as hook:
        hook.add(matched=10, scored=4, errors=1)
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2 and "\x1b" not in stream.getvalue()
    assert all(re.fullmatch(r"scored 4/10 images, [\d.]+ images/s, ETA [\d:]+, 1 errors", x)
               for x in lines)  # fmt: skip
    written = stream.getvalue()
    time.sleep(0.15)
    assert stream.getvalue() == written  # none after the run


def test_silent_when_disabled():
    stream = io.StringIO()
    with show_progress(stream, enabled=False) as hook:
        assert hook is None  # stages get no hook: nothing to report to
    assert stream.getvalue() == ""


def test_hooks_of_a_finished_run_report_nowhere():
    with show_progress(_Terminal()) as hook:
        hook.add(scored=3)
        assert progress._LINES[hook.run_id].scored == 3
    assert progress._LINES == {}
    hook.add(scored=1)  # e.g. a retried bundle after the run: no error, no state kept


@pytest.mark.parametrize(
    "input_format", ["files", pytest.param("tfrecord", marks=pytest.mark.slow)]
)
def test_real_run_ends_its_line_with_a_newline_before_the_summary(
    tmp_path, model_path, capsys, input_format
):
    import helpers

    helpers.write_images(tmp_path / "images", 12)
    (tmp_path / "images" / "img_0100.png").write_bytes(b"")  # an empty file: an error
    source, total, errors = ["--input", f"{tmp_path}/images/*.png"], 13, 1
    if input_format == "tfrecord":
        # The same 13 packed in shards of 5, listed with a shard nobody wrote (one error more):
        # the total counts every record and every bad shard.
        shards = write_shards([source[1]], str(tmp_path / "shards"), "tfrecord", 5)
        manifest = tmp_path / "shards.txt"
        manifest.write_text("".join(f"{s}\n" for s in [*shards, f"{tmp_path}/gone.tfrecord"]))
        source, total, errors = ["--input_manifest", str(manifest)], 14, 2
    output = str(tmp_path / "out")
    options, config = parse_args(
        ["--input_format", input_format, *source, "--model", model_path()]
        + ["--output", output, "--batch_size", "4", "--reconcile_fraction", "0"]
    )
    terminal = _Terminal()
    run_job(options, config, save_main_session=False, stream=terminal)
    with contextlib.redirect_stdout(terminal):
        print_run_summary(config)

    assert progress._LINES == {}
    # What the terminal shows, without rich's cursor controls (hide/show cursor, clear line).
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", terminal.getvalue())
    frames = re.split(r"\r|\n", text)
    last_frame = [f for f in frames if re.match(r"scored [\d,]+/", f)][-1]
    expected = rf"scored 12/{total} images, [\d.]+ images/s, ETA 0:00:00, {errors} errors"
    assert re.fullmatch(expected, last_frame)
    # The line is ended before the summary starts, which begins a line of its own.
    summary_at = text.index(f"scored 12 images, {errors} errors")
    assert text[:summary_at].endswith("\n")
    # The rate shown last is the summary's (scored / seconds since the run started).
    shown = float(re.search(r"([\d.]+) images/s", last_frame).group(1))
    summary_rate = float(re.search(r"([\d.]+) images/s over", text).group(1))
    assert abs(shown - summary_rate) <= 0.1 * summary_rate
    # A plain model gets the default normalisation, and the user is told so.
    assert "--normalization symmetric (the default)" in capsys.readouterr().err
