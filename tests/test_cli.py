"""The dflib command: exit codes and messages a user sees."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dflib.cli import main
from dflib.notebook_runner import NotebookError, list_notebooks, parse_value


def test_check_data_reports_layout_and_balance(tiny_dataset, capsys):
    assert main(["check-data", str(tiny_dataset.parent)]) == 0
    out = capsys.readouterr().out
    assert f"dataset: {tiny_dataset}" in out
    assert "24 files hashed; 0 group(s) of exact duplicates" in out
    assert "Validation real       4  fake       4" in out


def test_bad_data_path_is_one_clear_line(tmp_path, capsys):
    assert main(["check-data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data folder") and "does not exist" in err and "Traceback" not in err


def test_download_offline_without_kagglehub(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "kagglehub", None)
    assert main(["download"]) == 2
    assert "pip install 'dflib[kaggle]'" in capsys.readouterr().err


def test_run_notebooks_unknown_notebook(capsys):
    assert main(["run-notebooks", "--only", "99"]) == 1
    assert "no notebook matches ['99']" in capsys.readouterr().err


def test_run_notebooks_failure_shows_the_cell_error(tmp_path, capsys):
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("smoke = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01_broken.ipynb")
    code = main(["run-notebooks", "--dir", str(tmp_path), "--smoke", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "01_broken.ipynb failed" in err and "ValueError: broken on purpose" in err
    assert (tmp_path / "out" / "01_broken.failed.ipynb").exists()
    assert not (tmp_path / "out" / "01_broken.ipynb").exists()  # no half-executed notebook left


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5
    assert parse_value("true") is True and parse_value("False") is False
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("/data/Dataset") == "/data/Dataset"


def test_notebooks_are_listed_in_order():
    names = [p.name for p in list_notebooks()]
    assert names == sorted(names) and names[0].startswith("01_")
    with pytest.raises(NotebookError, match="does not exist"):
        list_notebooks("/nonexistent/folder")


def test_python_dash_m_dflib_help():
    out = subprocess.run([sys.executable, "-m", "dflib", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run-notebooks" in out.stdout and "sample-data" in out.stdout


# --- `dflib train` options come from TrainConfig --------------------------------------------


def _train_parser():
    import argparse

    from dflib.cli import add_config_options
    from dflib.training import TrainConfig

    p = argparse.ArgumentParser(prog="dflib train")
    add_config_options(p, TrainConfig)
    return p


def test_every_train_config_field_is_an_option_with_its_default_and_help():
    import dataclasses

    from dflib.cli import config_from_options
    from dflib.training import TrainConfig

    parser = _train_parser()
    by_dest = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(TrainConfig):
        assert f.name in by_dest, f"TrainConfig.{f.name} has no dflib train option"
        assert f.metadata["help"] and f.metadata["help"].split(" (default")[0] in by_dest[f.name].help
        if f.metadata.get("choices"):
            assert tuple(by_dest[f.name].choices) == f.metadata["choices"]
    # Nothing typed but the required model: exactly TrainConfig's defaults.
    settings = config_from_options(parser.parse_args(["--model", "resnet18"]), TrainConfig)
    assert TrainConfig(**settings) == TrainConfig(model="resnet18")


def test_train_options_parse_into_the_config():
    from dflib.cli import config_from_options
    from dflib.training import TrainConfig

    args = _train_parser().parse_args(
        [
            "--model",
            "resnet18",
            "--model-arg",
            "width=8",
            "--model-arg",
            "dropout=0.1",
            "--data",
            "/d",
            "--warmup-epochs",
            "0.5",
            "--min-lr-ratio",
            "0.1",
            "--grad-clip",
            "0",
            "--momentum",
            "0.8",
            "--patience",
            "0",
            "--optimizer",
            "sgd",
            "--no-augment",
            "--no-progress",
            "--compile",
        ]
    )
    cfg = TrainConfig(**config_from_options(args, TrainConfig))
    assert cfg.model_options == {"width": 8, "dropout": 0.1} and cfg.data_dir == "/d"
    assert (cfg.warmup_epochs, cfg.min_lr_ratio, cfg.momentum, cfg.optimizer) == (0.5, 0.1, 0.8, "sgd")
    assert cfg.grad_clip is None and cfg.patience is None  # 0 = off on the command line
    assert cfg.augment is False and cfg.progress is False and cfg.compile is True


def test_train_option_errors_name_the_flag(capsys):
    assert main(["train", "--model", "resnet18", "--model-arg", "width"]) == 2
    assert "--model-arg 'width' is not KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", "resnet18", "--imbalance", "oversample"])
    assert "invalid choice: 'oversample'" in capsys.readouterr().err


def test_augment_fields_from_the_command_line(capsys):
    from dflib.cli import config_from_options
    from dflib.training import TrainConfig

    args = _train_parser().parse_args(["--model", "x", "--augment-arg", "blur_p=0", "--augment-arg", "jpeg_p=0.5"])
    assert config_from_options(args, TrainConfig)["augment"] == {"blur_p": 0, "jpeg_p": 0.5}
    assert main(["train", "--model", "resnet18", "--no-augment", "--augment-arg", "blur_p=0"]) == 2
    assert "--no-augment and --augment-arg contradict" in capsys.readouterr().err
