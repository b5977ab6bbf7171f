"""Prediction records in the typed formats: an Arrow schema for Parquet, PredictionLog protos.

Pure conversions both ways (record -> row or log for the writers, and back for the readers of
earlier runs: ``pipeline.compare``, ``--skip_existing``, ``predict_one --against``), tested
without a pipeline. A ``PredictionLog`` here is what tfx-bsl's
RunInference and TFX's BulkInferrer write: ``predict_log.request`` names the model and carries
the key, ``predict_log.response.outputs`` the model's ``scores`` [1, C] plus the provenance of the
batch the element was scored in.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from transforms.core import records
from transforms.core.common import SCORE_TENSOR_SIGNATURE

PARQUET_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("uri", pa.string()),
        (
            "top_k",
            pa.list_(
                pa.struct([("index", pa.int32()), ("label", pa.string()), ("score", pa.float32())])
            ),
        ),
        ("scores", pa.list_(pa.float32())),  # null unless --write_scores
        ("batch_size", pa.int32()),
        ("batch_id", pa.string()),
        ("position", pa.int32()),
        ("model_digest", pa.string()),
        ("non_finite", pa.bool_()),
    ]
)


def to_parquet_row(record: dict) -> dict:
    """A prediction record with every schema column present (absent ones null/False)."""
    row = {name: record.get(name) for name in PARQUET_SCHEMA.names}
    row["non_finite"] = bool(record.get("non_finite", False))
    return row


def _tensor(values, dtype):
    import tensorflow as tf

    array = np.asarray(values)
    return tf.make_tensor_proto(array, dtype=dtype, shape=array.shape)


def to_prediction_log(record: dict) -> bytes:
    """A serialized PredictionLog for one prediction record (which must carry ``scores``)."""
    # Imported here: TensorFlow (which these protos import) is not needed for the other formats.
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    predict = log.predict_log
    predict.request.model_spec.signature_name = SCORE_TENSOR_SIGNATURE
    predict.response.model_spec.signature_name = SCORE_TENSOR_SIGNATURE
    predict.request.inputs["key"].CopyFrom(_tensor([record["key"].encode("utf-8")], tf.string))
    scores = [np.nan if v is None else v for v in record["scores"]]
    outputs = predict.response.outputs
    outputs["scores"].CopyFrom(_tensor([scores], tf.float32))
    outputs["batch_size"].CopyFrom(_tensor([record["batch_size"]], tf.int32))
    outputs["position"].CopyFrom(_tensor([record["position"]], tf.int32))
    outputs["batch_id"].CopyFrom(_tensor([record["batch_id"].encode()], tf.string))
    outputs["model_digest"].CopyFrom(_tensor([record["model_digest"].encode()], tf.string))
    return log.SerializeToString()


# --- reading them back ------------------------------------------------------------------------

# The file suffix of each output format under OUTPUT/predictions/.
SUFFIXES = {"jsonl": ".jsonl", "parquet": ".parquet", "tfrecord": ".tfrecord.gz"}


def from_json_line(line: str) -> dict:
    """A prediction record from one line of ``part-*.jsonl``."""
    return json.loads(line)


def from_parquet_row(row: dict) -> dict:
    """A prediction record from one Parquet row: the columns a JSON record would not have
    (``scores`` without --write_scores, ``non_finite`` when false) are left out."""
    record = dict(row)
    if record.get("scores") is None:
        record.pop("scores", None)
    if not record.get("non_finite"):
        record.pop("non_finite", None)
    record["top_k"] = [dict(entry) for entry in record.get("top_k") or []]
    return record


def _string(tensor) -> str:
    return tensor.string_val[0].decode("utf-8")


def from_prediction_log(data: bytes, k: int = 5) -> dict:
    """A prediction record from a serialized PredictionLog (as ``to_prediction_log`` writes).

    A PredictionLog carries the full score vector but no labels: ``top_k`` is rebuilt from the
    scores, each class labelled by its index; non-finite scores are null and flagged, as in JSON.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog.FromString(data)
    outputs = log.predict_log.response.outputs
    key = log.predict_log.request.inputs["key"].string_val[0].decode("utf-8")
    scores = tf.make_ndarray(outputs["scores"]).reshape(-1)
    finite = bool(np.all(np.isfinite(scores)))
    record = {
        "key": key,
        "uri": key,
        "top_k": records.top_k(scores, k, None) if finite else [],
        "scores": [float(v) if np.isfinite(v) else None for v in scores.tolist()],
        "batch_size": int(outputs["batch_size"].int_val[0]),
        "batch_id": _string(outputs["batch_id"]),
        "position": int(outputs["position"].int_val[0]),
        "model_digest": _string(outputs["model_digest"]),
    }
    if not finite:
        record["non_finite"] = True
    return record
