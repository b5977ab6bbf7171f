"""Reading a model before running it: faults that our call masks but other callers meet.

Our single model call passes ``training=False`` and feeds the input dtype the model declares,
so a layer hard-wired to training mode or an integer input scores correctly here. Beam's own
TF handler, a hand-written server or TF Serving on a SavedModel traced in training mode do not
get that help: these warnings say what they would see. No Beam; the checks read the Keras
functional graph's call arguments and the scoring signature's GraphDef (functions included).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from transforms.core.preprocess import INTEGER_INPUTS
from transforms.core.records import error_detail

TRAINING_MODE = "training_mode_layer"
ACTIVE_NOISE = "active_noise_layer"
RANDOM_OP = "random_op"
BATCH_STATISTICS = "batch_statistics_op"
INTEGER_INPUT = "integer_input"
NOT_PROBABILITIES = "not_probabilities"
MODEL_CALL_FAILED = "model_call_failed"

# Keras layers that add noise when they run in training mode (random augmentation: Random*).
_NOISE_LAYERS = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "AlphaDropout",
    "GaussianNoise",
)
# Graph ops that draw random numbers from state: always random at inference.
_STATEFUL_RANDOM = (
    "RandomUniform",
    "RandomUniformInt",
    "RandomStandardNormal",
    "TruncatedNormal",
    "Multinomial",
    "RandomShuffle",
    "RandomGamma",
    "RandomPoisson",
    "RandomPoissonV2",
    "StatefulUniform",
    "StatefulUniformInt",
    "StatefulStandardNormalV2",
    "StatefulTruncatedNormal",
    "StatefulUniformFullInt",
    "StatefulRandomBinomial",
)
_FUSED_BATCH_NORM = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


@dataclasses.dataclass(frozen=True)
class ModelWarning:
    """One finding: ``kind`` (stable code), ``where`` (layer or graph node), ``message``."""

    kind: str
    where: str
    message: str

    def to_record(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _is_noise_layer(class_name: str) -> bool:
    return class_name in _NOISE_LAYERS or class_name.startswith("Random")


def _keras_layers(net, prefix: str = ""):
    """(qualified name, layer) for every layer, nested models included."""
    for layer in getattr(net, "layers", []):
        name = f"{prefix}{layer.name}"
        yield name, layer
        if getattr(layer, "layers", None):
            yield from _keras_layers(layer, f"{name}/")


def keras_warnings(net) -> list[ModelWarning]:
    """Layers whose call in the functional graph passes ``training=True``."""
    found = []
    for name, layer in _keras_layers(net):
        for node in getattr(layer, "_inbound_nodes", []):
            arguments = getattr(node, "arguments", None)
            if arguments is None or arguments.kwargs.get("training") is not True:
                continue
            kind = type(layer).__name__
            if _is_noise_layer(kind):
                found.append(
                    ModelWarning(
                        ACTIVE_NOISE,
                        f"layer {name} ({kind})",
                        f"{kind} is called with training=True: any caller that does not pass "
                        "training=False (Beam's TF handler, a hand-written server, a SavedModel "
                        "traced from it) gets random scores; this job passes training=False, "
                        "which masks it here",
                    )
                )
            else:
                found.append(
                    ModelWarning(
                        TRAINING_MODE,
                        f"layer {name} ({kind})",
                        f"{kind} is called with training=True: any caller that does not pass "
                        "training=False gets scores that depend on the batch (batch "
                        "statistics); this job passes training=False, which masks it here",
                    )
                )
            break
    return found


def _node_map(nodes) -> dict:
    return {node.name: node for node in nodes}


def _source(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _constant_seed(node, nodes: dict, seen: set, inputs=None) -> bool:
    """Whether every input a node depends on is a constant (a fixed seed: deterministic)."""
    for name in node.input if inputs is None else inputs:
        if name.startswith("^"):
            continue
        source = _source(name)
        if source in seen:
            continue
        seen.add(source)
        parent = nodes.get(source)
        # A function argument (a captured variable, a resource) or a variable read: state.
        if parent is None or parent.op in ("ReadVariableOp", "VarHandleOp", "Placeholder"):
            return False
        if parent.op != "Const" and not _constant_seed(parent, nodes, seen):
            return False
    return True


def _reduces_over_batch(node, nodes: dict) -> bool:
    """A Mean whose constant reduction axes include 0, the batch axis."""
    if node.op != "Mean" or len(node.input) < 2:
        return False
    axes = nodes.get(_source(node.input[1]))
    if axes is None or axes.op != "Const":
        return False
    return 0 in np.atleast_1d(tf.make_ndarray(axes.attr["value"].tensor)).tolist()


def _graph_node_warnings(nodes) -> list[ModelWarning]:
    found = []
    by_name = _node_map(nodes)
    for node in nodes:
        place = f"{node.name} ({node.op})"
        # A stateless op's first input is the output shape; the rest are its seed (or key).
        seeded_from_state = (
            node.op.startswith("StatelessRandom")
            and node.op != "StatelessRandomGetKeyCounter"
            and not _constant_seed(node, by_name, set(), node.input[1:])
        )
        if node.op in _STATEFUL_RANDOM or seeded_from_state:
            found.append(
                ModelWarning(
                    RANDOM_OP,
                    place,
                    f"{node.op} draws random numbers at inference (active dropout or noise, "
                    "seeded from state): the same image scores differently on every call",
                )
            )
        elif _reduces_over_batch(node, by_name):
            found.append(
                ModelWarning(
                    BATCH_STATISTICS,
                    place,
                    "a mean over the batch axis (batch statistics: BatchNorm traced in training "
                    "mode, normalisation across the batch): each image's scores depend on the "
                    "other images in its batch",
                )
            )
        elif node.op in _FUSED_BATCH_NORM and node.attr["is_training"].b:
            found.append(
                ModelWarning(
                    BATCH_STATISTICS,
                    place,
                    "batch normalisation runs with is_training=True: each image's scores "
                    "depend on the other images in its batch",
                )
            )
    return found


def graph_warnings(graph_def) -> list[ModelWarning]:
    """Random ops and batch statistics in a GraphDef and its function library, one warning per
    kind and name scope (a BatchNorm's mean and variance are one finding, not two)."""
    found = _graph_node_warnings(list(graph_def.node))
    for function in graph_def.library.function:
        found += _graph_node_warnings(list(function.node_def))
    unique = {}
    for warning in found:
        scope = warning.where.rsplit("/", 1)[0]
        unique.setdefault((warning.kind, scope), warning)
    return list(unique.values())


def dtype_warnings(input_dtype: str) -> list[ModelWarning]:
    if input_dtype not in INTEGER_INPUTS:
        return []
    return [
        ModelWarning(
            INTEGER_INPUT,
            "model input",
            f"the model takes {input_dtype} pixels: it gets the resized pixels (normalisation "
            f"none) rounded to {input_dtype}; a caller that sends normalised floats gets "
            "other scores",
        )
    ]


def output_warnings(scores: np.ndarray) -> list[ModelWarning]:
    """Whether rows of scores look like probability vectors (in [0, 1], summing to 1)."""
    scores = np.asarray(scores, np.float64)
    if not np.all(np.isfinite(scores)):
        return []  # non-finite scores are the reconciliation's finding, not this one
    in_range = bool(np.all((scores >= 0) & (scores <= 1)))
    sums_to_one = bool(np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))
    if in_range and sums_to_one:
        return []
    return [
        ModelWarning(
            NOT_PROBABILITIES,
            "model output",
            "the scores are not probability vectors (values outside [0, 1] or rows not summing "
            "to 1: logits?): --atol/--rtol apply to these raw values and top-k scores are not "
            "probabilities",
        )
    ]


def call_warnings(model, height: int, width: int) -> list[ModelWarning]:
    """The output check: one call on a black image, a batch of one (the model's own call).

    A model may refuse that image or that batch size and still score real batches: its
    failure is a finding here, never the launch's end (the job isolates it per element).
    """
    try:
        scores = model.score(np.zeros((1, height, width, 3), np.float32))
    except Exception as e:  # noqa: BLE001 - any failure of the model is this warning
        return [
            ModelWarning(
                MODEL_CALL_FAILED,
                "model output",
                f"the model raised {type(e).__name__} on one black image, a batch of one "
                f"({error_detail(e)[:200]}): its scores could not be checked; any image or batch "
                "it fails on becomes a model_error record, any sampled image it fails on alone "
                "a reference_error comparison",
            )
        ]
    return output_warnings(scores)


def inspect(model) -> list[ModelWarning]:
    """Every warning for a loaded ``transforms.core.model_reading.ImageModel``.

    The output check calls the model once on a black image (the model's own call), so it
    sees what kind of scores the job will get without reading any input.
    """
    found = []
    graph_def = model.graph_def
    if model.kind == "keras":
        found += keras_warnings(model.handle)
        # Our own inference call as a graph (the trace is cached, so scoring reuses it).
        graph_def = model.score_fn.get_concrete_function().graph.as_graph_def()
    if graph_def is not None:
        found += graph_warnings(graph_def)
    found += dtype_warnings(model.input_dtype)
    height, width = model.input_size
    if height and width:
        found += call_warnings(model, height, width)
    return found
