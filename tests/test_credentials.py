"""Where ``dflib download`` finds Kaggle credentials: environment, kaggle.json, Colab secrets (all faked)."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

from dflib.data import DownloadError, download_kaggle
from dflib.data.credentials import find_kaggle_credentials
from tests.conftest import make_dataset


@pytest.fixture
def clean(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    monkeypatch.setitem(sys.modules, "google.colab", None)  # not on Colab
    return tmp_path


def _colab(monkeypatch, secrets: dict[str, str]):
    class SecretNotFoundError(Exception):
        pass

    userdata = types.SimpleNamespace(
        get=lambda name: secrets[name] if name in secrets else (_ for _ in ()).throw(SecretNotFoundError(name))
    )
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_environment_then_file_then_colab_secrets(clean, monkeypatch):
    assert find_kaggle_credentials() is None
    _colab(monkeypatch, {"KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "s3cret"})
    assert find_kaggle_credentials() == "Colab secrets KAGGLE_USERNAME and KAGGLE_KEY"
    assert (os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"]) == ("ada", "s3cret")  # for kagglehub
    assert "environment variables" in find_kaggle_credentials()  # now they are set
    monkeypatch.delenv("KAGGLE_USERNAME")
    with pytest.raises(ValueError, match="KAGGLE_KEY is set but KAGGLE_USERNAME is not"):
        find_kaggle_credentials()
    monkeypatch.delenv("KAGGLE_KEY")
    file = clean / "kaggle" / "kaggle.json"
    file.parent.mkdir()
    file.write_text(json.dumps({"username": "ada", "key": "k"}))
    assert find_kaggle_credentials() == str(file)


def test_colab_secrets_missing_or_not_shared(clean, monkeypatch):
    _colab(monkeypatch, {"KAGGLE_USERNAME": "ada"})  # the key secret was never added
    assert find_kaggle_credentials() is None
    assert "KAGGLE_USERNAME" not in os.environ


def test_download_on_colab_hands_the_secrets_to_kagglehub(clean, monkeypatch):
    ds = make_dataset(clean / "cache", per_class=1)
    seen = {}

    def dataset_download(handle, force_download=False):
        seen.update(user=os.environ.get("KAGGLE_USERNAME"), key=os.environ.get("KAGGLE_KEY"))
        return str(clean / "cache")

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download))
    _colab(monkeypatch, {"KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "s3cret"})
    assert download_kaggle() == ds
    assert seen == {"user": "ada", "key": "s3cret"}


def test_refused_download_says_where_the_credentials_came_from(clean, monkeypatch):
    def refuse(handle, force_download=False):
        raise PermissionError("401 Client Error: Unauthorized")

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=refuse))
    with pytest.raises(DownloadError, match=r"no credentials found.*on Colab: add two secrets"):
        download_kaggle()
    monkeypatch.setenv("KAGGLE_USERNAME", "ada")
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    with pytest.raises(DownloadError, match="credentials from the environment variables"):
        download_kaggle()
