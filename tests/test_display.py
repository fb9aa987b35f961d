"""What a reader sees outside a live notebook: progress bars (off in headless runs) and tables
(styled HTML plus aligned text)."""

from __future__ import annotations

import pandas as pd
import pytest

from dflib import plots, runtime


@pytest.mark.parametrize(
    ("value", "shown"), [(None, True), ("1", True), ("0", False), ("off", False), ("False", False)]
)
def test_progress_shown_follows_the_environment(monkeypatch, value, shown):
    if value is None:
        monkeypatch.delenv(runtime.PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(runtime.PROGRESS_ENV, value)
    assert runtime.progress_shown() is shown
    bar = runtime.progress_bar(range(3))
    assert bar.disable is (not shown)
    assert list(bar) == [0, 1, 2]  # a disabled bar still iterates
    bar.close()


def test_progress_bar_disable_argument_wins(monkeypatch):
    monkeypatch.setenv(runtime.PROGRESS_ENV, "1")
    bar = runtime.progress_bar(range(2), disable=True)
    assert bar.disable
    bar.close()


def test_notebook_runner_turns_bars_off_only_while_it_runs(monkeypatch, tmp_path):
    import papermill

    seen = {}

    def fake_execute(src, dst, **kwargs):
        seen["value"] = runtime.progress_shown()
        raise RuntimeError("stop here")

    monkeypatch.setenv(runtime.PROGRESS_ENV, "1")
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    from dflib.notebook_runner import NotebookError, run_notebooks

    with pytest.raises(NotebookError):
        run_notebooks(["01"], out_dir=tmp_path, render=False, log=lambda *_: None)
    assert seen["value"] is False
    assert runtime.progress_shown() is True  # restored afterwards


def test_table_text_keeps_the_formats_and_aligns_columns():
    df = pd.DataFrame({"params": [1234567, 2], "AUC": [0.12345, 0.5]}, index=["resnet18_w16", "vit"])
    t = plots.table(df.style.format({"params": "{:,}", "AUC": "{:.3f}"}).background_gradient(axis=None))
    lines = repr(t).splitlines()
    assert lines[0].split() == ["params", "AUC"]
    assert lines[1].split() == ["resnet18_w16", "1,234,567", "0.123"]
    assert lines[2].split() == ["vit", "2", "0.500"]
    assert len({len(line) for line in lines[1:]}) == 1  # right-aligned columns end together
    assert "Styler" not in repr(t)
    assert "<table" in t._repr_html_() and "1,234,567" in t._repr_html_()


def test_table_accepts_a_frame_and_refuses_other_things():
    assert "0.5" in repr(plots.table(pd.DataFrame({"x": [0.5]})))
    with pytest.raises(TypeError, match="DataFrame or its .style"):
        plots.table([1, 2])
