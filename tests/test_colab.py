"""The Colab route: one generated setup cell in every notebook, and a notebook run alone in an empty folder.

The fast tests check that the seven setup cells, the badges and README's table are what
``notebooks/course_bootstrap.py`` generates from ``pyproject.toml``'s URL, and that in a checkout
the cell installs nothing and changes nothing.

``test_a_notebook_alone_in_an_empty_folder_bootstraps_itself`` reproduces Colab as closely as a
CI machine without internet can. What is simulated, exactly:

* Colab's preinstalled stack: a fresh virtual environment (``python -m venv --without-pip``)
  whose only content is a ``.pth`` file pointing at a *filtered copy* (a folder of symlinks)
  of this test's own site-packages, with dflib's editable install left out: torch,
  torchvision, numpy, pip, setuptools, papermill and ipykernel are importable there, as on
  Colab, and ``dflib`` is not (checked before the run).
* GitHub: ``DFLIB_REPO_URL`` points at ``file://`` a git repository made from this checkout's
  files (committed or not), so the notebook's own ``git clone --depth 1`` is what fetches it.
* PyPI: no network. ``DFLIB_PIP_OPTIONS="--no-index --no-deps --no-build-isolation"`` makes the
  notebook's ``pip install -e '.[notebooks]'`` use the dependencies already importable (on
  Colab pip would fetch the missing ones, e.g. pytorchcv and simplejpeg).
* Colab's ``/content``: an empty temporary folder holding nothing but ``07_inference.ipynb``
  (the notebook that reads ``../models`` and ``../example``, so the move into the clone's
  ``notebooks/`` folder is tested too), executed by that environment's papermill with
  ``smoke=True`` on a kernel of that environment.

Not simulated: ``google.colab`` itself (``IN_COLAB`` is False), the GPU, and the real download.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "notebooks"))
import course_bootstrap  # noqa: E402

NOTEBOOK = "07_inference.ipynb"


def _first_code_source(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def _setup_block(path: Path) -> str:
    source = _first_code_source(path)
    return source[: source.index("IN_COLAB = setup(root, cloned)\n") + len("IN_COLAB = setup(root, cloned)\n")]


def test_every_notebook_has_the_generated_cell_and_badge():
    url = course_bootstrap.repo_url(ROOT)
    assert url == "https://github.com/dflib-course/deepfake-detection-course"
    assert course_bootstrap.sync_notebooks(ROOT) == [], "run: python notebooks/course_bootstrap.py --write"
    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(books) == 7
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in books:
        assert _setup_block(path) == course_bootstrap.bootstrap_cell(url)
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "markdown")["source"])
        badge = course_bootstrap.colab_badge(url, path.name)
        assert first.startswith(badge + "\n\n# ")
        assert badge in readme
    assert course_bootstrap.colab_url(url, NOTEBOOK) == (
        "https://colab.research.google.com/github/dflib-course/deepfake-detection-course/blob/main/notebooks/"
        "07_inference.ipynb"
    )


def test_in_a_checkout_the_cell_installs_nothing_and_changes_nothing(tmp_path):
    code = course_bootstrap.bootstrap_cell("file:///nonexistent/repo") + "print(os.getcwd(), IN_COLAB, cloned)\n"
    env = {
        **os.environ,
        "DFLIB_PIP_OPTIONS": "--option-that-makes-any-pip-run-fail",
        "PATH": str(tmp_path),
    }  # no git either: cloning would fail
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(ROOT / "notebooks"), "False", "False"]
    assert not list((ROOT / "notebooks").glob("repo"))


def test_in_a_checkout_without_dflib_it_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("nothing may be installed in a checkout"))
    with pytest.raises(ModuleNotFoundError, match=r"make install.*pip install -e '\.\[notebooks\]'"):
        course_bootstrap.setup(ROOT, cloned=False)


def _local_origin(dest: Path) -> str:
    """A git repository of this checkout's files (tracked and untracked, not ignored): the 'GitHub' to clone."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=dest, check=True)
    return dest.resolve().as_uri()


def _preinstalled_stack(dest: Path) -> Path:
    """A folder of symlinks to this environment's site-packages, minus dflib (its editable install)."""
    dest.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        low = entry.name.lower()
        if low.startswith(("dflib", "__editable__.dflib", "__editable___dflib")) or low.endswith(".pth"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.mark.notebooks
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a checkout")
def test_a_notebook_alone_in_an_empty_folder_bootstraps_itself(tmp_path):
    origin = _local_origin(tmp_path / "origin")
    stack = _preinstalled_stack(tmp_path / "preinstalled")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (venv_site / "colab_preinstalled.pth").write_text(str(stack) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    jupyter = tmp_path / "jupyter"
    env.update(
        DFLIB_REPO_URL=origin,
        DFLIB_PIP_OPTIONS="--no-index --no-deps --no-build-isolation",
        JUPYTER_PATH=str(jupyter / "share" / "jupyter"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        OMP_NUM_THREADS="1",
    )
    probe = (
        "import importlib.util as u; import papermill, ipykernel, torch; "
        "assert u.find_spec('dflib') is None, 'dflib must not be importable before the bootstrap'"
    )
    subprocess.run([str(python), "-c", probe], env=env, check=True, cwd=tmp_path)
    subprocess.run(
        [str(python), "-m", "ipykernel", "install", "--prefix", str(jupyter), "--name", "python3"],
        env=env,
        check=True,
        capture_output=True,
    )

    content = tmp_path / "content"  # Colab's working folder: nothing but the notebook
    content.mkdir()
    shutil.copy2(ROOT / "notebooks" / NOTEBOOK, content / NOTEBOOK)
    run = subprocess.run(
        [
            str(python),
            "-m",
            "papermill",
            NOTEBOOK,
            "out.ipynb",
            "-p",
            "smoke",
            "True",
            "-k",
            "python3",
            "--log-output",
            "--no-progress-bar",
        ],
        cwd=content,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]

    clone = content / "origin"
    assert (clone / "notebooks" / "course_bootstrap.py").is_file() and (clone / ".git" / "shallow").is_file()
    executed = json.loads((content / "out.ipynb").read_text())
    first = next(c for c in executed["cells"] if c["cell_type"] == "code")
    printed = "".join("".join(o.get("text", "")) for o in first["outputs"])
    assert f"dflib installed from {clone.resolve()}; working folder {clone.resolve() / 'notebooks'}" in printed
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code)
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    check = subprocess.run(
        [str(python), "-c", "import dflib; print(dflib.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip().startswith(str(clone.resolve()))  # installed (editable) from the clone


def test_every_first_cell_runs_in_a_checkout():
    """The whole first code cell of each notebook (setup block + its imports), IPython magics left out."""
    cells = [_first_code_source(p) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    script = "\n".join("\n".join(line for line in cell.splitlines() if not line.startswith("%")) for cell in cells)
    out = subprocess.run(
        [sys.executable, "-c", script + "\nprint('ok', IN_COLAB)"],
        cwd=ROOT / "notebooks",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok False")
