"""WriteComparison: a run comparison's outputs into ``DIR``.

```
DIR/summary.json
DIR/elements/part-*.jsonl   (one record per key that differs or only one run has)
```

``DIR/report.html`` is drawn from summary.json by the launcher once the job has finished
(``transforms.report.publish``): workers never import matplotlib.
"""

from __future__ import annotations

import json
import posixpath

import apache_beam as beam

from transforms.io.writers import WriteJsonLines, write_text


def _write_summary(summary: dict, directory: str) -> str:
    write_text(
        posixpath.join(directory, "summary.json"),
        json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n",
    )
    return directory


class WriteComparison(beam.PTransform):
    """ComparePredictions' outputs -> ``DIR/{summary.json, elements/part-*.jsonl}``.

    Args:
      directory: the comparison's ``--output``.
      num_shards: element shards; 0 lets the runner choose.

    The input is ComparePredictions' ``ComparisonResult``: ``elements`` and ``summary``.
    """

    def __init__(self, directory: str, num_shards: int = 0):
        super().__init__()
        self._directory = directory
        self._num_shards = num_shards

    def expand(self, compared):
        compared.elements | "WriteElements" >> WriteJsonLines(
            posixpath.join(self._directory, "elements"), self._num_shards
        )
        return compared.summary | "WriteSummary" >> beam.Map(_write_summary, self._directory)
