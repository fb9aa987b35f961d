"""The first cell of every notebook, and what it calls: Colab (or any folder without the course) just works.

Standard library only: it runs before ``dflib`` exists.

* :func:`setup` is what each notebook's first cell calls once it has found (or cloned) the
  repository. In a checkout (JupyterLab, papermill, CI) it installs nothing and changes nothing;
  in a fresh clone made by the cell (Colab) it ``pip install``s dflib with the ``notebooks``
  extra. The cell itself has already moved into the clone's ``notebooks/`` folder, so
  ``../models``, ``../img`` and ``../example`` resolve as in a checkout.
* :func:`bootstrap_cell` and :func:`colab_badge` generate that cell and the "Open in Colab" badge
  from the repository URL in ``pyproject.toml`` (``[project.urls] Repository``), the one place it
  is written. ``python notebooks/course_bootstrap.py --write`` puts them into every notebook and
  README's notebook table; ``--check`` (and ``tests/test_colab.py``) fails when one drifted.

Environment: ``DFLIB_REPO_URL`` clones another repository (a fork, a mirror, a local
``file://`` clone); ``DFLIB_PIP_OPTIONS`` adds pip options (``--no-index`` offline, a mirror).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

EXTRAS = "notebooks"
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
NOTEBOOK_NAME = re.compile(r"^\d\d_[\w-]+\.ipynb$")


# --------------------------------------------------------------------------- what the cell calls
def setup(root: str | os.PathLike, cloned: bool = False) -> bool:
    """Make ``dflib`` importable for this notebook; returns whether it runs on Colab.

    ``root`` is the repository; ``cloned`` says the first cell has just cloned it (there was no
    checkout around the notebook). Only then is anything installed: ``pip install -e
    'root[notebooks]'`` into the running interpreter, and ``root`` goes on ``sys.path`` so this
    kernel imports it without a restart. In a checkout without dflib installed it says how to
    install it instead of installing.
    """
    root = Path(root).resolve()
    in_colab = "google.colab" in sys.modules
    if importlib.util.find_spec("dflib") is None:
        if not cloned:
            raise ModuleNotFoundError(
                f"dflib is not installed in this Python ({sys.executable}); in {root} run `make install` "
                f"(then use .venv's kernel) or `pip install -e '.[{EXTRAS}]'`, and re-run this cell"
            )
        options = shlex.split(os.environ.get("DFLIB_PIP_OPTIONS", ""))
        print(f"installing dflib from {root} (pip install -e '.[{EXTRAS}]') ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", *options, "-e", f"{root}[{EXTRAS}]"], check=True
        )
        importlib.invalidate_caches()
        sys.path.insert(0, str(root))
        print(f"dflib installed from {root}; working folder {Path.cwd()}")
    if in_colab and shutil.which("nvidia-smi") is None:
        print(
            "No GPU in this runtime: fine for the embedded sample; to train on the real data choose "
            "Runtime > Change runtime type > GPU, then run the notebook again."
        )
    return in_colab


# --------------------------------------------------------------------------- one source for the cells
def repo_url(root: str | os.PathLike | None = None) -> str:
    """``[project.urls] Repository`` of ``pyproject.toml`` (the only place the URL is written)."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = section and re.search(r'^Repository\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not found:
        raise ValueError(f'{root / "pyproject.toml"} has no [project.urls] Repository = "..." entry')
    return found.group(1).rstrip("/")


def bootstrap_cell(url: str) -> str:
    """The source of the setup block that opens every notebook's first code cell."""
    return _CELL.replace("<URL>", url)


_CELL = """# Setup (the same in every notebook; see notebooks/course_bootstrap.py): in a checkout it does nothing;
# on its own (Colab) it clones the course beside this notebook, installs dflib and moves into the clone's
# notebooks/.
import os
import subprocess
import sys
from pathlib import Path

REPO_URL = os.environ.get("DFLIB_REPO_URL") or "<URL>"
around = [Path.cwd(), *Path.cwd().parents]
root = next((p for p in around if (p / "notebooks" / "course_bootstrap.py").is_file()), None)
if cloned := root is None:
    root = Path.cwd() / Path(REPO_URL.rstrip("/")).name.removesuffix(".git")
    if not (root / "notebooks" / "course_bootstrap.py").is_file():
        subprocess.run(["git", "clone", "--depth", "1", "--quiet", REPO_URL, str(root)], check=True)
    os.chdir(root / "notebooks")
sys.path.insert(0, str(root / "notebooks"))
from course_bootstrap import setup

IN_COLAB = setup(root, cloned)
"""


def colab_url(url: str, notebook: str) -> str:
    """Colab's address for ``notebooks/<notebook>`` of GitHub repository ``url``."""
    owner_repo = re.sub(r"^https://github\.com/", "", url.removesuffix(".git"))
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/notebooks/{notebook}"


def colab_badge(url: str, notebook: str) -> str:
    """The Markdown "Open in Colab" badge of one notebook."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(url, notebook)})"


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _sync_code(source: str, block: str) -> str:
    """``source`` with its setup block replaced by ``block`` (everything before the first line after it)."""
    lines = source.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if line.startswith("IN_COLAB = setup(")), None)
    if end is None:  # the older hand-written bootstrap: it ends with sys.path.insert(0, str(repo))
        end = next((i for i, line in enumerate(lines) if line.strip() == "sys.path.insert(0, str(repo))"), None)
    if end is None:
        raise ValueError("the first code cell has no recognisable setup block")
    return block + "".join(lines[end + 1 :])


def _sync_markdown(source: str, badge: str) -> str:
    lines = source.splitlines(keepends=True)
    if lines and "colab-badge.svg" in lines[0]:
        lines = lines[1:]
        while lines and not lines[0].strip():
            lines = lines[1:]
    return badge + "\n\n" + "".join(lines)


def sync_notebooks(root: str | os.PathLike | None = None, write: bool = False) -> list[str]:
    """Notebooks (and README) whose setup cell or badges differ from the generated ones; ``write`` fixes them."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    url, block, stale = repo_url(root), bootstrap_cell(repo_url(root)), []
    for path in sorted(p for p in (root / "notebooks").iterdir() if NOTEBOOK_NAME.match(p.name)):
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        text = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        new_code, new_text = (
            _sync_code("".join(code["source"]), block),
            _sync_markdown("".join(text["source"]), colab_badge(url, path.name)),
        )
        if new_code != "".join(code["source"]) or new_text != "".join(text["source"]):
            stale.append(path.name)
            if write:
                code["source"], text["source"] = _lines(new_code), _lines(new_text)
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = text
    for name in sorted(p.name for p in (root / "notebooks").iterdir() if NOTEBOOK_NAME.match(p.name)):
        link = rf"\| \[[^\]]+\]\(notebooks/{re.escape(name)}\) \(\[HTML\]\([^)]+\)\)"
        row = re.compile(rf"^({link})( \[!\[Open In Colab\][^|]*)?( \|)", re.M)
        badge = colab_badge(url, name)
        new = row.sub(lambda m, badge=badge: f"{m[1]} {badge}{m[3]}", new)
    if new != text:
        stale.append("README.md")
        if write:
            readme.write_text(new, encoding="utf-8")
    return stale


if __name__ == "__main__":
    write = "--write" in sys.argv[1:]
    changed = sync_notebooks(write=write)
    if changed and not write:
        print("out of date: " + ", ".join(changed) + "; run python notebooks/course_bootstrap.py --write")
        raise SystemExit(1)
    print(("updated: " + ", ".join(changed)) if changed else "every notebook's setup cell and badge is up to date")
