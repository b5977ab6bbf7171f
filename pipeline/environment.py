"""The machine a run scored on, for ``run.json``'s ``environment``: what moves float results.

CPU model and its SIMD flags (AVX2 vs AVX-512 GEMM kernels give different last bits), GPUs,
thread settings (1 vs 2 intra-op threads changed batch-of-1 outputs) and the runner. Recorded
on the launching process: on a distributed runner the workers' machines may differ.
"""

from __future__ import annotations

import os
import platform

# The CPU flags that select numeric kernels (oneDNN/Eigen dispatch on these); the other ~100
# flags say nothing about scores.
_NUMERIC_FLAG_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4", "vnni")
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
)


def _cpuinfo() -> tuple[str | None, list[str]]:
    model, flags = None, []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name == "model name" and model is None:
                    model = value.strip()
                elif name == "flags" and not flags:
                    flags = value.split()
                if model and flags:
                    break
    except OSError:  # not Linux: the platform module still names the processor
        pass
    return model or platform.processor() or None, flags


def _gpus() -> list[dict]:
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        gpus.append(
            {
                "name": details.get("device_name", device.name),
                "compute_capability": ".".join(map(str, capability)) if capability else None,
            }
        )
    return gpus


def _threads() -> dict:
    import tensorflow as tf

    threads = {
        "cpu_count": os.cpu_count(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
    for name in _THREAD_VARIABLES:
        threads[name] = os.environ.get(name)
    return threads


def environment(runner: str) -> dict:
    """The ``environment`` record of run.json.

    Returns:
      {cpu_model, cpu_flags (the numeric ones, sorted), machine, gpus [{name,
      compute_capability}], threads {cpu_count, tf_intra_op_threads, tf_inter_op_threads and
      the thread environment variables}, runner}.
    """
    model, flags = _cpuinfo()
    return {
        "cpu_model": model,
        "cpu_flags": sorted(f for f in set(flags) if f.startswith(_NUMERIC_FLAG_PREFIXES)),
        "machine": platform.machine(),
        "gpus": _gpus(),
        "threads": _threads(),
        "runner": runner,
    }
