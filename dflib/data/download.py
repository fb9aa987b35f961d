"""Download the reference Kaggle dataset with ``kagglehub`` (an optional dependency).

Nothing in the suite calls this by default: the notebooks run on the embedded synthetic sample
unless you pass ``data_dir``. Run ``dflib download`` (or call :func:`download_kaggle`) on a
machine with internet access and Kaggle credentials, then pass the printed path as ``data_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

from dflib.data.credentials import CREDENTIALS_HELP as _CREDENTIALS_HELP
from dflib.data.credentials import find_kaggle_credentials
from dflib.data.layout import find_root

KAGGLE_DATASET = "manjilkarki/deepfake-and-real-images"


class DownloadError(RuntimeError):
    """The dataset could not be downloaded; the message says why and what to do."""


def _is_network_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    network_names = {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "URLError",
        "NewConnectionError",
        "MaxRetryError",
        "NameResolutionError",
        "gaierror",
        "socket.gaierror",
        "TimeoutError",
    }
    hints = (
        "name or service not known",
        "temporary failure in name resolution",
        "failed to establish a new connection",
        "network is unreachable",
        "connection refused",
        "max retries exceeded",
        "timed out",
        "nodename nor servname",
    )
    return bool(names & network_names) or any(h in text for h in hints)


def _is_auth_error(exc: BaseException) -> bool:
    text = " ".join(f"{type(e).__name__} {e}" for e in _chain(exc)).lower()
    return any(
        h in text for h in ("unauthenticated", "unauthorized", "401", "403", "credentials", "forbidden", "kaggle.json")
    )


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def download_kaggle(handle: str = KAGGLE_DATASET, *, force: bool = False) -> Path:
    """Download (or reuse kagglehub's cached copy of) the dataset; return its ``Dataset`` folder.

    Credentials: ``KAGGLE_USERNAME``/``KAGGLE_KEY``, ``~/.kaggle/kaggle.json`` or, on Colab, the
    notebook's secrets of those names (:mod:`dflib.data.credentials`). The files land in kagglehub's cache
    (``~/.cache/kagglehub``, or ``$KAGGLEHUB_CACHE``);
    about 1.7 GB. The layout is validated before the path is returned.
    Raises :class:`DownloadError` with the fix when kagglehub is missing, the machine is
    offline, or the credentials are missing or wrong.
    """
    try:
        import kagglehub
    except ImportError:
        raise DownloadError(
            "downloading the Kaggle dataset needs the optional package kagglehub: "
            "pip install 'dflib[kaggle]' (or pip install kagglehub). Alternatively download "
            f"{handle} by hand from kaggle.com and pass its folder as data_dir."
        ) from None
    source = find_kaggle_credentials()  # environment, kaggle.json, or Colab's secrets (copied to the environment)
    try:
        path = kagglehub.dataset_download(handle, force_download=force)
    except Exception as e:  # kagglehub raises requests/urllib/its own errors; classify them
        if _is_network_error(e):
            raise DownloadError(
                f"cannot reach Kaggle to download {handle} (this machine looks offline: "
                f"{type(e).__name__}: {e}). Download it on a machine with internet access and "
                "copy the Dataset folder here, or use the embedded sample (leave data_dir empty)."
            ) from e
        if _is_auth_error(e):
            used = f"credentials from {source}" if source else "no credentials found"
            raise DownloadError(f"Kaggle refused the download of {handle} ({used}): {e}. {_CREDENTIALS_HELP}") from e
        raise DownloadError(f"downloading {handle} failed: {type(e).__name__}: {e}") from e
    return find_root(Path(os.fspath(path)))
