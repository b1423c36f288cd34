"""``digit-pairs``: a 100-class RGB task composed from scikit-learn's digits (no download).

Class ``10 * a + b`` is the two-digit number "ab" (00-99): the tens digit ``a`` plays the part
of CIFAR-100's super-class (ten classes share it), the units digit the sub-class. A split's
canvases are rendered in memory, deterministically from ``(seed, split, size, count, style)``,
when the dataset is built: nothing is written to disk. What makes it hard, per canvas: each digit's own scale, position jitter
and rotation; stroke and background colours (a smooth colour gradient behind); faint, small
distractor digits (clutter); pixel noise. The test canvases are drawn from source digits
(sklearn's writers' samples) that no training canvas uses, so a test canvas shows digits the
network has never seen, in new combinations. A training run draws new canvases of the same
labels every epoch (:class:`DigitPairs` ``fresh``; ``--fixed-canvases`` turns it off).

The difficulty knobs live in :class:`PairStyle`; :data:`STYLE` is the level the calibration chose
(docs/results.md, "digit-pairs calibration").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from fcfd_viz.errors import UserError

NUM_CLASSES = 100
# 16 x 16 by default, as digits: a glyph then keeps about its native 8 px, the CIFAR stage
# layout still ends on a 4x4 map, and a step costs about 4x less than at CIFAR's 32 x 32
# (what makes the whole 5-seed study fit 2 CPU cores; --image-size 32 renders the paper's size)
NATIVE_SIZE = 16
SPLIT_SEED = 0  # the canvases never change, whatever the training seed
SOURCE_TEST_FRACTION = 0.25  # of sklearn's 1797 digits (~45 per digit), for test canvases only
# canvases per class (CIFAR-100: 500 / 100), chosen by measurement (docs/results.md)
TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 50

# The default teacher (`fcfd train-teacher --dataset digit-pairs`): the paper's CIFAR-100
# teacher for resnet32x4 -> resnet8x4, with the schedule chosen in the calibration
# (docs/results.md, "digit-pairs calibration"): twice the students' 20 epochs, because the 15-block resnet32x4 sits on
# the task's early plateau (loss ~ln 100) about twice as many steps as resnet8x4; lr 0.02,
# as for the digits teacher (resnet32x4 at 0.05 had not left the plateau after 1000
# steps), after one epoch of warm-up (the students' presets have it too)
TEACHER_ARCH = "resnet32x4"
TEACHER_TRAIN = {
    "epochs": 40,
    "lr": 0.02,
    "schedule": "cosine",
    "weight_decay": 5e-4,
    "warmup_epochs": 1,
}


@dataclass(frozen=True)
class PairStyle:
    """How the canvases vary. Lengths are fractions of the canvas side."""

    scale: tuple[float, float] = (0.42, 0.62)  # a digit's height
    jitter: float = 0.08  # each digit's centre moves by up to this much, each axis
    shift: float = 0.08  # the pair as a whole moves by up to this much, each axis
    rotation: float = 18.0  # degrees, each digit, either way
    contrast: float = 0.3  # least luminance difference between stroke and background
    clutter: int = 3  # faint distractor digits per canvas (0..clutter, uniformly)
    clutter_scale: tuple[float, float] = (0.18, 0.3)
    clutter_alpha: tuple[float, float] = (0.15, 0.45)
    noise: float = 0.06  # std of the pixel noise (pixels in [0, 1])

    def to_dict(self) -> dict:
        return asdict(self)


# Named difficulty levels, from the calibration (docs/results.md, "digit-pairs calibration"):
# ``plain`` only varies colours and digit size, ``hard`` is the class's defaults.
STYLES = {
    "plain": PairStyle(rotation=0.0, jitter=0.0, shift=0.0, clutter=0, noise=0.0),
    "mild": PairStyle(rotation=10.0, jitter=0.04, shift=0.05, clutter=1, noise=0.03),
    "medium": PairStyle(rotation=14.0, jitter=0.06, shift=0.06, clutter=2, noise=0.045),
    "hard": PairStyle(),
}
DEFAULT_STYLE = "hard"
STYLE = STYLES[DEFAULT_STYLE]


@lru_cache(maxsize=1)
def _glyphs() -> tuple[Tensor, np.ndarray]:
    """sklearn's digits as (1797, 1, 10, 10) ink in [0, 1] (a zero border, so bilinear
    sampling fades out at the glyph's edge) and their labels (1797,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    ink = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    return F.pad(ink, (1, 1, 1, 1)), d.target.astype(np.int64)


def source_split(seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices into sklearn's digits of the train and test source digits: disjoint,
    stratified by digit, fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    y = _glyphs()[1]
    tr, te = train_test_split(
        np.arange(len(y)), test_size=SOURCE_TEST_FRACTION, stratify=y, random_state=seed
    )
    return np.sort(tr), np.sort(te)


def _place(glyph: Tensor, centre: Tensor, half: Tensor, angle: Tensor, size: int) -> Tensor:
    """Ink of ``glyph`` (n, 1, 10, 10) drawn on (n, 1, size, size) canvases, centred at
    ``centre`` (n, 2) in [-1, 1] canvas coordinates, half-side ``half`` (n,), rotated by
    ``angle`` (n,) radians."""
    cos, sin = torch.cos(angle) / half, torch.sin(angle) / half
    # canvas point p -> glyph point A (p - c), A = R(-angle) / half
    a = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # (n, 2, 2)
    theta = torch.cat([a, -(a @ centre[:, :, None])], 2)  # (n, 2, 3)
    grid = F.affine_grid(theta, [len(glyph), 1, size, size], align_corners=False)
    return F.grid_sample(glyph, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _colours(rng: np.random.Generator, n: int, contrast: float) -> tuple[np.ndarray, ...]:
    """Background corner colours (n, 4, 3) and two stroke colours (n, 2, 3) whose luminance
    differs from the background's mean by at least ``contrast``."""
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    bg = rng.uniform(0, 1, (n, 1, 3)) + rng.uniform(-0.15, 0.15, (n, 4, 3))  # a gentle gradient
    bg = bg.clip(0, 1).astype(np.float32)
    bg_lum = (bg.mean(1) @ lum)[:, None]  # (n, 1)
    fg = rng.uniform(0, 1, (n, 2, 3)).astype(np.float32)
    for _ in range(50):  # rejection: a few rounds leave no canvas with a faint stroke
        bad = np.abs(fg @ lum - bg_lum) < contrast  # (n, 2)
        if not bad.any():
            break
        fg[bad] = rng.uniform(0, 1, (int(bad.sum()), 3))
    # the last few, if any: push the stroke's luminance away from the background's
    bad = np.abs(fg @ lum - bg_lum) < contrast
    fg[bad] = np.where(np.broadcast_to(bg_lum, bad.shape)[bad][:, None] > 0.5, 0.0, 1.0)
    return bg, fg


def render(
    train: bool,
    n: int,
    size: int = NATIVE_SIZE,
    seed: int = SPLIT_SEED,
    style: PairStyle | None = None,
    view: int = 0,
) -> tuple[Tensor, Tensor, np.ndarray]:
    """``n`` canvases of the train (or test) split, deterministic per ``(seed, split, n,
    size, style, view)``.

    Returns (images (n, 3, size, size) uint8, labels (n,) int64 in 0..99 with every class
    ``n // 100`` or ``n // 100 + 1`` times, sources (n, 2) the sklearn indices of the tens and
    the units digit). ``style`` None: the module's :data:`STYLE`. ``view`` k > 0: the same
    labels in the same order and source pool, everything else drawn anew (a fresh epoch).
    """
    if view:  # a fresh epoch's canvases are drawn once: not kept, so they evict nothing
        return _render.__wrapped__(train, n, size, seed, style or STYLE, view)
    return _render(train, n, size, seed, style or STYLE)


@lru_cache(maxsize=8)
def _render(
    train: bool, n: int, size: int, seed: int, s: PairStyle, view: int = 0
) -> tuple[Tensor, Tensor, np.ndarray]:
    """:func:`render` for one resolved style, kept for the process (a few MB per split)."""
    glyphs, digit_of = _glyphs()
    pool = source_split(seed)[0 if train else 1]
    by_digit = [pool[digit_of[pool] == d] for d in range(10)]
    rng = np.random.default_rng([seed, 0 if train else 1, size, n])
    labels = rng.permutation(np.arange(n) % NUM_CLASSES)  # balanced classes, shuffled
    if view:  # view 0 keeps drawing from the labels' generator (the canvases it always had)
        rng = np.random.default_rng([seed, 0 if train else 1, size, n, view])
    sources = np.zeros((n, 2), np.int64)  # sklearn indices of the tens and the units digit
    for k, col in enumerate((labels // 10, labels % 10)):
        for d in range(10):
            rows = np.flatnonzero(col == d)
            sources[rows, k] = rng.choice(by_digit[d], len(rows))

    half = rng.uniform(*s.scale, (n, 2))  # half of a side in [-1, 1] units = the height fraction
    # the tens digit left of centre, the units digit right of it: their centres sit a bit
    # closer than a digit's height (glyph ink is narrower than its square box)
    gap = 0.62 * half.mean(1, keepdims=True)  # (n, 1)
    cx = np.concatenate([-gap, gap], 1) + rng.uniform(-1, 1, (n, 2)) * 2 * s.jitter
    cy = rng.uniform(-1, 1, (n, 2)) * 2 * s.jitter
    pair_shift = rng.uniform(-1, 1, (n, 2)) * 2 * s.shift
    centre = np.stack([cx, cy], 2) + pair_shift[:, None, :]  # (n, 2 digits, 2 xy)
    angle = np.radians(rng.uniform(-s.rotation, s.rotation, (n, 2)))
    ink = torch.zeros(n, 2, size, size)  # (n, digit, H, W)
    for k in range(2):
        ink[:, k] = _place(
            glyphs[torch.from_numpy(sources[:, k])],
            torch.from_numpy(centre[:, k]).float(),
            torch.from_numpy(half[:, k]).float(),
            torch.from_numpy(angle[:, k]).float(),
            size,
        )[:, 0]
    ink = ink.clamp(0, 1)

    bg, fg = _colours(rng, n, s.contrast)
    # background: bilinear between the four corner colours (n, 3, size, size)
    corners = torch.from_numpy(bg).permute(0, 2, 1).reshape(n, 3, 2, 2)
    image = F.interpolate(corners, size=(size, size), mode="bilinear", align_corners=True)

    # clutter: small faint digits anywhere, drawn under the two label digits
    counts = rng.integers(0, s.clutter + 1, n)
    for k in range(int(counts.max(initial=0))):
        idx = np.flatnonzero(counts > k)
        g = glyphs[torch.from_numpy(rng.choice(pool, len(idx)))]
        c = torch.from_numpy(rng.uniform(-0.85, 0.85, (len(idx), 2))).float()
        h = torch.from_numpy(rng.uniform(*s.clutter_scale, len(idx))).float()
        a = torch.from_numpy(np.radians(rng.uniform(-180, 180, len(idx)))).float()
        alpha = torch.from_numpy(rng.uniform(*s.clutter_alpha, len(idx))).float()
        colour = torch.from_numpy(rng.uniform(0, 1, (len(idx), 3))).float()
        blot = _place(g, c, h, a, size).clamp(0, 1) * alpha[:, None, None, None]  # (m,1,H,W)
        image[idx] = image[idx] * (1 - blot) + colour[:, :, None, None] * blot
    for k in range(2):
        stroke = torch.from_numpy(fg[:, k])[:, :, None, None]  # (n, 3, 1, 1)
        image = image * (1 - ink[:, k : k + 1]) + stroke * ink[:, k : k + 1]

    noise = torch.from_numpy(rng.standard_normal((n, 3, size, size)).astype(np.float32))
    image = (image + s.noise * noise).clamp(0, 1)
    return (image * 255).round().to(torch.uint8), torch.from_numpy(labels), sources


class DigitPairs(Dataset):
    """The embedded 100-class task: ``size`` x ``size`` RGB canvases of two-digit numbers.

    ``n`` canvases (default :data:`TRAIN_PER_CLASS` / :data:`TEST_PER_CLASS` per class), each
    standardised on its own (:func:`standardise`). ``fresh`` (training split only; what
    training runs use unless ``--fixed-canvases``): every epoch trains on new canvases of
    the same labels (:meth:`set_epoch`), the generator serving as the augmentation, as
    CIFAR's crops and flips do (docs/results.md, "digit-pairs calibration"). The test split
    never changes. ``augment=True`` adds a random shift of up to size/8 pixels (CIFAR's padded
    crop), off by default: it kept resnet8x4 on the early plateau past 1500 steps (ibid.).
    """

    def __init__(
        self,
        train: bool,
        size: int = NATIVE_SIZE,
        n: int | None = None,
        augment: bool = False,
        style: PairStyle | None = None,
        fresh: bool = False,
    ) -> None:
        if size < 16:
            raise UserError(
                f"digit-pairs image size must be >= 16, got {size}; use --image-size 16"
            )
        per_class = TRAIN_PER_CLASS if train else TEST_PER_CLASS
        n = n if n is not None else per_class * NUM_CLASSES
        if n < 1:
            raise UserError(f"digit-pairs needs at least one canvas, got {n}")
        self.style = style or STYLE  # the module's style at build time (calibration sets it)
        images, self.targets, self.sources = render(train, n, size, SPLIT_SEED, self.style)
        self.images = images  # (n, 3, size, size) uint8: 4x less memory than floats
        self.augment = bool(augment)
        self.pad = max(1, size // 8)
        self.fresh = bool(train and fresh)
        self.view = 0

    def set_epoch(self, epoch: int) -> None:
        """With ``fresh``, show :func:`render`'s view ``epoch`` (a resumed run sees what an
        uninterrupted one would); the trainer calls it via :func:`~fcfd_viz.data.loaders.set_epoch`."""
        if not self.fresh or epoch == self.view:
            return
        n, size = len(self.targets), self.images.shape[-1]
        self.images, targets, self.sources = render(True, n, size, SPLIT_SEED, self.style, epoch)
        assert torch.equal(targets, self.targets)  # a view keeps every canvas's label
        self.view = epoch

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        img = standardise(self.images[i : i + 1])[0]  # (3, S, S)
        if self.augment:
            p = self.pad
            padded = F.pad(img, (p, p, p, p), mode="replicate")
            dx, dy = torch.randint(0, 2 * p + 1, (2,)).tolist()
            img = padded[:, dy : dy + img.shape[1], dx : dx + img.shape[2]]
        return img, int(self.targets[i])


# floor of a canvas's channel std (pixels in [0, 1]): a flat channel is not blown up to noise
STD_FLOOR = 0.05


def standardise(images: Tensor) -> Tensor:
    """Canvases as the networks see them: each canvas and channel shifted to mean 0 and divided
    by its own std (plus :data:`STD_FLOOR`), so that a digit is told by its shape against its
    own background whatever the colours. With one set of statistics for the whole split
    instead (CIFAR's normalisation), resnet8x4 sat on the task's early plateau (loss ~ln 100)
    for 1240 steps and resnet32x4 for 1200-2800; standardised per canvas, 350 and 250
    (docs/results.md, "digit-pairs calibration"). (n, 3, S, S) uint8 -> (n, 3, S, S) float32
    """
    x = images.float() / 255
    mean = x.mean((2, 3), keepdim=True)  # (n, 3, 1, 1)
    std = x.std((2, 3), keepdim=True)  # (n, 3, 1, 1)
    return (x - mean) / (std + STD_FLOOR)
