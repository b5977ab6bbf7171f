"""Packaging for the batch image-scoring pipeline.

The same file is Dataflow's ``--setup_file``: workers install exactly these pins.
"""

import setuptools

REQUIRED = [
    "tensorflow==2.21.0",
    "apache-beam[gcp]==2.77.0",
    "tfx-bsl==1.21.0",
    "tensorflow-serving-api>=2.19,<2.20",
    "numpy>=1.26,<3",
    "pillow>=11,<13",
    "pyarrow>=14",
    "matplotlib>=3.8,<4",
]

EXTRAS = {
    # scikit-learn ships the handwritten-digits data the embedded demo is built from.
    "demo": ["scikit-learn>=1.4,<2"],
    "test": ["scikit-learn>=1.4,<2", "pytest>=8", "pytest-xdist>=3", "ruff>=0.6"],
    # Mutation testing of the pure modules (README, Development).
    "mutation": ["mutmut==3.8.1"],
}

setuptools.setup(
    name="batch-score",
    version="0.1.0",
    description="Batch image scoring on Apache Beam with per-element reconciliation",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(
        include=["pipeline", "pipeline.*", "transforms", "transforms.*"]
    ),
    install_requires=REQUIRED,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "batch-score = pipeline.console_scripts:batch_score",
            "batch-compare = pipeline.console_scripts:batch_compare",
        ]
    },
)
