"""Headless smoke run of every notebook (papermill, smoke=True), so CI fails when one fails."""

from __future__ import annotations

import json

import pytest

from dflib.notebook_runner import list_notebooks, run_notebooks

NOTEBOOKS = [p.name for p in list_notebooks()]


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_headless_in_smoke_mode(name, tmp_path):
    runs = run_notebooks([name.split("_")[0]], smoke=True, out_dir=tmp_path, log=lambda *_: None)
    assert [r.notebook.name for r in runs] == [name]
    executed = json.loads(runs[0].output.read_text())
    assert executed["metadata"]["papermill"]["parameters"]["smoke"] is True
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code), "every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # Saved outputs read cleanly outside a live notebook: no progress-bar widgets, no bare Stylers.
    outputs = [o for c in code for o in c.get("outputs", [])]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{len(widgets)} widget output(s) saved (a progress bar not made by runtime.progress_bar?)"
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for o in outputs]
    assert not [t for t in texts if "Styler at 0x" in t], "show styled tables with dflib.plots.table(...)"
    html = runs[0].html.read_text(encoding="utf-8")
    assert len(html) > 10_000 and "<html" in html
