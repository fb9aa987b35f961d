"""Headless notebook pipeline: execute the numbered notebooks with papermill, render HTML.

``make run`` executes them in place (the committed notebooks carry the outputs of that run)
and renders ``notebooks/html/``; the test suite executes them with ``smoke=True`` into a
temporary folder. A failing notebook stops the run and its error is shown.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dflib import runtime

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[\w-]+\.ipynb$")


class NotebookError(RuntimeError):
    """A notebook failed; the message holds the notebook, the cell's error and where to look."""


@dataclass
class NotebookRun:
    notebook: Path
    output: Path
    html: Path | None
    seconds: float


def default_notebook_dir() -> Path:
    """``notebooks/`` of the source checkout dflib is imported from (an editable install)."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    if here.is_dir():
        return here
    return Path.cwd() / "notebooks"


def list_notebooks(notebook_dir: str | os.PathLike | None = None, only: Iterable[str] | None = None) -> list[Path]:
    """The numbered notebooks in reading order, optionally only those whose number or name matches."""
    folder = Path(notebook_dir) if notebook_dir else default_notebook_dir()
    if not folder.is_dir():
        raise NotebookError(f"notebook folder {folder} does not exist; pass --dir")
    books = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if only:
        wanted = [str(w) for w in only]
        chosen = [p for p in books if any(p.name.startswith(w) or p.stem == w for w in wanted)]
        missing = [w for w in wanted if not any(p.name.startswith(w) or p.stem == w for p in books)]
        if missing:
            raise NotebookError(f"no notebook matches {missing}; available: {[p.name for p in books]}")
        books = chosen
    if not books:
        raise NotebookError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return books


def parse_value(text: str) -> Any:
    """Parse a ``-p NAME VALUE`` value: JSON or Python literal (numbers, booleans, lists), else text."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            pass
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return text


def render_html(notebook: Path, html_path: Path) -> Path:
    """Render an executed notebook to a standalone HTML page (figures embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html_path)
    return html_path


def _error_text(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    tb = getattr(exc, "traceback", None)
    text = f"{ename}: {evalue}"
    if tb:
        tail = "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", line) for line in tb[-6:])
        text += "\n" + tail
    return text


def run_notebooks(
    only: Sequence[str] | None = None,
    *,
    smoke: bool = False,
    parameters: dict[str, Any] | None = None,
    out_dir: str | os.PathLike | None = None,
    html_dir: str | os.PathLike | None = None,
    notebook_dir: str | os.PathLike | None = None,
    render: bool = True,
    kernel_name: str | None = None,
    log=print,
) -> list[NotebookRun]:
    """Execute notebooks in order with papermill; render each to HTML.

    ``out_dir=None`` executes in place (the notebook file receives the outputs) and writes HTML
    to ``<notebook_dir>/html``; otherwise executed copies and ``html/`` go under ``out_dir``.
    Each notebook runs with its own folder as working directory, so relative paths such as
    ``../img`` and ``../models`` mean the same as in JupyterLab.
    """

    books = list_notebooks(notebook_dir, only)
    params = dict(parameters or {})
    if smoke:
        params["smoke"] = True
    out = Path(out_dir) if out_dir else None
    html_root = Path(html_dir) if html_dir else (out / "html" if out else books[0].parent / "html")
    runs: list[NotebookRun] = []
    # No progress bars in headless kernels (they inherit this environment): nobody watches them,
    # and a saved bar widget reads as a frozen "0%|" in the HTML and in text viewers.
    saved_progress = os.environ.get(runtime.PROGRESS_ENV)
    os.environ[runtime.PROGRESS_ENV] = "0"
    try:
        _execute(books, params, out, html_root, kernel_name, render, log, runs)
    finally:
        if saved_progress is None:
            os.environ.pop(runtime.PROGRESS_ENV, None)
        else:
            os.environ[runtime.PROGRESS_ENV] = saved_progress
    return runs


def _execute(books, params, out, html_root, kernel_name, render, log, runs) -> None:
    import papermill as pm

    for book in books:
        target = (out / book.name) if out else book
        if out:
            out.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_name(f".{target.stem}.running.ipynb")
        log(f"[dflib] running {book.name}" + (f" with {params}" if params else ""))
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(book),
                str(tmp_target),
                parameters=params,
                cwd=str(book.parent),
                kernel_name=kernel_name,
                progress_bar=False,
                log_output=False,
            )
        except KeyboardInterrupt:
            tmp_target.unlink(missing_ok=True)  # the notebook itself is untouched
            raise
        except Exception as exc:  # papermill's PapermillExecutionError carries the cell error
            failed = target.with_name(f"{target.stem}.failed.ipynb")
            if tmp_target.exists():
                os.replace(tmp_target, failed)
            raise NotebookError(
                f"{book.name} failed after {time.perf_counter() - start:.0f} s:\n{_error_text(exc)}\n"
                f"(the partly executed notebook is at {failed})"
            ) from None
        os.replace(tmp_target, target)  # the committed notebook is never left half-executed
        seconds = time.perf_counter() - start
        html = render_html(target, html_root / f"{book.stem}.html") if render else None
        log(f"[dflib] {book.name} ok in {seconds:.1f} s" + (f" -> {html}" if html else ""))
        runs.append(NotebookRun(book, target, html, seconds))


def smoke_out_dir(notebook_dir: str | os.PathLike | None = None) -> Path:
    """Where ``--smoke`` writes without ``--out``: ``runs/smoke`` beside the notebook folder, never the notebooks."""
    folder = Path(notebook_dir) if notebook_dir else default_notebook_dir()
    return folder.resolve().parent / "runs" / "smoke"


def _quiet_interrupt() -> None:
    """After Ctrl-C, keep the kernel client's event loop from printing tracebacks of cancelled tasks."""
    import logging

    for name in ("asyncio", "traitlets", "papermill", "nbclient"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def main_run(args) -> int:  # called by the CLI
    params = {name: parse_value(value) for name, value in (args.param or [])}
    out = Path(args.out) if args.out else args.out
    if out is not None and not str(out).strip():
        print("error: --out is empty; name a folder, e.g. --out runs/smoke", file=sys.stderr)
        return 2
    if args.smoke and out is None:
        # A smoke run must not replace the committed notebooks' full-run outputs and HTML.
        out = smoke_out_dir(args.dir)
        print(
            f"[dflib] smoke run: executed notebooks and html/ go to {out} (pass --out to choose; the "
            f"committed notebooks are left as they are)"
        )
    try:
        runs = run_notebooks(
            args.only, smoke=args.smoke, parameters=params, out_dir=out, notebook_dir=args.dir, render=not args.no_html
        )
    except NotebookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _quiet_interrupt()
        print("interrupted: the notebook that was running is unchanged (its partial copy was removed)", file=sys.stderr)
        return 130
    total = sum(r.seconds for r in runs)
    print(f"[dflib] {len(runs)} notebook(s) ran in {total:.0f} s")
    return 0
