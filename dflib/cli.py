"""The ``dflib`` command (also ``python -m dflib``).

    dflib sample-data [--out DIR] [--per-class N] [--size PX] [--seed S] [--holdout METHOD]
    dflib check-data  [DIR] [--quick] [--workers N]
    dflib download
    dflib run-notebooks [--smoke] [--only 01 03 ...] [-p NAME VALUE ...] [--out DIR]
    dflib train --model NAME [--data DIR] [--img-size PX] [--epochs N] [--batch-size B] [--lr LR]
                [--out DIR] [--name NAME] [--resume] [--overwrite] [--seed S] [--device auto] ...
    dflib evaluate --checkpoint PATH [--data DIR] [--split Test] [--json OUT]
    dflib predict PATH... --checkpoint PATH [--out CSV] [--threshold T] [--explain DIR] [--batch-size B]
                  [--faces [--min-face PX] [--face-threshold S]]
    dflib crop-faces SRC OUT [--split 0.8 0.1 0.1] [--seed S] [--size PX] [--workers N]

``train`` writes ``<out>/<name>.safetensors`` + ``<out>/<name>.json`` (the best epoch) and
``<out>/runs/<name>/`` (last checkpoint, resume.pt, history.csv/json, train.log); see
:mod:`dflib.training`. Its options are generated from :class:`dflib.training.TrainConfig`. It runs
unchanged under ``torchrun --nproc_per_node N -m dflib train ...``.

Errors a user can cause (wrong path, bad layout, bad parameter) end with one line saying what
is wrong and how to fix it, and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _sample_data(args: argparse.Namespace) -> int:
    from dflib.data.synthetic import SampleConfig, ensure_sample, generate_sample

    fields = {"per_class": args.per_class, "size": args.size, "seed": args.seed, "holdout_method": args.holdout}
    config = SampleConfig(**{k: v for k, v in fields.items() if v is not None})
    if args.out is not None and not str(args.out).strip():
        raise ValueError("--out is empty; name a folder, e.g. --out data/sample (without --out: the user cache)")
    if args.out:
        root = generate_sample(args.out, config, progress=True, workers=args.workers, overwrite=args.overwrite)
    else:
        root = ensure_sample(config, progress=True)
    print(root)
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from dflib.data import check_splits, default_num_workers, discover, resolve_data_dir
    from dflib.data.scan import scan_dataset

    root = resolve_data_dir(args.data)
    layout = discover(root)
    workers = default_num_workers() if args.workers is None else args.workers
    if workers < 0:
        raise ValueError(f"--workers {workers} is invalid; use 0 (check in this process) or more processes")
    read = scan_dataset(layout, "quick" if args.quick else "full", workers=workers, progress=not args.no_progress)
    report = check_splits(layout, progress=False, hashes=read.hashes)
    print(f"dataset: {root}")
    print(read.summary(max_listed=args.max_listed))
    print(report.summary())
    if not report.duplicates.empty:
        print(report.duplicates.to_string(index=False, max_rows=40))
    empty = read.empty_classes()
    if empty:
        print(
            f"error: no readable image in {', '.join(empty)}: a split needs both classes; replace the "
            f"unreadable files listed above",
            file=sys.stderr,
        )
        return 1
    return 0


def _download(args: argparse.Namespace) -> int:
    from dflib.data import download_kaggle

    print(download_kaggle(force=args.force))
    return 0


def _run_notebooks(args: argparse.Namespace) -> int:
    from dflib.notebook_runner import main_run

    return main_run(args)


def _annotation(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def add_config_options(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One option per field of the dataclass ``config_cls``, from the field's type, default and metadata.

    The dataclass is the only place a setting is described (see :func:`dflib.training.config.setting`):
    its default, choices and help become the option's, so the command line can never drift from
    ``fit()``. Booleans become ``--flag`` (default off) or ``--no-flag`` (default on); dicts become a
    repeatable ``--flag KEY=VALUE``; ``int | None`` fields accept an integer (or 0 for None where
    the field says so).
    """
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        kind = _annotation(f).replace(" ", "")
        flag = meta.get("flag") or f.name.replace("_", "-")
        default = _field_default(f)
        text = meta.get("help", "")
        if kind.startswith("bool"):  # bool, or bool | dict (augment): an on/off switch
            if default:
                parser.add_argument(f"--no-{flag}", dest=f.name, action="store_false", help=f"turn off: {text}")
            else:
                parser.add_argument(f"--{flag}", dest=f.name, action="store_true", help=text)
            if kind == "bool|dict":  # ... and its fields, one KEY=VALUE at a time
                parser.add_argument(
                    f"--{flag}-arg",
                    dest=f"{f.name}__fields",
                    action="append",
                    metavar="KEY=VALUE",
                    help=f"set one field of {f.name} (repeatable), e.g. --{flag}-arg blur_p=0",
                )
            continue
        if kind.startswith("dict"):
            parser.add_argument(
                f"--{flag}", dest=f.name, action="append", metavar=meta.get("metavar") or "KEY=VALUE", help=text
            )
            continue
        base = kind.split("|")[0]
        types = {"int": int, "float": float, "str": str}
        if base not in types:
            raise TypeError(f"{config_cls.__name__}.{f.name}: no command-line form for type {kind}")
        shown = "unset" if default is None else ("''" if default == "" else default)
        kwargs: dict[str, Any] = {"dest": f.name, "type": types[base], "help": f"{text} (default: {shown})"}
        if meta.get("required"):
            kwargs.update(required=True, help=text)
        else:
            kwargs["default"] = 0 if default is None and meta.get("zero_is_none") else default
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        else:
            kwargs["metavar"] = meta.get("metavar") or base.upper()
        parser.add_argument(f"--{flag}", **kwargs)


def _key_values(items: list[str] | None, flag: str, example: str, parse: Any) -> dict[str, Any]:
    options = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r} is not KEY=VALUE; e.g. {flag} {example}")
        options[key.strip()] = parse(text)
    return options


def config_from_options(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The ``config_cls`` settings that :func:`add_config_options` parsed into ``args``."""
    from dflib.notebook_runner import parse_value

    settings: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("cli", True):
            continue
        value = getattr(args, f.name)
        flag = f.metadata.get("flag") or f.name.replace("_", "-")
        kind = _annotation(f).replace(" ", "")
        if kind.startswith("dict"):
            value = _key_values(value, f"--{flag}", "width=32", parse_value)
        elif kind == "bool|dict" and getattr(args, f"{f.name}__fields", None):
            if value is False:
                raise ValueError(f"--no-{flag} and --{flag}-arg contradict each other; pass one of them")
            value = _key_values(getattr(args, f"{f.name}__fields"), f"--{flag}-arg", "blur_p=0", parse_value)
        elif f.metadata.get("zero_is_none") and value == 0:
            value = None
        settings[f.name] = value
    return settings


def _train(args: argparse.Namespace) -> int:
    from dflib.training import TrainConfig, fit

    fit(**config_from_options(args, TrainConfig))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from dflib.checkpoint import check_output_file
    from dflib.evaluation.scoring import evaluate_checkpoint, format_skips

    if args.json is not None:
        check_output_file(args.json, "--json")  # before any image is scored
    result = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.split,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        limit_per_class=args.limit_per_class,
        progress=not args.no_progress,
    )
    text = json.dumps(result, indent=2)
    print(text)  # first: a failing write below cannot lose the results
    print(format_skips(result["skipped"], f"{result['split']} of {result['data']}"), file=sys.stderr)
    if args.json is not None:
        from dflib.checkpoint import atomic_write_text

        try:
            atomic_write_text(check_output_file(args.json, "--json"), text + "\n")
        except OSError as e:
            raise ValueError(
                f"cannot write --json {args.json} ({e.strerror or e}); the results are printed above"
            ) from None
    return 0


def _predict(args: argparse.Namespace) -> int:
    from dflib.predict import check_output_path, format_table, predict_ensemble, predict_paths, write_csv

    if args.out is not None:
        check_output_path(args.out)  # fail before any model runs
    checkpoints = args.checkpoint
    common = dict(batch_size=args.batch_size, device=args.device, workers=args.workers, progress=not args.no_progress)
    if args.faces:
        from dflib.faces.detect import MIN_FACE, THRESHOLD

        common.update(
            faces=True,
            min_face=MIN_FACE if args.min_face is None else args.min_face,
            face_threshold=THRESHOLD if args.face_threshold is None else args.face_threshold,
        )
    elif args.min_face is not None or args.face_threshold is not None:
        raise ValueError("--min-face and --face-threshold work with --faces; add --faces to find faces first")
    if len(checkpoints) == 1:
        df = predict_paths(args.paths, checkpoints[0], args.threshold, explain_dir=args.explain, **common)
    else:
        if args.explain is not None:
            raise ValueError("--explain works with one --checkpoint; run once per detector to explain each")
        df = predict_ensemble(args.paths, checkpoints, args.threshold, **common)
    for path, problem in df.attrs.get("explain_errors", {}).items():
        print(f"warning: {path}: {problem}", file=sys.stderr)
    if args.out is not None:
        out = write_csv(df, args.out)
        n_bad = int(df["error"].notna().sum())
        what = (
            f"{int(df['face'].notna().sum())} face(s) in {df['path'].nunique()} image(s)"
            if args.faces
            else f"{len(df)} image(s)"
        )
        print(f"{what} -> {out}" + (f" ({n_bad} unreadable, see the error column)" if n_bad else ""))
    else:
        if args.faces:
            from dflib.predict_faces import format_faces_table

            print(format_faces_table(df))
        else:
            print(format_table(df))
    if args.explain is not None:
        print(f"{len(df.attrs.get('explanations', {}))} explanation overlay(s) -> {args.explain}")
    return 0


def _crop_faces(args: argparse.Namespace) -> int:
    from dflib.faces.dataset import crop_faces

    report = crop_faces(
        args.src,
        args.out,
        split=args.split,
        seed=args.seed,
        size=args.size,
        min_face=args.min_face,
        face_threshold=args.face_threshold,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dflib", description="Deepfake image detection course toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sample-data", help="generate the embedded synthetic dataset (Kaggle layout)")
    p.add_argument("--out", help="write here (default: the user cache, reused when complete)")
    p.add_argument("--per-class", type=int, help="Train images per class (Validation/Test get a quarter)")
    p.add_argument("--size", type=int, help="image side in pixels (default 256, like Kaggle)")
    p.add_argument("--seed", type=int, help="random seed (same seed = same bytes)")
    p.add_argument("--holdout", metavar="METHOD", help="keep this manipulation out of Train")
    p.add_argument("--workers", type=int, default=1, help="processes used to generate (with --out)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing <out>/Dataset")
    p.set_defaults(func=_sample_data)

    p = sub.add_parser(
        "check-data",
        help="validate a dataset folder: every image decodes, layout, balance, duplicates",
        description="Decode every image (in worker processes) and list the unreadable ones per split "
        "and class with the reason; report class balance and exact duplicates. Exit 1 when a class "
        "has no readable image, 2 when the folder is not a dataset.",
    )
    p.add_argument("data", nargs="?", default="", help="Dataset folder (default: the embedded sample)")
    p.add_argument(
        "--quick", action="store_true", help="header-only check (no decoding): much faster, misses a corrupt image body"
    )
    p.add_argument("--workers", type=int, metavar="N", help="processes that decode (default: one per spare core)")
    p.add_argument("--max-listed", type=int, default=20, metavar="N", help="list at most N unreadable files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_check_data)

    p = sub.add_parser("download", help="download the Kaggle dataset with kagglehub (needs internet)")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(func=_download)

    p = sub.add_parser("run-notebooks", help="execute the notebooks headless and render HTML")
    p.add_argument("--smoke", action="store_true", help="pass smoke=True (a fast run of each)")
    p.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks, e.g. --only 01 03")
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a parameter of every notebook, e.g. -p data_dir /data/Dataset",
    )
    p.add_argument(
        "--out",
        help="write executed notebooks + html/ here (default: in place; with --smoke: "
        "runs/smoke, so the committed notebooks keep their full-run outputs)",
    )
    p.add_argument("--dir", type=Path, help="notebook folder (default: the checkout's notebooks/)")
    p.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    p.set_defaults(func=_run_notebooks)

    p = sub.add_parser(
        "train",
        help="train a detector; saves the best model + card, resumable",
        description="Train a detector. Writes <out>/<name>.safetensors + <name>.json (the "
        "best epoch by validation ROC-AUC) and <out>/runs/<name>/ (last checkpoint, "
        "resume.pt, history.csv/json, train.log). Also runs under torchrun.",
    )
    from dflib.training import TrainConfig

    add_config_options(p, TrainConfig)
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="score a saved detector on a split (ROC-AUC, accuracy, AP)")
    p.add_argument("--checkpoint", required=True, type=Path, metavar="PATH", help="<name>.safetensors or <name>.json")
    p.add_argument("--data", default="", metavar="DIR", help="Dataset folder (default: the embedded sample)")
    p.add_argument("--split", default="Test", metavar="SPLIT", help="Train, Validation or Test (default Test)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results to this JSON file")
    p.add_argument("--batch-size", type=int, default=128, metavar="B")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument("--workers", type=int, metavar="N", help="loader processes (default: one per spare core)")
    p.add_argument("--limit-per-class", type=int, metavar="N", help="score at most N images per class")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "predict",
        help="score your own images (files, folders, globs) with a saved detector",
        description="Score images with a saved detector. Writes one row per file: "
        "path,p_fake,label,threshold,model,error (an unreadable file gets its error and "
        "never stops the run). Images of any size and mode are resized as the model card says.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or glob patterns"
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        type=Path,
        metavar="PATH",
        help="<name>.safetensors or <name>.json; repeat it to average several detectors (an "
        "ensemble; the CSV then also has a p_fake_<name> column per detector)",
    )
    p.add_argument("--out", type=Path, metavar="CSV", help="write the predictions to this CSV (default: print a table)")
    p.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="call fake when P(fake) >= T (default: the card's validation threshold, else 0.5)",
    )
    p.add_argument("--explain", type=Path, metavar="DIR", help="write a heatmap overlay PNG per image into DIR")
    p.add_argument("--batch-size", type=int, default=32, metavar="B", help="images per forward pass (default 32)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument(
        "--workers", type=int, default=0, metavar="N", help="image-reading processes (default 0: in-process)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from dflib.faces.detect import MIN_FACE, THRESHOLD

    p.add_argument(
        "--faces",
        action="store_true",
        help="find the faces first and score each one cropped like a "
        "training image (one row per face: face, x0, y0, x1, y1, note); needs pip install 'dflib[faces]'",
    )
    p.add_argument(
        "--min-face",
        type=float,
        metavar="PX",
        help=f"with --faces: the smallest face looked for, in pixels (default {MIN_FACE})",
    )
    p.add_argument(
        "--face-threshold",
        type=float,
        metavar="S",
        help=f"with --faces: the face detector's score threshold (default {THRESHOLD}; lower finds more)",
    )
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "crop-faces",
        help="make a dataset of face crops (Kaggle layout) from a folder of photos",
        description="Find the faces in photos under SRC (SRC/Real, SRC/Fake, or the Kaggle layout) "
        "and write crops framed like the training data to OUT/Dataset/{Train,Validation,Test}/"
        "{Real,Fake}/, with OUT/manifest.csv (source -> crop, boxes). Photos without a face are "
        "counted, listed and skipped. Safe to interrupt: run it again to finish.",
    )
    p.add_argument("src", type=Path, metavar="SRC", help="folder with Real/ and Fake/ (or Train/Validation/Test)")
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (gets Dataset/ and manifest.csv)")
    p.add_argument(
        "--split",
        type=float,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        help="split the photos by seed (default 0.8 0.1 0.1; a Kaggle-layout SRC keeps its splits)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="crop side in pixels (default 256, like Kaggle)")
    p.add_argument(
        "--min-face",
        type=float,
        default=MIN_FACE,
        metavar="PX",
        help=f"the smallest face looked for, in pixels (default {MIN_FACE})",
    )
    p.add_argument(
        "--face-threshold",
        type=float,
        default=THRESHOLD,
        metavar="S",
        help=f"the face detector's score threshold (default {THRESHOLD})",
    )
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_crop_faces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dflib`` console script."""
    from dflib.data import DownloadError, ImageReadError, LayoutError
    from dflib.faces.detect import FacesUnavailableError

    args = build_parser().parse_args(argv)
    show = warnings.showwarning
    # "warning: <message>" lines, not source lines from inside dflib; not while warnings are recorded (pytest)
    if getattr(getattr(warnings, "_showwarnmsg_impl", None), "__name__", "") == "_showwarnmsg_impl":
        warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except (
        LayoutError,
        DownloadError,
        ImageReadError,
        ValueError,
        FileNotFoundError,
        FloatingPointError,
        PermissionError,
        FacesUnavailableError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the last resort: a file system problem the checks above did not foresee
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as the command's own line; deprecations and the like keep Python's format."""
    if issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


if __name__ == "__main__":
    raise SystemExit(main())
