# Custom SDK container for Dataflow workers: Beam's own Python 3.11 SDK image with this job's
# pinned dependencies and the package preinstalled.
#
# Why: with --setup_file every worker pip-installs TensorFlow, tfx-bsl and the rest at start-up
# (minutes per worker, and it needs internet access from the workers); with this image a worker
# starts with everything in place. Required for GPU workers (see README, "Running on Dataflow").
#
# NOT BUILT OR TESTED HERE: the development machine has no Docker engine. tests/test_packaging.py
# only checks that the base image matches the installed Beam and Python and that the pins below
# match setup.py. Build and push (Artifact Registry) with:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPOSITORY/batch-score:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPOSITORY/batch-score:0.1.0
# then run the job with --sdk_container_image=<that tag> and without --setup_file.
#
# GPU workers: build with the CUDA build of TensorFlow (same version), e.g.
#   docker build --build-arg 'TENSORFLOW=tensorflow[and-cuda]==2.21.0' -t .../batch-score:0.1.0-gpu .
# Dataflow installs the NVIDIA driver on the host (install-nvidia-driver in the accelerator
# option); the CUDA libraries come from the pip wheels.

# Must equal the launcher's Beam version and Python minor version: Dataflow requires the SDK in
# the container to match the SDK that built the job (pickled DoFns, coders, the runner API).
FROM apache/beam_python3.11_sdk:2.77.0

ARG TENSORFLOW="tensorflow==2.21.0"

# The same pins as setup.py's REQUIRED (tests/test_packaging.py checks they agree). A layer of
# their own, so rebuilding after a code change does not reinstall TensorFlow.
RUN pip install --no-cache-dir \
        "${TENSORFLOW}" \
        "apache-beam[gcp]==2.77.0" \
        "tfx-bsl==1.21.0" \
        "tensorflow-serving-api>=2.19,<2.20" \
        "numpy>=1.26,<3" \
        "pillow>=11,<13" \
        "pyarrow>=14" \
        "matplotlib>=3.8,<4"

WORKDIR /opt/batch-score
COPY setup.py pyproject.toml ./
COPY pipeline/ pipeline/
COPY transforms/ transforms/
# --no-deps: everything it needs is installed above, with the same pins; pip must not resolve
# again (and must not upgrade what the Beam image ships).
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import pipeline.run, transforms.scoring"

# The ENTRYPOINT stays the base image's /opt/apache/beam/boot: Dataflow starts the SDK harness
# through it.
