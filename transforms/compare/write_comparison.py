"""WriteComparison: a run comparison's outputs into ``DIR``.

```
DIR/summary.json
DIR/elements/part-*.jsonl   (one record per key that differs or only one run has)
DIR/report.html
```
"""

from __future__ import annotations

import json
import posixpath

import apache_beam as beam

from transforms.score.write import WriteJsonLines, write_text

# What a comparison writes: all that --overwrite may remove.
LAYOUT = ("summary.json", "elements", "report.html")


def _write_summary_files(summary: dict, directory: str) -> str:
    from transforms.report.comparison_page import render_compare_report

    write_text(
        posixpath.join(directory, "summary.json"),
        json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n",
    )
    write_text(posixpath.join(directory, "report.html"), render_compare_report(summary))
    return directory


class WriteComparison(beam.PTransform):
    """ComparePredictions' outputs -> ``DIR/{summary.json, elements/part-*.jsonl, report.html}``.

    Args:
      directory: the comparison's ``--output``.
      num_shards: element shards; 0 lets the runner choose.
    """

    def __init__(self, directory: str, num_shards: int = 0):
        super().__init__()
        self._directory = directory
        self._num_shards = num_shards

    def expand(self, compared):
        compared["elements"] | "WriteElements" >> WriteJsonLines(
            posixpath.join(self._directory, "elements"), self._num_shards
        )
        return compared["summary"] | "WriteSummaryAndReport" >> beam.Map(
            _write_summary_files, self._directory
        )
