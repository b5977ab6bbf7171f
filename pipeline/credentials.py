"""One credentials check before any ``gs://`` path is touched, answered in seconds offline.

Without credentials Beam's GCS client connects anonymously and every request then retries for
minutes (about 200 s a file, serially, with no network): the job looks hung, then fails with a
traceback. So the tools look first, where Google's own libraries would (``google.auth.default``'s
order), but never wait long: the ``GOOGLE_APPLICATION_CREDENTIALS`` file, gcloud's application
default credentials file, then the metadata server of a Google Cloud VM, probed once with a
short timeout (skipped where ``NO_GCE_CHECK`` is set).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pipeline.flags import UsageError

METADATA_TIMEOUT_S = 1.0
_HOW = (
    "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run "
    "`gcloud auth application-default login`, or run on a Google Cloud VM with a service account"
)


def _on_google_cloud() -> bool:
    """Whether a metadata server answers (a GCE VM, GKE, Cloud Run): one bounded probe."""
    from google.auth import environment_vars
    from google.auth.compute_engine import _metadata
    from google.auth.transport import requests

    if os.environ.get(environment_vars.NO_GCE_CHECK, "").lower() == "true":
        return False
    try:
        return _metadata.ping(requests.Request(), timeout=METADATA_TIMEOUT_S, retry_count=1)
    except Exception:  # noqa: BLE001 - no answer of any kind is no metadata server
        return False


def credentials_problem() -> str | None:
    """Why ``gs://`` paths cannot be reached (one line with the fix), or None."""
    try:
        from google.auth import _cloud_sdk, environment_vars
    except ImportError:  # without google-auth, Beam has no GCS filesystem to call either
        return None
    explicit = os.environ.get(environment_vars.CREDENTIALS)
    if explicit:
        if os.path.isfile(explicit):
            return None
        return (
            f"GOOGLE_APPLICATION_CREDENTIALS names {explicit!r}, which is not a file; "
            "point it at a service account key file"
        )
    if os.path.isfile(_cloud_sdk.get_application_default_credentials_path()):
        return None
    if _on_google_cloud():
        return None
    return f"no Google Cloud credentials found; {_HOW}"


def check_gcs_credentials(named: Iterable[tuple[str, str | None]]) -> None:
    """Refuses, before any work, when a ``(flag, path)`` is on ``gs://`` and no credentials
    would reach it.

    Raises:
      UsageError: one line naming the first such flag and how to authenticate.
    """
    remote = [(flag, path) for flag, path in named if path and path.startswith("gs://")]
    if not remote:
        return
    problem = credentials_problem()
    if problem is not None:
        flag, path = remote[0]
        raise UsageError(f"{flag} {path!r} is on Google Cloud Storage, but {problem}")
