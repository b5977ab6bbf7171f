"""One loaded model per worker process (or N copies per worker, shared by its processes), and
the count of its loads.

``ModelConfig`` is the handle every DoFn that scores holds (pickled with it): through it the
RunInference handler and the per-element reference get the same loaded model, one per process
by default, or with ``model_copies`` the copies Beam's RunInference shares across a worker's
processes (``ModelHandler.model_copies``), found under its ``model_identifier``. Loading and
calling the model is ``transforms.core.model_reading``.
"""

from __future__ import annotations

import dataclasses
import uuid

from apache_beam.metrics import Metrics
from apache_beam.utils import multi_process_shared, shared

from transforms.core.common import METRICS_NAMESPACE
from transforms.core.model_reading import ImageModel, load_image_model, make_deterministic
from transforms.io.beam_private import model_copy_tags


class ModelLoadMetrics:
    """The ``batch_score/model_loads`` counter of one DoFn, in the style of Beam's RunInference
    (``_MetricsCollector.cache_load_model_metrics``): a model is acquired in DoFn.setup(),
    outside any bundle, where Beam drops metric updates, so the load is cached here and reported
    by the same DoFn's next bundle (``update_metrics_with_cache``).

    Each DoFn owns one, so no count lives in module or class state: a bundle that fails takes
    its own report with it, and a retry starts from the DoFn's own cache. A loaded instance is
    counted by the first DoFn that acquires it (``ImageModel.claim_load``), so a job's total is
    one per worker process that scored, not one per DoFn or bundle.
    """

    def __init__(self):
        self._cached_loads = 0

    def cache_load(self, model: ImageModel) -> None:
        if model.claim_load():
            self._cached_loads += 1

    def update_metrics_with_cache(self) -> None:
        if self._cached_loads:
            Metrics.counter(METRICS_NAMESPACE, "model_loads").inc(self._cached_loads)
            self._cached_loads = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What is needed to load a model and its preprocessing on a worker (picklable), and the
    handle through which every DoFn holding it shares the loaded model.

    ``image_size`` and ``normalization`` apply to plain models; a bundle carries its own.
    ``model_copies``: None loads one model per process (shared by its DoFns through
    ``_per_process``, a Beam ``Shared`` whose key travels with the pickled config); N lets
    Beam's RunInference load N copies per worker, shared by all its SDK processes
    (``multi_process_shared``) under ``identifier``, its ``model_identifier``.
    """

    path: str
    image_size: tuple[int, int] | None = None
    normalization: str | None = None
    deterministic: bool = False
    output_key: str | None = None
    model_copies: int | None = None
    identifier: str = dataclasses.field(
        default_factory=lambda: f"batch-score-model-{uuid.uuid4().hex}", compare=False
    )
    _per_process: shared.Shared = dataclasses.field(
        default_factory=shared.Shared, repr=False, compare=False
    )

    def _load_new(self) -> ImageModel:
        return load_image_model(self.path, self.output_key)

    def process_model(self) -> ImageModel:
        """This process's instance, shared by every holder of this config in the process (the
        launcher's preflight included, which an in-process runner's DoFns then reuse)."""
        return self._per_process.acquire(self._load_new, tag=self.path)

    def load(self, load_metrics: ModelLoadMetrics) -> ImageModel:
        """What RunInference's handler loads, its load cached on ``load_metrics``: the process's
        model, or with ``model_copies`` a copy of its own, which Beam keeps and shares."""
        if self.deterministic:
            make_deterministic()
        model = self._load_new() if self.model_copies else self.process_model()
        load_metrics.cache_load(model)
        return model

    def acquire(self, load_metrics: ModelLoadMetrics) -> ImageModel:
        """The model RunInference scores with in this process, for the other DoFns that score
        (the per-element reference): the same instance, or a proxy to Beam's first copy."""
        if not self.model_copies:
            return self.load(load_metrics)
        (first,) = model_copy_tags(self.identifier, 1)  # Beam's name for copy 0
        return multi_process_shared.MultiProcessShared(
            lambda: self.load(load_metrics), tag=first, always_proxy=True
        ).acquire()
