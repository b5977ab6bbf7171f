"""Hostile inputs: a generated corpus of broken, odd and malicious files, scored in one run.

Every kind has the outcome observed from the real decoders and accepted as the contract: valid
images are scored whatever their mode, format or file name (the format comes from the content),
the rest become dead letters with a specific reason, and the job itself never fails. The
pipeline runs once over the whole corpus (``corpus_run``); each kind is then one test case.

Outcomes worth knowing (observed with TensorFlow 2.21 and Pillow 12):
- a JPEG whose middle is corrupted is *scored*: libjpeg resynchronises at the next restart or
  end marker and only warns ("Corrupt JPEG data: ... extraneous bytes"); the damaged blocks
  come out as grey/garbage pixels. A PNG's zlib stream and chunk checksums leave no such slack,
  so a corrupted PNG is a ``corrupt_image`` dead letter.
- a PNG whose IHDR checksum is wrong fails in Pillow's header parser; it is reported as a
  ``corrupt_image`` PNG (it starts with the PNG signature), not as an unsupported format.
- a header declaring 60,000 x 60,000 pixels is refused as ``too_many_pixels`` from the header
  alone; so is one under Pillow's own bomb limit but over ``--max_image_pixels``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import os
import resource
import socket
import struct
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from apache_beam.io.filesystem import FileMetadata, MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem
from conftest import read_json, read_jsonl
from PIL import Image

from pipeline.run import run
from transforms.core import records
from transforms.score.preprocess_images import check_header

SCORED = "scored"


def _pixels(seed: int, size: tuple[int, int] = (24, 20)) -> Image.Image:
    """A deterministic noisy RGB image of (height, width) = size."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8), "RGB")


def _encode(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG file whose IHDR declares width x height RGB pixels.

    Only the header is honest: the IDAT holds a few bytes, so anything that trusts the header
    and allocates the image (width * height * 3 bytes) before decoding gives itself away.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 marker is patched to declare width x height."""
    data = bytearray(_encode(_pixels(11), "JPEG"))
    sof = data.index(b"\xff\xc0")
    # SOF0: marker, length (2), precision (1), height (2), width (2).
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _corrupt_middle(data: bytes, span: int = 64) -> bytes:
    """Flips bits in ``span`` bytes at the middle of the file; the ends stay intact."""
    out = bytearray(data)
    for i in range(len(out) // 2, len(out) // 2 + span):
        out[i] ^= 0xA5
    return bytes(out)


def _bad_crc(data: bytes, chunk: bytes) -> bytes:
    """A PNG with the checksum of its first ``chunk`` chunk inverted."""
    at = data.index(chunk)
    length = struct.unpack(">I", data[at - 4 : at])[0]
    crc = at + 4 + length
    out = bytearray(data)
    out[crc : crc + 4] = bytes(b ^ 0xFF for b in out[crc : crc + 4])
    return bytes(out)


def _animated_gif() -> bytes:
    frames = [_pixels(20 + i, (16, 16)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buffer.getvalue()


def _animated_webp(**save_args) -> bytes:
    frames = [_pixels(30 + i, (16, 16)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], **save_args)
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", "not really")
    return buffer.getvalue()


def _png16() -> bytes:
    ramp = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 131).astype(np.uint16)
    return _encode(Image.fromarray(ramp, "I;16"), "PNG")


_JPEG = _encode(_pixels(1, (64, 64)), "JPEG", quality=90)
_PNG = _encode(_pixels(2, (64, 64)), "PNG")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of hostile input: its file name, its bytes and the outcome it must have.

    ``expected`` is ``SCORED`` or ``(stage, reason)`` of the dead letter.
    """

    name: str
    filename: str
    make: Callable[[], bytes]
    expected: str | tuple[str, str]


def _decode_error(reason: str) -> tuple[str, str]:
    return ("decode", reason)


CORPUS = [
    Kind("zero_byte", "empty.jpg", lambda: b"", _decode_error(records.EMPTY_FILE)),
    Kind(
        "text_as_jpeg",
        "notes.jpg",
        lambda: b"just some text\n",
        _decode_error(records.UNSUPPORTED_FORMAT),
    ),
    Kind(
        "svg_as_png",
        "vector.png",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>',
        _decode_error(records.UNSUPPORTED_FORMAT),
    ),
    Kind("zip_as_jpeg", "archive.jpg", _zip, _decode_error(records.UNSUPPORTED_FORMAT)),
    Kind(
        "html_as_png",
        "page.png",
        lambda: b"<!DOCTYPE html><html><body>404</body></html>",
        _decode_error(records.UNSUPPORTED_FORMAT),
    ),
    Kind(
        "tiff",
        "scan.tiff",
        lambda: _encode(_pixels(3), "TIFF"),
        _decode_error(records.UNSUPPORTED_FORMAT),
    ),
    Kind(
        "truncated_jpeg",
        "cut.jpg",
        lambda: _JPEG[: len(_JPEG) // 2],
        _decode_error(records.TRUNCATED_IMAGE),
    ),
    Kind(
        "jpeg_signature_only",
        "stub.jpg",
        lambda: b"\xff\xd8\xff",
        _decode_error(records.TRUNCATED_IMAGE),
    ),
    Kind(
        "truncated_png",
        "cut.png",
        lambda: _PNG[: len(_PNG) // 2],
        _decode_error(records.TRUNCATED_IMAGE),
    ),
    # libjpeg recovers from a damaged entropy-coded segment: scored, with a decoder warning.
    Kind("corrupt_middle_jpeg", "damaged.jpg", lambda: _corrupt_middle(_JPEG), SCORED),
    Kind(
        "corrupt_middle_png",
        "damaged.png",
        lambda: _corrupt_middle(_PNG),
        _decode_error(records.CORRUPT_IMAGE),
    ),
    Kind(
        "png_bad_ihdr_crc",
        "bad_header_crc.png",
        lambda: _bad_crc(_PNG, b"IHDR"),
        _decode_error(records.CORRUPT_IMAGE),
    ),
    Kind(
        "png_bad_idat_crc",
        "bad_data_crc.png",
        lambda: _bad_crc(_PNG, b"IDAT"),
        _decode_error(records.CORRUPT_IMAGE),
    ),
    Kind("png_named_jpg", "actually_png.jpg", lambda: _PNG, SCORED),
    Kind("png_named_gz", "actually_png.png.gz", lambda: _PNG, SCORED),
    Kind("jpeg_trailing_garbage", "trailing.jpg", lambda: _JPEG + b"\x00junk" * 50, SCORED),
    Kind("png_16bit", "deep.png", _png16, SCORED),
    Kind("grayscale", "gray.png", lambda: _encode(_pixels(4).convert("L"), "PNG"), SCORED),
    Kind("gray_alpha", "la.png", lambda: _encode(_pixels(4).convert("LA"), "PNG"), SCORED),
    Kind("palette", "palette.png", lambda: _encode(_pixels(4).convert("P"), "PNG"), SCORED),
    Kind("rgba", "alpha.png", lambda: _encode(_pixels(4).convert("RGBA"), "PNG"), SCORED),
    Kind("cmyk_jpeg", "cmyk.jpg", lambda: _encode(_pixels(5).convert("CMYK"), "JPEG"), SCORED),
    Kind(
        "progressive_jpeg",
        "progressive.jpg",
        lambda: _encode(_pixels(6), "JPEG", progressive=True),
        SCORED,
    ),
    Kind("bmp", "bitmap.bmp", lambda: _encode(_pixels(7), "BMP"), SCORED),
    Kind("animated_gif", "animated.gif", _animated_gif, SCORED),
    Kind("webp", "photo.webp", lambda: _encode(_pixels(8), "WEBP"), SCORED),
    Kind("animated_webp", "animated.webp", _animated_webp, SCORED),
    Kind(
        "rgba_webp",
        "alpha.webp",
        lambda: _encode(_pixels(15).convert("RGBA"), "WEBP", lossless=True),
        SCORED,
    ),
    Kind("one_pixel", "dot.png", lambda: _encode(_pixels(9, (1, 1)), "PNG"), SCORED),
    Kind("one_by_3000", "strip.png", lambda: _encode(_pixels(10, (3000, 1)), "PNG"), SCORED),
    Kind(
        "png_bomb_60000x60000",
        "bomb.png",
        lambda: png_declaring(60_000, 60_000),
        _decode_error(records.TOO_MANY_PIXELS),
    ),
    Kind(
        "jpeg_bomb_65000x65000",
        "bomb.jpg",
        lambda: _jpeg_declaring(65_000, 65_000),
        _decode_error(records.TOO_MANY_PIXELS),
    ),
    # Under Pillow's own bomb limit (~179 MP) but over --max_image_pixels (50 MP by default).
    Kind(
        "png_header_100mp",
        "large.png",
        lambda: png_declaring(10_000, 10_000),
        _decode_error(records.TOO_MANY_PIXELS),
    ),
    Kind("name_with_spaces", "my holiday photo.png", lambda: _encode(_pixels(12), "PNG"), SCORED),
    Kind("non_ascii_name", "café 日本 ñ.jpg", lambda: _encode(_pixels(13), "JPEG"), SCORED),
    Kind("glob_chars_name", "shot [1] (copy).png", lambda: _encode(_pixels(14), "PNG"), SCORED),
]

# Inputs that exist only as manifest lines: they fail at the read stage, not at decoding.
MANIFEST_ONLY = {
    "missing_file": ("read", records.NOT_FOUND),
    "directory": ("read", records.NOT_A_REGULAR_FILE),
    "dev_zero": ("read", records.NOT_A_REGULAR_FILE),  # would read forever if opened
}

# The corpus run's read cap, so a small sparse file stands for a huge one.
MAX_FILE_BYTES = 1_000_000
SECRET = b"root:x:0:0:SECRET-FIRST-BYTES\n"


def _make_fifo(path):
    os.mkfifo(path)


def _make_socket(path):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))  # the socket file stays after the socket is closed


def _make_sparse(path):
    with open(path, "wb") as f:
        f.truncate(3 * MAX_FILE_BYTES)  # holes: no disk, no memory, but a size over the cap


def _make_secret_link(path):
    secret = path.parent.parent / "private.txt"
    secret.write_bytes(SECRET)
    path.symlink_to(secret)


# Filesystem objects matched by the glob, that no byte string describes: (file name, how to make
# it, outcome). None of them may hang the job, vanish, or leak what it points at.
SPECIAL = {
    "fifo": ("zz_fifo.png", _make_fifo, ("read", records.NOT_A_REGULAR_FILE)),
    "socket": ("sock.png", _make_socket, ("read", records.NOT_A_REGULAR_FILE)),
    "subdirectory": ("folder.png", lambda path: path.mkdir(), ("read", records.NOT_A_REGULAR_FILE)),
    "link_to_directory": (
        "dirlink.png",
        lambda path: path.symlink_to(path.parent.parent / "a_directory"),
        ("read", records.NOT_A_REGULAR_FILE),
    ),
    "dangling_symlink": (
        "dangling.png",
        lambda path: path.symlink_to(path.parent / "nowhere.png"),
        ("read", records.BROKEN_SYMLINK),
    ),
    "symlink_loop": (
        "loop.png",
        lambda path: path.symlink_to(path),  # a link to itself
        ("read", records.SYMLINK_LOOP),
    ),
    "oversized_sparse": ("huge.png", _make_sparse, ("read", records.FILE_TOO_LARGE)),
    "link_to_private_text": (
        "passwd.png",
        _make_secret_link,
        ("decode", records.UNSUPPORTED_FORMAT),
    ),
    # A valid PNG whose name is not UTF-8: read through its raw name, keyed by an escaped one.
    "non_utf8_name": (b"\xff\xfe.png", lambda path: path.write_bytes(_PNG), SCORED),
    # Only the line ending is stripped from a manifest line: the trailing space is the name.
    "trailing_space_name": ("spaced.png ", lambda path: path.write_bytes(_PNG), SCORED),
}


def _score_corpus(root, model: str) -> dict:
    """Writes the corpus under root and scores it in one pipeline run."""
    images = root / "images"
    images.mkdir()
    uris = {}
    for kind in CORPUS:
        path = images / kind.filename
        assert not path.exists(), f"two kinds share the file name {kind.filename}"
        path.write_bytes(kind.make())
        uris[kind.name] = str(path)
    (root / "a_directory").mkdir()
    for name, (filename, make, _) in SPECIAL.items():
        raw = os.path.join(os.fsencode(images), os.fsencode(filename))
        make(images / os.fsdecode(filename))
        uris[name] = (
            os.fsdecode(raw).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        )
    uris["missing_file"] = str(root / "does_not_exist.png")
    uris["directory"] = str(root / "a_directory")
    uris["dev_zero"] = "/dev/zero"
    # Each line spells a file the glob also matches, or is only in the manifest; the glob's
    # files spelled with "./" and "//" must be scored once, not once per spelling.
    dot = uris["one_pixel"]
    lines = [
        uris["missing_file"].encode(),
        uris["directory"].encode(),
        b"/dev/zero",
        dot.replace("/dot.png", "/./dot.png").encode(),
        dot.replace("/dot.png", "//dot.png").encode(),
        os.path.join(os.fsencode(images), b"\xff\xfe.png"),
        os.path.join(os.fsencode(images), b"spaced.png ") + b"\r",
    ]
    manifest = root / "manifest.txt"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    output = str(root / "out")
    run(
        [
            "--input",
            f"{images}/*",
            "--input_manifest",
            str(manifest),
            "--model",
            model,
            "--output",
            output,
            "--batch_size",
            "4",
            "--reconcile_fraction",
            "0.25",
            "--max_file_bytes",
            str(MAX_FILE_BYTES),
        ],
        save_main_session=False,
    )
    return {
        "uris": uris,
        "predictions": read_jsonl(os.path.join(output, "predictions")),
        "errors": read_jsonl(os.path.join(output, "errors")),
        "run": read_json(os.path.join(output, "run.json")),
    }


@pytest.fixture(scope="module")
def corpus_run(request, tmp_path_factory, model_path):
    """What each corpus URI became, from one pipeline run per test session.

    Under pytest-xdist each worker imports this module, and the parametrised cases are spread
    over workers; the first worker to get here runs the pipeline, under a lock in the
    session's shared temporary directory, and the others read its results.
    """
    if not hasattr(request.config, "workerinput"):  # not a pytest-xdist worker
        return _score_corpus(tmp_path_factory.mktemp("hostile"), model_path())
    shared = tmp_path_factory.getbasetemp().parent
    results = shared / "hostile_corpus_results.json"
    with open(shared / "hostile_corpus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not results.exists():
            root = shared / "hostile_corpus"
            root.mkdir()
            results.write_text(json.dumps(_score_corpus(root, model_path())))
    return json.loads(results.read_text())


def _outcomes(corpus_run, uri: str) -> list:
    """Everything the run wrote about one URI: prediction records and (stage, reason) pairs."""
    found = [p for p in corpus_run["predictions"] if p["uri"] == uri]
    found += [(e["stage"], e["reason"]) for e in corpus_run["errors"] if e["uri"] == uri]
    return found


@pytest.mark.parametrize(
    "name, expected",
    [(kind.name, kind.expected) for kind in CORPUS]
    + list(MANIFEST_ONLY.items())
    + [(name, expected) for name, (_, _, expected) in SPECIAL.items()],
)
@pytest.mark.slow
def test_each_hostile_kind_has_its_outcome(corpus_run, name, expected):
    uri = corpus_run["uris"][name]
    outcomes = _outcomes(corpus_run, uri)
    assert len(outcomes) == 1, f"{name}: expected exactly one record, got {outcomes}"
    (outcome,) = outcomes
    if expected == SCORED:
        assert isinstance(outcome, dict), f"{name} was not scored: {outcome}"
        assert outcome["key"] == uri
        assert len(outcome["top_k"]) == 4 and not outcome.get("non_finite")
        assert 0.99 < sum(entry["score"] for entry in outcome["top_k"]) < 1.01
    else:
        assert outcome == expected


def test_corpus_is_large_enough_and_names_are_unique():
    names = [kind.name for kind in CORPUS] + list(MANIFEST_ONLY) + list(SPECIAL)
    assert len(set(names)) == len(names) >= 20
    assert len({kind.filename for kind in CORPUS}) == len(CORPUS)


@pytest.mark.slow
def test_job_accounts_for_every_hostile_input(corpus_run):
    record = corpus_run["run"]
    outcomes = [kind.expected for kind in CORPUS] + list(MANIFEST_ONLY.values())
    outcomes += [expected for _, _, expected in SPECIAL.values()]
    expected = Counter(outcome[1] for outcome in outcomes if outcome != SCORED)
    scored = outcomes.count(SCORED)
    assert record["accounted"] is True
    assert record["matched"] == len(CORPUS) + len(MANIFEST_ONLY) + len(SPECIAL)
    assert (record["scored"], record["errors"]) == (scored, sum(expected.values()))
    assert record["errors_by_reason"] == dict(expected)
    # Nothing outside the corpus was written, and nothing twice.
    written = [p["uri"] for p in corpus_run["predictions"]]
    written += [e["uri"] for e in corpus_run["errors"]]
    assert sorted(written) == sorted(corpus_run["uris"].values())


@pytest.mark.slow
def test_error_messages_say_what_is_wrong(corpus_run):
    """A dead letter's message is the decoder's reason, not TF's graph-node noise."""
    for error in corpus_run["errors"]:
        message = error["message"]
        assert message and "\n" not in message
        assert "{{node" not in message and "function_node" not in message, message
    by_uri = {e["uri"]: e["message"] for e in corpus_run["errors"]}
    uris = corpus_run["uris"]
    assert "Invalid JPEG data" in by_uri[uris["truncated_jpeg"]]
    assert "Invalid PNG data" in by_uri[uris["corrupt_middle_png"]]
    bomb = by_uri[uris["png_bomb_60000x60000"]]
    assert "60000x60000" in bomb or "3600000000" in bomb, bomb
    assert "FIFO" in by_uri[uris["fifo"]] and "not opened" in by_uri[uris["fifo"]]
    assert "--max_file_bytes" in by_uri[uris["oversized_sparse"]]
    # A message names what is wrong, never what the file holds (a link to a private file).
    for message in by_uri.values():
        assert "SECRET" not in message and "root:" not in message, message


def test_header_check_refuses_a_bomb_quickly_in_bounded_memory():
    bomb = png_declaring(60_000, 60_000)
    assert len(bomb) < 100
    check_header(png_declaring(8, 8), 50_000_000)  # Pillow registers its plugins on first use
    # ru_maxrss is a high-water mark (KiB on Linux): it grows only if this call allocates beyond
    # the process's earlier peak. Decoding the declared 10.8 GB of pixels would blow far past it.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(records.ImageError) as refused:
        check_header(bomb, 50_000_000)
    elapsed = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert refused.value.reason == records.TOO_MANY_PIXELS
    assert refused.value.stage == "decode"
    assert elapsed < 0.5, f"header check took {elapsed:.2f}s"
    assert grown_mb < 100, f"max RSS grew by {grown_mb:.0f} MB"


def test_header_check_applies_the_pixel_limit_exactly():
    header = png_declaring(1000, 1000)
    assert check_header(header, 1_000_000) == "PNG"
    with pytest.raises(records.ImageError) as refused:
        check_header(header, 999_999)
    assert refused.value.reason == records.TOO_MANY_PIXELS
    assert "1000x1000" in refused.value.message


def test_animated_gif_gives_its_first_frame():
    import tensorflow as tf

    from transforms.core.preprocess import decode_rgb

    data = _animated_gif()
    decoded = decode_rgb(tf.constant(data)).numpy()
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == 3
        first = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(decoded, first)


def _partial_first_frame() -> bytes:
    """An animation whose first frame covers only part of the canvas, at an offset."""
    canvas = Image.new("RGBA", (20, 16), (0, 0, 0, 0))
    canvas.paste(_pixels(40, (6, 8)).convert("RGBA"), (4, 6))
    frames = [canvas, _pixels(41, (16, 20)).convert("RGBA")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _animated_webp(lossless=True),
        lambda: _animated_webp(quality=80),
        lambda: _animated_webp(lossless=True, background=(0, 0, 0, 0)),
        _partial_first_frame,
        lambda: _encode(_pixels(15).convert("RGBA"), "WEBP", lossless=True),
    ],
    ids=["lossless", "lossy", "background", "offset_frame", "still_rgba"],
)
def test_webp_animations_give_their_first_frame_as_pillow_decodes_it(make):
    """TensorFlow's decoder refuses animated WebP (and RGBA WebP as 3 channels): the shared
    decode gives the first frame, the pixels Pillow (libwebp's compositor) gives, eager and in
    a graph (as the exported serving signatures run it)."""
    import tensorflow as tf

    from transforms.core.preprocess import decode_rgb

    data = make()
    with Image.open(io.BytesIO(data)) as webp:
        first = np.asarray(webp.convert("RGB"))
    np.testing.assert_array_equal(decode_rgb(tf.constant(data)).numpy(), first)
    graph = tf.function(decode_rgb, input_signature=[tf.TensorSpec([], tf.string)])
    np.testing.assert_array_equal(graph(tf.constant(data)).numpy(), first)


@pytest.mark.parametrize("cut", [40, 60, 100])
def test_a_cut_webp_animation_is_a_decode_error_that_quotes_no_bytes(cut):
    from transforms.core.preprocess import PreprocessSpec
    from transforms.score.preprocess_images import ImagePreprocessor

    data = _animated_webp(lossless=True)[:cut]
    with pytest.raises(records.ImageError) as failed:
        ImagePreprocessor(PreprocessSpec((8, 8)), 10**6)(data)
    assert failed.value.reason in (records.CORRUPT_IMAGE, records.TRUNCATED_IMAGE)
    assert "RIFF" not in failed.value.message


_SAME_PIXELS = {
    "grayscale": 0,
    "gray_alpha": 0,  # alpha is dropped, not composited
    "palette": 0,
    "rgba": 0,
    "bmp": 0,
    "webp": 0,
    "png_named_jpg": 0,
    # JPEG decoders may round the inverse DCT, upsampling and colour conversion differently:
    # about a level on average, where a misread image (CMYK inverted) is off by ~100.
    "cmyk_jpeg": 8,
    "progressive_jpeg": 8,
    "corrupt_middle_jpeg": 8,
}


@pytest.mark.parametrize("name, tolerance", sorted(_SAME_PIXELS.items()))
def test_scored_odd_images_decode_to_the_pixels_pillow_sees(name, tolerance):
    """Scored is not enough: a mode the decoder mishandles (CMYK inverted, palette indices read
    as grey) would still score. TF's decode must show the picture Pillow shows."""
    import tensorflow as tf

    from transforms.core.preprocess import decode_rgb

    data = next(kind for kind in CORPUS if kind.name == name).make()
    decoded = decode_rgb(tf.constant(data)).numpy().astype(int)
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(image.convert("RGB")).astype(int)
    assert decoded.shape == expected.shape
    assert np.abs(decoded - expected).max() <= tolerance
    assert np.abs(decoded - expected).mean() < 2.0


def test_16_bit_png_keeps_its_high_byte():
    import tensorflow as tf

    from transforms.core.preprocess import decode_rgb

    data = _png16()
    with Image.open(io.BytesIO(data)) as image:
        wide = np.asarray(image).astype(int)
    decoded = decode_rgb(tf.constant(data)).numpy().astype(int)
    assert wide.max() > 255  # really 16-bit
    np.testing.assert_array_equal(decoded, np.repeat((wide >> 8)[..., None], 3, axis=-1))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_file_whose_size_lies_is_capped_while_reading():
    """/proc files report 0 bytes and hold more: the cap holds while reading, not only by size."""
    from transforms.score.read_files import read_local

    assert os.stat("/proc/self/status").st_size == 0
    assert len(read_local("/proc/self/status", 1 << 20)) > 64
    with pytest.raises(records.ImageError) as refused:
        read_local("/proc/self/status", 64)
    assert (refused.value.stage, refused.value.reason) == ("read", records.FILE_TOO_LARGE)


@pytest.mark.parametrize(
    "line, uri",
    [
        (b"a.png\n", "/w/a.png"),
        (b"a.png\r\n", "/w/a.png"),
        (b"name.png \n", "/w/name.png "),  # only the line ending is stripped
        (b"./a.png", "/w/a.png"),
        (b"dir//./a.png", "/w/dir/a.png"),
        (b"//abs/./a.png", "/abs/a.png"),
        (b"gs://bucket/a//b.png", "gs://bucket/a//b.png"),  # distinct objects on GCS
        (b"\xff.png", "/w/\udcff.png"),  # not UTF-8: kept as the raw name
        (b"   \n", None),
        (b"# a comment\n", None),
    ],
)
def test_manifest_lines_are_normalised_before_deduplication(line, uri):
    from transforms.core.common import parse_manifest_line

    assert parse_manifest_line(line, "/w") == uri


class _HostileStore(LocalFileSystem):
    """A remote store (scheme ``hostile://``) whose one model object is named with ``../``, as
    a gs:// object name may be: any string is a valid object name there."""

    ESCAPE = f"escaped-{os.getpid()}.txt"

    @classmethod
    def scheme(cls):
        return "hostile"

    def exists(self, path):
        return True

    def match(self, patterns, limits=None):
        name = f"hostile://bucket/model/../../../../../../tmp/{self.ESCAPE}"
        return [MatchResult(p, [FileMetadata(name, 3)]) for p in patterns]

    def open(self, path, mime_type=None, compression_type=None):
        return io.BytesIO(b"bad")


def test_remote_model_files_are_copied_only_inside_their_temp_folder(tmp_path, monkeypatch):
    from transforms.core.model_reading import ModelLoadError, localize

    # A temp folder of this test's own: the shared one gains files from other processes
    # (TensorFlow's autograph writes its generated code there).
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        localize("hostile://bucket/model")
    assert not os.path.exists(os.path.join("/tmp", _HostileStore.ESCAPE))
    assert os.listdir(temp) == []  # the partial copy is removed


_OOM_SCRIPT = """
import helpers
from transforms.core import records
from transforms.core.preprocess import PreprocessSpec
from transforms.score.preprocess_images import ImagePreprocessor

# 30000 x 30000 x 3 float32 is 10.8 GB: over the address-space limit the parent sets.
preprocessor = ImagePreprocessor(PreprocessSpec((30000, 30000)), 10**10)
try:
    preprocessor(helpers.image_bytes(1))
    print("scored")
except records.ImageError as e:
    print(e.stage, e.reason, e.message.split(":")[0])
"""


@pytest.mark.slow
def test_any_tensorflow_error_on_one_element_is_that_elements_error(tmp_path):
    """A real ResourceExhaustedError (not one of the decoders' own error types) from resizing
    one image is a dead letter, not a failed job. The address space is capped so TensorFlow's
    allocation fails at once instead of swapping the machine."""
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(tests), tests]))
    limit = 6 * 1024**3
    done = subprocess.run(
        [sys.executable, "-c", _OOM_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["preprocess", records.PREPROCESS_ERROR, "ResourceExhaustedError"]


@pytest.mark.slow
def test_remote_objects_are_read_with_one_request_each(tmp_path, model_path):
    """On an object store (``mem://`` here) each image costs one open and no separate metadata
    request; a missing object is not_found and one over --max_file_bytes is never read."""
    import helpers
    import memfs
    from apache_beam.io.filesystems import FileSystems

    bucket = f"mem://hostile-{tmp_path.name}"
    names = []
    for i in range(3):
        names.append(f"{bucket}/img_{i}.png")
        with FileSystems.create(names[-1]) as f:
            f.write(helpers.image_bytes(i))
    with FileSystems.create(f"{bucket}/big.png") as f:
        f.write(helpers.image_bytes(9) + b"\0" * 50_000)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(
        "".join(f"{n}\n" for n in [*names, f"{bucket}/gone.png", f"{bucket}/big.png"])
    )
    memfs.InMemoryFileSystem.requests.clear()
    output = str(tmp_path / "out")
    run(
        ["--input_manifest", str(manifest), "--model", model_path(), "--output", output]
        + ["--max_file_bytes", "40000", "--reconcile_fraction", "0"],
        save_main_session=False,
    )
    reasons = {e["uri"].rsplit("/", 1)[1]: e["reason"] for e in read_jsonl(f"{output}/errors")}
    assert reasons == {"gone.png": "not_found", "big.png": "file_too_large"}
    record = read_json(f"{output}/run.json")
    assert (record["scored"], record["accounted"]) == (3, True)
    assert memfs.InMemoryFileSystem.requests == {"open": 5}
