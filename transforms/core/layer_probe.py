"""Where batch and single part ways: every layer's row of one element, scored two ways.

The probe runs the model on two inputs in one traced call (``tf.function``, never eager): side
``a``, the element in its batch (at its position, with its padding), and side ``b``, its
reference (the element alone, or a padded reference batch). Every layer's output is compared
row against row inside the graph and reduced to three scalars as it is computed, so only
scalars leave the graph and no layer's outputs are ever held all at once:

- ``max_abs_diff``: max |a - b| over the layer's row;
- ``max_rel_diff``: max |a - b| / |b|;
- ``tolerance_ratio``: max |a - b| / (atol + rtol * |b|), the job's own elementwise rule:
  above 1, the row is beyond tolerance.

Layers are a Keras model's functional operations (a multi-output ``keras.Model`` over every
operation's output), or a SavedModel signature's ops (the signature's call inlined by grappler,
imported with the loaded variables, so the ops, weights and state are the job's), grouped into
layers by the name scope the ops carry (``.../bn_3/FusedBatchNormV3`` -> ``bn_3``). Only
batch-major float outputs (a row per element) are compared; a batch reduction such as a
batch mean has no row and is skipped, its consumer is compared.

**The first divergent layer** is the first node, in topological order, that is a jump:
``tolerance_ratio > 1`` (beyond tolerance) and ``tolerance_ratio > JUMP * inputs_ratio``, where
``inputs_ratio`` is the largest ``tolerance_ratio`` of the compared nodes feeding it (0 for the
model input). Float noise that every layer after a noisy one inherits keeps about its inputs'
ratio; a layer that makes the rows part ways (batch statistics, a random mask, a cancellation
that turns ulp noise into a large relative error) multiplies it. Depth is the layer's distance
from the model input in the layer graph (the input is depth 0: inputs that already differ mean
the preprocessing differs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import tensorflow as tf

from transforms.core.common import SCORE_TENSOR_SIGNATURE
from transforms.core.comparisons import LayerDiff, LayerProfile
from transforms.core.diagnosis import neighbours
from transforms.core.model_reading import pad_to as pad_to_size
from transforms.core.preprocess import to_model_dtype
from transforms.core.records import error_detail

JUMP = 10.0  # how many times its inputs' tolerance ratio a node must reach to be a jump
ALL_LAYERS = "all_layers"  # one call fetching every layer's output
LAYER_BY_LAYER = "layer_by_layer"  # each layer in its own call (the job's fusions kept)
# Ops that only copy, read or restate a tensor: comparing them adds rows, never information.
_SKIPPED_OPS = frozenset(
    {"Identity", "IdentityN", "StopGradient", "ReadVariableOp", "Const", "Placeholder", "NoOp"}
)


@dataclasses.dataclass(frozen=True)
class _Node:
    """One compared output: its layer, op type and the compared nodes feeding it."""

    layer: str
    op: str
    parents: tuple[int, ...]


class LayerGraph:
    """A loaded model's layer outputs, traceable on any input.

    ``outputs(images, indices)`` builds, inside a traced call, the outputs of the nodes at
    ``indices`` (None: all), and only what they need: a single node's call keeps every fusion
    the job's own call gets up to that node.
    """

    def __init__(self, nodes: list[_Node], outputs, input_shape, input_dtype: str):
        self.nodes = nodes
        self._outputs = outputs
        self._input_dtype = input_dtype
        # Traced with the job's own input signature (any batch size): a static batch size
        # lets grappler and oneDNN choose other kernels than the job's call gets.
        image = tf.TensorSpec([None, *input_shape[1:]], tf.float32)
        row = tf.TensorSpec([], tf.int32)
        tolerance = tf.TensorSpec([], tf.float64)
        self._signature = [image, row, image, row, tolerance, tolerance]
        self._probes: dict = {}
        self.depths = _layer_depths(nodes)

    def _probe(self, indices: tuple[int, ...] | None):
        if indices not in self._probes:

            def compare(a, row_a, b, row_b, atol, rtol):
                # Side a first, as the job scores the batch before its reference: stateful
                # ops (a random generator's state) run in that order too.
                outputs_a = self._outputs(to_model_dtype(a, self._input_dtype), indices)
                outputs_b = self._outputs(to_model_dtype(b, self._input_dtype), indices)
                rows = [
                    _row_stats(x, row_a, y, row_b, atol, rtol)
                    for x, y in zip(outputs_a, outputs_b, strict=True)
                ]
                return tf.stack(rows)

            self._probes[indices] = tf.function(
                compare, input_signature=self._signature, autograph=False
            )
        return self._probes[indices]

    def compare(
        self,
        a: np.ndarray,
        row_a: int,
        b: np.ndarray,
        row_b: int,
        atol: float,
        rtol: float,
        indices: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """[nodes, 4] float64: max_abs_diff, max_rel_diff, tolerance_ratio, compared (1/0)."""
        return (
            self._probe(indices)(
                tf.constant(a, tf.float32),
                tf.constant(row_a),
                tf.constant(b, tf.float32),
                tf.constant(row_b),
                tf.constant(atol, tf.float64),
                tf.constant(rtol, tf.float64),
            )
            .numpy()
            .astype(np.float64)
        )


def _row_stats(x, row_x, y, row_y, atol, rtol):
    """The three scalars of one node, or -1s (and compared 0) where it has no row per element:
    its leading dimension, traced for any batch size, is not the batch's (unknown)."""
    if (
        not x.dtype.is_floating
        or x.shape.rank is None
        or x.shape.rank < 2  # a per-element row has features: a vector may be a statistic
        or x.shape[0] is not None
        or y.shape[0] is not None
    ):
        return tf.constant([-1.0, -1.0, -1.0, 0.0], tf.float64)
    a = tf.cast(x[row_x], tf.float64)
    b = tf.cast(y[row_y], tf.float64)
    # Equal where both are the same value (inf == inf) or both NaN: the rows agree there,
    # however broken; one NaN against a number is infinitely apart.
    equal = tf.equal(a, b) | (tf.math.is_nan(a) & tf.math.is_nan(b))
    diff = tf.where(equal, tf.zeros_like(a), tf.abs(a - b))
    diff = tf.where(tf.math.is_nan(diff), tf.constant(np.inf, tf.float64), diff)
    magnitude = tf.abs(b)
    rel = tf.math.divide_no_nan(diff, tf.maximum(magnitude, np.finfo(np.float32).tiny))
    allowed = atol + rtol * magnitude
    ratio = tf.where(
        tf.equal(diff, 0.0), tf.zeros_like(diff), diff / allowed
    )  # zero tolerance: any difference is infinitely beyond it

    def top(t):
        return tf.maximum(tf.reduce_max(tf.reshape(t, [-1])), tf.constant(0.0, tf.float64))

    return tf.stack([top(diff), top(rel), top(ratio), tf.constant(1.0, tf.float64)])


def _layer_depths(nodes: list[_Node]) -> dict[str, int]:
    """Each layer's longest distance from the model input in the layer graph; a layer's
    parents are the layers of the nodes feeding its nodes (layers in first-seen order)."""
    depths: dict[str, int] = {}
    parents: dict[str, set[str]] = {}
    for node in nodes:
        parents.setdefault(node.layer, set()).update(
            nodes[p].layer for p in node.parents if nodes[p].layer != node.layer
        )
    for layer, above in parents.items():
        known = [depths[p] for p in above if p in depths]  # a later layer: a cycle of scopes
        depths[layer] = 1 + max(known) if known else 0
    return depths


def keras_layer_graph(net, input_dtype: str) -> LayerGraph:
    """Every single-node operation of a functional Keras model, called as the job calls it
    (``training=False``)."""
    import keras

    operations = [op for op in net.operations if len(op._inbound_nodes) == 1]
    operations = [op for op in operations if isinstance(op.output, keras.KerasTensor)]
    index = {id(op): i for i, op in enumerate(operations)}
    nodes = []
    for op in operations:
        inbound = op._inbound_nodes[0].input_tensors
        parents = {index.get(id(t._keras_history.operation)) for t in inbound}
        nodes.append(_Node(op.name, type(op).__name__, tuple(sorted(parents - {None}))))
    models: dict = {}

    def outputs(images, indices):
        if indices not in models:
            chosen = range(len(operations)) if indices is None else indices
            models[indices] = keras.Model(net.inputs, [operations[i].output for i in chosen])
        out = models[indices](images, training=False)
        return out if isinstance(out, list | tuple) else [out]

    return LayerGraph(nodes, outputs, net.inputs[0].shape, input_dtype)


def _layer_names(op_names: list[str]) -> list[str]:
    """Layer names from op names: the scope segment after the prefix all ops share
    (``StatefulPartitionedCall/model/net/bn_3/FusedBatchNormV3`` -> ``bn_3``)."""
    scopes = [name.split("/") for name in op_names]
    prefix = os.path.commonprefix([s[:-1] for s in scopes]) if len(scopes) > 1 else []
    return [s[len(prefix)] if len(s) > len(prefix) else s[-1] for s in scopes]


def signature_layer_graph(fn, input_dtype: str) -> LayerGraph:
    """A SavedModel signature's ops: the call inlined, then imported on any input with the
    loaded variables (its captures) mapped in, so weights and state are the job's own."""
    from tensorflow.python.framework.convert_to_constants import (
        _run_inline_graph_optimization,
    )

    graph_def = _run_inline_graph_optimization(fn, False, True)
    (input_placeholder,) = [t for t in fn.inputs if t.dtype != tf.resource]
    captures = {internal.name: external for external, internal in fn.graph.captures}
    scratch = tf.Graph()
    with scratch.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    input_op = input_placeholder.op.name
    from_input = {input_op}  # ops whose value depends on the model input
    chosen: list[tf.Operation] = []
    for op in scratch.get_operations():  # import order is topological
        if op.name == input_op:
            chosen.append(op)
            continue
        if not any(t.op.name in from_input for t in op.inputs):
            continue  # weights, constants, shapes: no row of an element
        from_input.add(op.name)
        if (
            op.type not in _SKIPPED_OPS
            and not op.name.startswith("Func/")
            and op.outputs
            and op.outputs[0].dtype.is_floating
            # A known leading dim here (the input's is None) is a reduction over the batch.
            and (op.outputs[0].shape.rank is None or op.outputs[0].shape[0] is None)
        ):
            chosen.append(op)
    position = {op.name: i for i, op in enumerate(chosen)}
    # The compared nodes each op depends on directly (through uncompared ops), in one pass in
    # import order, which is topological.
    feeding: dict[str, frozenset[int]] = {}
    for op in scratch.get_operations():
        found: set[int] = set()
        for t in op.inputs:
            source = t.op.name
            found |= {position[source]} if source in position else feeding.get(source, set())
        feeding[op.name] = frozenset(found)
    layers = ["input"] + _layer_names([op.name for op in chosen[1:]])
    nodes = [
        _Node(layer, op.type, tuple(sorted(feeding[op.name])))
        for layer, op in zip(layers, chosen, strict=True)
    ]
    fetches = [op.outputs[0].name for op in chosen]

    def outputs(images, indices):
        graph = tf.compat.v1.get_default_graph()
        input_map = {name: graph.capture(external) for name, external in captures.items()}
        input_map[input_placeholder.name] = images
        # Grappler prunes what the fetches do not need: a single fetch is a pruned call.
        chosen = fetches if indices is None else [fetches[i] for i in indices]
        return tf.graph_util.import_graph_def(
            graph_def, input_map=input_map, return_elements=chosen, name="probe"
        )

    return LayerGraph(nodes, outputs, input_placeholder.shape, input_dtype)


def layer_graph(model) -> LayerGraph:
    """The layer graph of a loaded ``model_reading.ImageModel``; built once per model."""
    cached = getattr(model, "_layer_graph", None)
    if cached is not None:
        return cached
    if model.kind == "keras":
        graph = keras_layer_graph(model.handle, model.input_dtype)
    else:
        name = SCORE_TENSOR_SIGNATURE if model.kind == "bundle" else "serving_default"
        graph = signature_layer_graph(model.handle.signatures[name], model.input_dtype)
    model._layer_graph = graph  # the model is shared per process: so is its layer graph
    return graph


def profile(
    graph: LayerGraph,
    a: np.ndarray,
    row_a: int,
    b: np.ndarray,
    row_b: int,
    atol: float,
    rtol: float,
    reference: str,
    key: str,
    failed: bool = True,
) -> LayerProfile:
    """Row ``row_a`` of the call on ``a`` against row ``row_b`` of the call on ``b``, layer by
    layer, and the first divergent layer (see the module docstring)."""
    start = time.perf_counter()
    stats = graph.compare(a, row_a, b, row_b, atol, rtol)
    method = ALL_LAYERS
    first = _first_divergent(graph, stats)
    if first is None and failed:
        # Fetching every layer stops grappler fusing a layer with its consumer (MatMul +
        # BiasAdd + Add into one kernel), and a fused kernel may be where the rows part:
        # each layer in its own call, as the job's call computes it.
        method = LAYER_BY_LAYER
        for i in np.flatnonzero(stats[:, 3]):
            stats[i] = graph.compare(a, row_a, b, row_b, atol, rtol, indices=(int(i),))[0]
        first = _first_divergent(graph, stats)
    nodes = graph.nodes
    diffs = np.where(stats[:, 3] > 0, stats[:, 0], 0.0)
    last_of_layer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if stats[i, 3]:
            last_of_layer[node.layer] = i  # a layer's output: its last compared node
    layers = tuple(
        _diff(nodes[i], stats[i], graph, diffs)
        for layer, i in sorted(last_of_layer.items(), key=lambda item: item[1])
    )
    return LayerProfile(
        reference=reference,
        key=key,
        first_divergent_layer=(
            None if first is None else _diff(nodes[first], stats[first], graph, diffs)
        ),
        layers=layers,
        # Every node before it: the float noise the rows carried up to the jump.
        agreed_before=None if first is None else float(max(diffs[:first], default=0.0)),
        failed=failed,
        method=method,
        seconds=time.perf_counter() - start,
    )


def _first_divergent(graph: LayerGraph, stats: np.ndarray) -> int | None:
    """The index of the first compared node that jumps (see the module docstring)."""
    ratios = np.where(stats[:, 3] > 0, stats[:, 2], 0.0)
    for i, node in enumerate(graph.nodes):
        if not stats[i, 3]:
            continue
        inputs_ratio = max((ratios[p] for p in node.parents), default=0.0)
        if ratios[i] > 1.0 and ratios[i] > JUMP * inputs_ratio:
            return i
    return None


def _diff(node: _Node, stats: np.ndarray, graph: LayerGraph, diffs: np.ndarray) -> LayerDiff:
    return LayerDiff(
        name=node.layer,
        op=node.op,
        depth=graph.depths[node.layer],
        max_abs_diff=float(stats[0]),
        max_rel_diff=float(stats[1]),
        tolerance_ratio=float(stats[2]),
        inputs_max_abs_diff=float(max((diffs[p] for p in node.parents), default=0.0)),
    )


def in_its_batch(x: np.ndarray, position: int, rows: int, pad_to: int | None) -> np.ndarray:
    """x at its recorded position among ``rows`` real rows, zero-padded to ``pad_to`` as the
    job padded it. The job's own neighbours do not travel with a sampled element; the
    diagnosis probes' deterministic neighbours (made from x) stand in for them: the batch
    shape, x's row and the padding are the job's."""
    batch = np.concatenate([neighbours(x, position), x[None], neighbours(x, rows - position - 1)])
    return pad_to_size(batch, pad_to) if pad_to else batch


def alone(x: np.ndarray, pad_to: int | None) -> np.ndarray:
    """x as its single-element reference is called: alone, or in a zero-padded batch."""
    return pad_to_size(x[None], pad_to) if pad_to else x[None]


def profile_model(model, *args, **kwargs) -> LayerProfile | None:
    """``profile`` on a loaded ImageModel's layer graph, or None (logged) when its graph cannot
    be probed: the profile explains a failure, it must never fail the job."""
    try:
        return profile(layer_graph(model), *args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any model's graph: the comparison stands without
        # A model shared across processes (--model_copies) is a proxy without its graph.
        kind = getattr(model, "kind", type(model).__name__)
        logging.warning("layer probe skipped (%s model): %s", kind, error_detail(e))
        return None
