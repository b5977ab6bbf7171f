"""Model bundle, the serving reference through tfx-bsl, typed outputs and predict_one."""

import glob
import gzip
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import read_json, read_jsonl, score_images
from helpers import image_bytes
from tensorflow_serving.apis import prediction_log_pb2

from pipeline import export, predict_one
from transforms.core.model_reading import load_image_model
from transforms.core.preprocess import PreprocessSpec, preprocess_image
from transforms.score.serving_reference import image_example


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, model_path):
    labels = tmp_path_factory.mktemp("labels") / "labels.txt"
    labels.write_text("cat\ndog\nfox\nowl\n")
    path = str(tmp_path_factory.mktemp("bundles") / "tiny_bundle")
    assert export.main(["--model", model_path(), "--output", path, "--labels", str(labels)]) == 0
    return path


def test_bundle_signatures_agree_and_load_with_both_loaders(bundle):
    loaded = tf.saved_model.load(bundle)
    assert {"serving_default", "serve_image_bytes", "score_tensor"} <= set(loaded.signatures)
    encoded = [image_bytes(i, size=(20 + i, 30)) for i in range(3)]
    spec = PreprocessSpec((16, 16))
    tensors = tf.stack([preprocess_image(tf.constant(b), spec) for b in encoded])
    by_tensor = loaded.signatures["score_tensor"](images=tensors)["scores"].numpy()
    by_bytes = loaded.signatures["serve_image_bytes"](image_bytes=tf.constant(encoded))["scores"]
    examples = tf.constant([image_example(b) for b in encoded])
    by_example = loaded.signatures["serving_default"](examples=examples)["scores"].numpy()
    assert by_tensor.shape == (3, 4)
    np.testing.assert_array_equal(by_bytes.numpy(), by_example)
    np.testing.assert_allclose(by_tensor, by_example, rtol=1e-5, atol=1e-6)
    # tfx-bsl's loader: the TF1 session loader, as TF Serving uses.
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.load(session, ["serve"], bundle)
        assert (
            meta.signature_def["serving_default"].inputs["examples"].dtype
            == tf.string.as_datatype_enum
        )
    model = load_image_model(bundle)
    assert model.labels == ["cat", "dog", "fox", "owl"]
    assert model.bundle_spec == spec


def test_export_refuses_a_label_count_that_does_not_match(tmp_path, model_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    code = export.main(
        ["--model", model_path(), "--output", str(tmp_path / "b"), "--labels", str(labels)]
    )
    assert code == 2 and "2 labels" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _score(tmp_path, model, *flags):
    return score_images(
        tmp_path, model, "--reconcile_fraction", "1", "--batch_size", "4", *flags, images=12
    )


@pytest.mark.slow
def test_bundle_against_itself_passes_with_both_references(tmp_path, bundle):
    output = _score(tmp_path, bundle, "--serving_model", bundle)
    summary = read_json(f"{output}/reconciliation/summary.json")
    assert summary["verdict"] == "pass", summary["diagnosis"]
    assert summary["by_reference"]["single"]["compared"] == 12
    assert summary["by_reference"]["serving"]["compared"] == 12
    assert summary["preprocessing"]["input_max_abs_diff"] == 0.0
    labels = {p["top_k"][0]["label"] for p in read_jsonl(f"{output}/predictions")}
    assert labels <= {"cat", "dog", "fox", "owl"}


@pytest.mark.parametrize(
    "flags, differing",
    [(["--normalization", "unit"], "normalization"), (["--image_size", "16", "16"], None)],
)
@pytest.mark.slow
def test_keras_model_against_its_bundle(tmp_path, model_path, bundle, flags, differing):
    output = _score(tmp_path, model_path(), "--serving_model", bundle, *flags)
    summary = read_json(f"{output}/reconciliation/summary.json")
    causes = [d["cause"] for d in summary["diagnosis"]]
    if differing is None:
        assert summary["verdict"] == "pass", summary["diagnosis"]
        assert "preprocessing_mismatch" not in causes
    else:
        assert summary["verdict"] == "fail"
        assert causes == ["preprocessing_mismatch"]
        evidence = summary["diagnosis"][0]["evidence"]
        assert differing in evidence and "'unit'" in evidence and "model inputs differ" in evidence
        assert summary["by_reference"]["single"]["mismatch"] == 0
        elements = read_jsonl(f"{output}/reconciliation/elements")
        serving = [e for e in elements if e["reference"] == "serving"]
        assert len(serving) == 12 and all(e["input_max_abs_diff"] > 0.1 for e in serving)
        # The skew's worst rows are all serving comparisons, and the report shows their images.
        assert {w["reference"] for w in summary["worst"]} == {"serving"}
        with open(f"{output}/reconciliation/report.html") as f:
            assert f.read().count('alt="thumbnail"') == len(summary["worst"])


@pytest.mark.slow
def test_another_resize_method_is_a_preprocessing_mismatch(tmp_path, model_path):
    bicubic = str(tmp_path / "bicubic_bundle")
    assert (
        export.main(["--model", model_path(), "--output", bicubic, "--resize_method", "bicubic"])
        == 0
    )
    output = _score(tmp_path, model_path(), "--serving_model", bicubic)
    summary = read_json(f"{output}/reconciliation/summary.json")
    causes = [d["cause"] for d in summary["diagnosis"]]
    assert "preprocessing_mismatch" in causes
    assert (
        "resize_method" in summary["diagnosis"][causes.index("preprocessing_mismatch")]["evidence"]
    )


@pytest.mark.slow
def test_tfrecord_output_is_prediction_logs(tmp_path, bundle):
    output = _score(tmp_path, bundle, "--output_format", "tfrecord", "--reconcile_fraction", "0")
    files = glob.glob(f"{output}/predictions/part-*.tfrecord.gz")
    assert files
    logs = []
    for path in files:
        with gzip.open(path) as f:
            assert f.read(1)  # really gzip
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(raw.numpy())
            logs.append(log)
    assert len(logs) == 12
    scores = tf.make_ndarray(logs[0].predict_log.response.outputs["scores"])
    assert scores.shape == (1, 4) and abs(scores.sum() - 1) < 1e-5
    key = tf.make_ndarray(logs[0].predict_log.request.inputs["key"])[0].decode()
    assert key.endswith(".png")
    assert tf.make_ndarray(logs[0].predict_log.response.outputs["batch_size"])[0] in (4,)


@pytest.mark.slow
def test_parquet_output_has_a_typed_schema(tmp_path, bundle):
    output = _score(tmp_path, bundle, "--output_format", "parquet", "--reconcile_fraction", "0")
    table = pq.read_table(glob.glob(f"{output}/predictions/part-*.parquet")[0])
    assert table.num_rows == 12
    top_k = table.schema.field("top_k").type.value_type
    assert [(f.name, str(f.type)) for f in top_k] == [
        ("index", "int32"),
        ("label", "string"),
        ("score", "float"),
    ]
    assert table.schema.field("batch_size").type == "int32"
    row = table.slice(0, 1).to_pylist()[0]
    assert row["top_k"][0]["label"] in {"cat", "dog", "fox", "owl"} and row["scores"] is None


@pytest.mark.slow
def test_predict_one_prints_online_and_batch_side_by_side(tmp_path, bundle, capsys):
    output = _score(tmp_path, bundle, "--reconcile_fraction", "0", "--write_scores")
    image = sorted(glob.glob(f"{tmp_path}/images/*.png"))[3]
    assert predict_one.main([image, "--model", bundle, "--against", output, "--top_k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "online" in printed and "batch" in printed
    assert "max |diff| over all 4 classes" in printed
    assert "real rows, at position" in printed
    with open(image, "rb") as f:
        online = predict_one.score_online(f.read(), bundle)
    record = predict_one.find_batch_prediction(output, os.path.abspath(image))
    np.testing.assert_allclose(online, record["scores"], rtol=1e-4, atol=1e-5)


def test_the_serving_signature_scores_an_animated_webp_as_its_first_frame(bundle):
    """The exported graph decodes animated WebP as the batch path does: its first frame."""
    import io

    from PIL import Image

    frames = [Image.open(io.BytesIO(image_bytes(seed))).convert("RGB") for seed in (3, 4)]
    animated, still = io.BytesIO(), io.BytesIO()
    frames[0].save(animated, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    frames[0].save(still, "PNG")
    np.testing.assert_array_equal(
        predict_one.score_online(animated.getvalue(), bundle),
        predict_one.score_online(still.getvalue(), bundle),
    )
