"""Procedural face portraits: the "real" images of the synthetic dataset.

Every face is drawn from scratch with vectorised numpy (no external assets): a background,
clothes, neck, ears, a shaded skin ellipse with skin texture, eyes, brows, nose, mouth, hair
and optional beard or glasses, then a global light gradient, colour cast and vignette. All
random choices come from the `rng` you pass in, so a face is fully determined by its seed.

The layout mimics an aligned face crop like the Kaggle/OpenForensics images: one roughly
frontal face filling most of the frame. The returned `FaceGeometry` (ellipse + landmarks) is
what a real pipeline would get from a face detector and landmark model; the manipulations use
it to place masks and warps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ._raster import blend, blur3, ellipse_sdf, grid, rgb, smooth_noise, soft_edge, to_hwc_uint8

# Skin tones from light to deep (sRGB); a face interpolates between two neighbours.
SKIN_TONES = np.array(
    [[255, 224, 200], [241, 194, 160], [224, 172, 130], [198, 140, 100], [160, 105, 72], [118, 76, 52], [86, 56, 40]],
    dtype=np.float32,
)
HAIR_COLORS = np.array(
    [
        [22, 18, 16],
        [45, 32, 24],
        [85, 58, 38],
        [130, 92, 58],
        [196, 162, 104],
        [140, 64, 32],
        [150, 148, 145],
        [205, 200, 190],
    ],
    dtype=np.float32,
)
HAIR_P = np.array([0.25, 0.22, 0.18, 0.1, 0.09, 0.05, 0.07, 0.04])
IRIS_COLORS = np.array(
    [[70, 45, 30], [110, 72, 40], [60, 95, 140], [80, 115, 80], [125, 110, 70], [40, 30, 25]], dtype=np.float32
)


@dataclass(frozen=True)
class FaceGeometry:
    """Where the face is: ellipse (centre, half axes, roll) and landmarks, all in pixels (x, y)."""

    size: int
    center: tuple[float, float]
    axes: tuple[float, float]  # half-width a, half-height b of the face ellipse
    angle: float  # roll in degrees, positive = clockwise on screen
    left_eye: tuple[float, float]  # the eye on the left of the image
    right_eye: tuple[float, float]
    nose: tuple[float, float]  # nose tip
    mouth: tuple[float, float]  # mouth centre
    eye_size: tuple[float, float]  # half-width, half-height of one eye
    mouth_width: float  # half-width of the mouth

    def landmarks(self) -> np.ndarray:
        """The four landmarks (left eye, right eye, nose, mouth) as a 4 x 2 float array of (x, y)."""
        return np.array([self.left_eye, self.right_eye, self.nose, self.mouth], dtype=np.float64)

    def face_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel coordinates (u, v) in pixels along the face's own axes (v points to the chin)."""
        ys, xs = grid(self.size)
        t = math.radians(self.angle)
        dx, dy = xs - self.center[0], ys - self.center[1]
        return (math.cos(t) * dx + math.sin(t) * dy, -math.sin(t) * dx + math.cos(t) * dy)

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """Map a face-frame point (u, v) to image coordinates (x, y)."""
        t = math.radians(self.angle)
        return (self.center[0] + math.cos(t) * u - math.sin(t) * v, self.center[1] + math.sin(t) * u + math.cos(t) * v)

    def to_dict(self) -> dict:
        """JSON-friendly dict (rounded to 0.01 px)."""
        return {
            k: (np.round(v, 2).tolist() if isinstance(v, tuple) else round(float(v), 2))
            for k, v in asdict(self).items()
        }


def _pick(rng: np.random.Generator, table: np.ndarray, p=None) -> np.ndarray:
    return table[rng.choice(len(table), p=p)].copy()


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    c = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[i + 1] * (t - i)
    return c * rng.uniform(0.94, 1.06, 3).astype(np.float32)


def _region(geo: FaceGeometry, u: np.ndarray, v: np.ndarray, cu: float, cv: float, hu: float, hv: float):
    """Image-space slice covering the face-frame box [cu +- hu] x [cv +- hv], plus (u, v) inside it.

    Drawing each part only inside its own box keeps rendering fast (most parts are small)."""
    corners = np.array([geo.to_image(cu + su * hu, cv + sv * hv) for su in (-1, 1) for sv in (-1, 1)])
    lo = np.clip(np.floor(corners.min(0)).astype(int) - 1, 0, geo.size)
    hi = np.clip(np.ceil(corners.max(0)).astype(int) + 2, lo, geo.size)  # empty if off-image
    sl = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    return sl, u[sl], v[sl]


def _sub(img: np.ndarray, sl) -> np.ndarray:
    """The 3 x h x w view of `img` under a 2-D slice."""
    return img[:, sl[0], sl[1]]


def render_face(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, FaceGeometry]:
    """Render one random face portrait: (size x size x 3 uint8 image, its FaceGeometry)."""
    S = size
    k = S / 256  # lengths are tuned at 256 px and scale with the image
    ys, xs = grid(S)
    light = rng.normal(0, 1, 3) * np.array([0.6, 0.4, 0.0]) + np.array([0, -0.3, 1.0])
    lx, ly, lz = (float(x) for x in light / np.linalg.norm(light))

    # --- background: gradient between two muted colours + slow blotches + fine texture
    grey = rng.uniform(40, 215)
    c1, c2 = (grey + rng.uniform(0.15, 0.6) * (rng.uniform(20, 235, 3) - grey) for _ in range(2))
    d = rng.normal(size=2)
    dx, dy = (float(x) / (S * math.hypot(*d) + 1e-6) for x in d)
    ramp = np.clip(0.5 + (xs - S / 2) * dx + (ys - S / 2) * dy, 0, 1)
    shade = (
        1
        + rng.uniform(0.03, 0.12) * smooth_noise(rng, (S, S), S / rng.uniform(3, 7))
        + rng.uniform(0.0, 0.06) * smooth_noise(rng, (S, S), rng.uniform(3, 12) * k)
    )
    img = (rgb(c1) + rgb(c2 - c1) * ramp) * shade

    # --- face placement (a loosely aligned crop, like a face detector's output)
    a = S * rng.uniform(0.22, 0.28)
    b = a * rng.uniform(1.2, 1.38)
    center = (S * (0.5 + rng.normal(0, 0.02)), S * rng.uniform(0.5, 0.56))
    angle = float(rng.uniform(-10, 10))
    geo = FaceGeometry(S, center, (a, b), angle, (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), 0)
    u, v = geo.face_frame()
    skin = _skin_tone(rng)
    hair = _pick(rng, HAIR_COLORS, HAIR_P)
    style = rng.choice(["short", "long", "bald", "bangs"], p=[0.4, 0.35, 0.08, 0.17])

    # --- long hair behind the head, neck, clothes, ears
    if style == "long":
        hb = b * rng.uniform(1.3, 1.6)
        sl, uu, vv = _region(geo, u, v, 0, b * 0.35, a * 1.5, hb)
        back = soft_edge(ellipse_sdf(uu, vv - b * 0.35, a * rng.uniform(1.25, 1.45), hb))
        blend(_sub(img, sl), hair * 0.8, back)
    sl, uu, vv = _region(geo, u, v, 0, b * 1.5, a * 0.7, b * 0.9)
    neck = soft_edge(np.maximum(np.abs(uu) - a * rng.uniform(0.5, 0.62), b * 0.3 - vv))
    blend(_sub(img, sl), skin * 0.75, neck)
    cloth = rng.uniform(15, 230, 3)
    sl, uu, vv = _region(geo, u, v, 0, b * 2.0, a * 2.6, b * 1.0)
    torso = soft_edge(ellipse_sdf(uu, vv - b * rng.uniform(2.0, 2.2), a * rng.uniform(1.9, 2.4), b * 0.95))
    blend(_sub(img, sl), rgb(cloth) * (0.75 + 0.25 * np.clip(1 - vv / (3 * b), 0, 1)), torso)
    eye_v = -b * rng.uniform(0.05, 0.15)
    for s in (-1, 1):
        sl, uu, vv = _region(geo, u, v, s * a * 0.97, eye_v + b * 0.12, a * 0.2, b * 0.25)
        ear = soft_edge(ellipse_sdf(uu - s * a * 0.97, vv - eye_v - b * 0.12, a * 0.14, b * 0.2))
        blend(_sub(img, sl), skin * 0.85, ear)

    # --- face: jaw-shaped ellipse, Lambertian shading on an ellipsoid, skin texture, cheeks
    fsl, uu, vv = _region(geo, u, v, 0, 0, a * 1.02, b * 1.02)
    fh, fw = uu.shape
    jaw = rng.uniform(0.1, 0.35)
    w = 1 - jaw * np.clip(vv / b, 0, 1) ** 2
    face = soft_edge((np.sqrt((uu / (a * w)) ** 2 + (vv / b) ** 2) - 1) * a * w)
    nz = np.sqrt(np.clip(1 - (uu / a) ** 2 - (vv / b) ** 2, 0.04, 1))
    diffuse = np.clip((uu / a) * lx + (vv / b) * ly + nz * lz, 0, 1)
    amb = rng.uniform(0.55, 0.75)
    texture = 1 + rng.uniform(0.02, 0.05) * (
        0.7 * smooth_noise(rng, (fh, fw), 3 * k) + 0.5 * smooth_noise(rng, (fh, fw), 10 * k)
    )
    spec = (
        rng.uniform(0, 0.12) * 255 * np.exp(-((uu - a * 0.2 * lx) ** 2 + (vv + b * 0.45) ** 2) / (2 * (a * 0.25) ** 2))
    )  # forehead highlight
    layer = rgb(skin) * ((amb + (1 - amb) * diffuse) * texture) + spec
    for s in (-1, 1):  # cheeks: a little less green/blue = a little redder
        cheek = rng.uniform(0, 0.08) * np.exp(-((uu - s * a * 0.5) ** 2 + (vv - b * 0.2) ** 2) / (2 * (a * 0.2) ** 2))
        layer[1:] *= 1 - cheek * rgb([0.6, 0.5, 0])[:2]
    blend(_sub(img, fsl), layer, face)
    light_level = float(diffuse.mean())

    # --- eyes: socket shadow, almond white, iris, pupil, catchlight, upper lid; then the brow
    eye_u = a * rng.uniform(0.36, 0.44)
    ew = a * rng.uniform(0.16, 0.21)
    eh = ew * rng.uniform(0.38, 0.52)
    iris_c = _pick(rng, IRIS_COLORS)
    gaze = rng.uniform(-0.2, 0.2) * ew
    for s in (-1, 1):
        sl, du, dv = _region(geo, u, v, s * eye_u, eye_v - ew * 0.6, ew * 1.5, ew * 1.6)
        du, dv = du - s * eye_u, dv - eye_v
        dv = dv + s * rng.uniform(-0.08, 0.08) * du  # eye tilt
        patch = _sub(img, sl)
        socket = np.exp(-((du / (ew * 1.3)) ** 2 + ((dv + eh * 0.6) / (eh * 2.2)) ** 2))
        patch *= 1 - rng.uniform(0.08, 0.2) * socket
        lens = np.clip(1 - (du / ew) ** 2, 0, 1)
        white = soft_edge(np.abs(dv) - eh * lens) * (np.abs(du) < ew)
        blend(patch, np.array([232, 226, 220]) * (0.75 + 0.25 * light_level), white)
        rr = np.hypot(du - gaze, dv)
        ri = eh * rng.uniform(0.9, 1.05)
        blend(patch, rgb(iris_c) * (1.15 - 0.5 * (rr / ri) ** 2), soft_edge(rr - ri) * white)
        blend(patch, (12, 10, 10), soft_edge(rr - ri * rng.uniform(0.35, 0.5)) * white)
        catch = soft_edge(np.hypot(du - gaze + lx * ri * 0.4, dv + ri * 0.35) - max(1.0, ri * 0.2))
        blend(patch, (245, 245, 245), catch * white * 0.9)
        lid = soft_edge(np.abs(dv + eh * lens) - max(0.8, eh * 0.18)) * (np.abs(du) < ew * 1.05)
        blend(patch, skin * 0.35, lid * 0.85)
        bw = ew * rng.uniform(1.05, 1.3)  # brow: a thick tapered arc in a darkened hair colour
        th = b * rng.uniform(0.018, 0.035)
        centre = (
            -eh
            - ew * rng.uniform(0.45, 0.8)
            - th * rng.uniform(0.5, 2.0) * (1 - (du / bw) ** 2)
            + s * rng.uniform(-0.1, 0.1) * du
        )
        thick = th * (1 - 0.55 * np.clip((s * du / bw + 1) / 2, 0, 1))
        brow = soft_edge(np.abs(dv - centre) - thick) * soft_edge(np.abs(du) - bw)
        blend(patch, np.minimum(hair, skin * 0.6) * 0.85, brow * 0.9)

    # --- nose: shadow along the side away from the light, shadow below, tip highlight, nostrils
    nose_v = b * rng.uniform(0.18, 0.28)
    nw = a * rng.uniform(0.15, 0.22)
    sl, du, dv = _region(geo, u, v, 0, (eye_v + nose_v) / 2, nw * 1.5, (nose_v - eye_v) / 2 + nw)
    dv = dv - nose_v  # origin at the nose tip
    side = -1.0 if lx > 0 else 1.0
    ridge = np.exp(-((du - side * nw * 0.55) ** 2) / (2 * (nw * 0.25) ** 2)) * np.clip(1 + dv / (nose_v - eye_v), 0, 1)
    under = np.exp(-(du**2 / (2 * (nw * 0.8) ** 2) + (dv - nw * 0.45) ** 2 / (2 * (nw * 0.18) ** 2)))
    tip = np.exp(-(du**2 + (dv + nw * 0.15) ** 2) / (2 * (nw * 0.28) ** 2))
    patch = _sub(img, sl)
    patch *= 1 - 0.16 * ridge - 0.18 * under + 0.1 * tip
    for s in (-1, 1):
        nostril = soft_edge(ellipse_sdf(du - s * nw * 0.45, dv - nw * 0.12, nw * 0.26, nw * 0.13))
        blend(patch, skin * 0.35, nostril * 0.85)

    # --- beard (some faces), drawn before the mouth so the lips stay visible
    mouth_v = b * rng.uniform(0.45, 0.56)
    if rng.random() < 0.12:
        uu, vv = u[fsl], v[fsl]
        fuzz = 0.85 + 0.15 * smooth_noise(rng, (fh, fw), 3 * k)
        beard = face * soft_edge(mouth_v - b * 0.12 - vv, b * 0.08) * rng.uniform(0.55, 0.9)
        blend(_sub(img, fsl), rgb(hair * 0.9) * fuzz, beard)

    # --- mouth: upper and lower lip lens shapes, sometimes open with teeth
    mw = a * rng.uniform(0.28, 0.42)
    sl, du, dv = _region(geo, u, v, 0, mouth_v, mw * 1.1, b * 0.14)
    dv = dv - mouth_v
    patch = _sub(img, sl)
    lt_u, lt_l = b * rng.uniform(0.025, 0.05), b * rng.uniform(0.035, 0.07)
    line = -rng.uniform(-0.3, 0.8) * lt_u * (du / mw) ** 2  # corners up = smile
    prof = np.clip(1 - (du / mw) ** 2, 0, 1)
    gap = b * rng.uniform(0.02, 0.06) if rng.random() < 0.15 else 0.0
    lip = skin * rng.uniform(0.45, 0.65) + np.array([120, 35, 45]) * rng.uniform(0.2, 0.45)
    upper = soft_edge(np.maximum(line - gap / 2 - lt_u * prof - dv, dv - line + gap / 2)) * (prof > 0)
    lower = soft_edge(np.maximum(dv - line - gap / 2 - lt_l * prof, line + gap / 2 - dv)) * (prof > 0)
    if gap:
        inside = soft_edge(np.abs(dv - line) - gap / 2 * prof) * (prof > 0)
        blend(patch, (55, 20, 25), inside)
        blend(patch, (225, 220, 205), inside * soft_edge(dv - line + gap * 0.05 * prof))
    blend(patch, lip * 0.82, upper)
    blend(patch, lip, lower)
    blend(patch, lip * 0.45, soft_edge(np.abs(dv - line) - 0.7) * (prof > 0.02) * 0.8)

    # --- hair on top (fringe / hairline), with a strand texture and its own shading
    if style != "bald":
        sl, uu, vv = _region(geo, u, v, 0, -b * 0.12, a * 1.25, b * 1.12)
        hv = -b * (rng.uniform(0.45, 0.62) if style != "bangs" else rng.uniform(0.2, 0.32))
        hairline = hv + b * rng.uniform(0.05, 0.25) * (uu / a) ** 2 + rng.uniform(-0.12, 0.12) * uu
        outer = soft_edge(ellipse_sdf(uu, vv + b * 0.12, a * rng.uniform(1.08, 1.2), b * rng.uniform(1.0, 1.1)))
        sides = soft_edge(vv - (eye_v if style != "long" else b * 0.35), b * 0.1)
        w = 1 - jaw * np.clip(vv / b, 0, 1) ** 2
        inner = soft_edge((np.sqrt((uu / (a * w)) ** 2 + (vv / b) ** 2) - 1) * a * w)
        top = outer * sides * (1 - inner * soft_edge(hairline - vv, 1.5))
        phi = rng.uniform(0, math.pi)
        strands = np.sin(
            (uu * math.cos(phi) + vv * math.sin(phi)) * (2 * math.pi / (rng.uniform(3, 6) * k))
            + 4 * smooth_noise(rng, uu.shape, 32 * k)
        )
        hshade = 0.7 + 0.3 * np.clip((uu / (1.2 * a)) * lx + (vv / (1.1 * b)) * ly + 0.6, 0, 1)
        tex = hshade * (1 + 0.12 * strands + 0.06 * smooth_noise(rng, uu.shape, 2 * k))
        blend(_sub(img, sl), rgb(hair) * tex, top)

    # --- glasses (some faces): rounded-rectangle rims, bridge and a faint lens tint
    if rng.random() < 0.15:
        frame = rng.uniform(10, 120, 3) if rng.random() < 0.7 else np.array([170, 160, 140])
        t = max(1.0, S * rng.uniform(0.004, 0.008))
        hx, hy, rad = ew * 1.45, ew * 1.05, ew * 0.5
        sl, uu, vv = _region(geo, u, v, 0, eye_v, eye_u + hx + 2 * t, hy + 3 * t)
        patch = _sub(img, sl)
        for s in (-1, 1):
            qx, qy = np.abs(uu - s * eye_u) - (hx - rad), np.abs(vv - eye_v - eh * 0.3) - (hy - rad)
            sd = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rad
            patch *= 1 - 0.06 * soft_edge(sd)
            blend(patch, frame, soft_edge(np.abs(sd) - t))
        blend(patch, frame, soft_edge(np.abs(vv - eye_v + eh * 0.2) - t * 0.8) * (np.abs(uu) < eye_u - hx + 1))

    # --- global light: gradient, colour cast, vignette, slight defocus
    gx, gy = (float(x) for x in rng.normal(size=2) * rng.uniform(0, 0.12))
    vig = rng.uniform(0, 0.25)
    img *= 1 + gx * (xs / S - 0.5) + gy * (ys / S - 0.5) - vig * 2 * ((xs / S - 0.5) ** 2 + (ys / S - 0.5) ** 2)
    img *= rgb(rng.uniform(0.93, 1.07, 3))
    out = to_hwc_uint8(blur3(img, rng.uniform(0.0, 0.6) * k))
    pts = [geo.to_image(pu, pv) for pu, pv in ((-eye_u, eye_v), (eye_u, eye_v), (0, nose_v), (0, mouth_v))]
    return out, FaceGeometry(S, center, (a, b), angle, *pts, (ew, eh), mw)
