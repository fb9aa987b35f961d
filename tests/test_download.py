"""The Kaggle download helper, with kagglehub's network part replaced by fakes."""

from __future__ import annotations

import socket
import sys
import types

import pytest

from dflib.data import KAGGLE_DATASET, DownloadError, download_kaggle
from tests.conftest import make_dataset


def _fake_kagglehub(monkeypatch, behaviour):
    module = types.ModuleType("kagglehub")
    calls = []

    def dataset_download(handle, force_download=False):
        calls.append((handle, force_download))
        return behaviour()

    module.dataset_download = dataset_download
    monkeypatch.setitem(sys.modules, "kagglehub", module)
    return calls


def test_success_returns_validated_dataset_folder(monkeypatch, tmp_path):
    ds = make_dataset(tmp_path / "cache" / "versions" / "1", per_class=1)
    calls = _fake_kagglehub(monkeypatch, lambda: str(tmp_path / "cache" / "versions" / "1"))
    assert download_kaggle(force=True) == ds
    assert calls == [(KAGGLE_DATASET, True)]


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # import raises ImportError
    with pytest.raises(DownloadError, match=r"needs the optional package kagglehub: pip install 'dflib\[kaggle\]'"):
        download_kaggle()


def test_offline(monkeypatch):
    def offline():
        try:
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        except socket.gaierror as e:
            raise ConnectionError("Max retries exceeded with url: /api/v1/datasets") from e

    _fake_kagglehub(monkeypatch, offline)
    with pytest.raises(DownloadError, match="cannot reach Kaggle .* looks offline") as e:
        download_kaggle()
    assert "embedded sample" in str(e.value)


def test_missing_credentials(monkeypatch):
    class UnauthenticatedError(Exception):
        pass

    def refuse():
        raise UnauthenticatedError("User is not authenticated: 401 Client Error")

    _fake_kagglehub(monkeypatch, refuse)
    with pytest.raises(DownloadError, match="Kaggle refused .* ~/.kaggle/kaggle.json or set KAGGLE_USERNAME"):
        download_kaggle()


def test_other_failure_and_bad_layout(monkeypatch, tmp_path):
    _fake_kagglehub(monkeypatch, lambda: (_ for _ in ()).throw(ValueError("disk full")))
    with pytest.raises(DownloadError, match="failed: ValueError: disk full"):
        download_kaggle()
    (tmp_path / "weird").mkdir()
    _fake_kagglehub(monkeypatch, lambda: str(tmp_path))
    with pytest.raises(ValueError, match="no split folders"):
        download_kaggle()
