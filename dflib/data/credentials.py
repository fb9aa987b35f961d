"""Kaggle credentials for ``dflib download``: the places kagglehub reads, plus Colab's secrets.

kagglehub reads ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` from the environment, else
``kaggle.json`` in ``$KAGGLE_CONFIG_DIR`` (default ``~/.kaggle``). On Colab the natural place is
the notebook's *secrets* (the key icon in the left bar): two secrets named ``KAGGLE_USERNAME``
and ``KAGGLE_KEY`` with notebook access switched on. :func:`find_kaggle_credentials` looks in
that order and copies Colab's secrets into this process's environment, where every kagglehub
version finds them. It never prints or stores a key.
"""

from __future__ import annotations

import os
from pathlib import Path

USERNAME, KEY = "KAGGLE_USERNAME", "KAGGLE_KEY"

CREDENTIALS_HELP = (
    "Kaggle needs credentials: create an API token at kaggle.com -> Settings -> API (it downloads kaggle.json), then "
    "save it as ~/.kaggle/kaggle.json or set KAGGLE_USERNAME and KAGGLE_KEY (on Colab: add two secrets of those "
    "names with the key icon in the left bar and switch notebook access on), and run again."
)


def kaggle_json() -> Path:
    """Where kagglehub looks for ``kaggle.json``."""
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"


def _colab_secrets() -> tuple[str, str] | None:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        username, key = userdata.get(USERNAME), userdata.get(KEY)
    except Exception:  # SecretNotFoundError, NotebookAccessError, ...: not set up, or access not granted
        return None
    return (username, key) if username and key else None


def find_kaggle_credentials() -> str | None:
    """Where the Kaggle credentials come from (a short description), or None when there are none.

    Raises ``ValueError`` when only one of ``KAGGLE_USERNAME`` / ``KAGGLE_KEY`` is set (kagglehub
    would silently ignore the pair and fail later with a less helpful message).
    """
    have = [name for name in (USERNAME, KEY) if os.environ.get(name)]
    if len(have) == 2:
        return "the environment variables KAGGLE_USERNAME and KAGGLE_KEY"
    if len(have) == 1:
        other = KEY if have[0] == USERNAME else USERNAME
        raise ValueError(
            f"{have[0]} is set but {other} is not; set both (from your kaggle.json: "
            f"username and key), or unset {have[0]} to use ~/.kaggle/kaggle.json"
        )
    if kaggle_json().is_file():
        return str(kaggle_json())
    secrets = _colab_secrets()
    if secrets is not None:
        os.environ[USERNAME], os.environ[KEY] = secrets  # this process only, for kagglehub
        return "Colab secrets KAGGLE_USERNAME and KAGGLE_KEY"
    return None
