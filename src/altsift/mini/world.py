"""A procedural image world with ground-truth descriptions, and a web-like noisy pool generator.

Scenes are 48x48 RGB: one or two shapes (6 shapes x 8 colours x 2 sizes, ordered left to right) on a
plain, noisy or striped background, optionally with a rendered nonsense word in the top or bottom
12-px strip (Pillow's bundled font, so rendering is identical on every machine with the same Pillow).
The faithful caption names every object (size, colour, shape), left to right, plus the texture:
"a big red circle and a small blue square on stripes". The rendered word is never part of it.

Pool rows are one of four kinds (shares configurable):
  - ``faithful``: the ground-truth caption (a share of these images carry an unmentioned word),
  - ``vague``: "image", "dsc 6 6 4 6 photo" ... (numbers are split into digits by the tokenizer),
  - ``wrong``: the ground-truth caption of another random scene,
  - ``parrot``: the image carries word W and the caption is "W", "buy W", "W logo", "shop W brand" ...
Everything is driven by one ``numpy.random.Generator`` seed: same seed, same pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

IMAGE_SIZE = 48
STRIP = 12  # text strip height (top or bottom); shapes live in the band between the strips
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 215),
    "yellow": (235, 215, 40),
    "purple": (135, 50, 175),
    "orange": (240, 140, 30),
    "cyan": (40, 200, 210),
    "pink": (240, 125, 185),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
SIZES = {"small": (5.0, 6.5), "big": (8.5, 10.5)}
BACKGROUNDS = {"plain": "", "noise": "on noise", "stripes": "on stripes"}
FILLER = ("logo", "buy", "brand", "shop", "sale", "store", "the", "new")
VAGUE = ("image", "photo", "picture", "dsc", "img", "untitled", "file", "stock")
PARROT_TEMPLATES = ("{w}", "{w} logo", "buy {w}", "shop {w} brand", "{w} sale", "the {w} store", "new {w}")
VAGUE_TEMPLATES = (
    "image",
    "photo {n}",
    "dsc {n} image",
    "img {n}",
    "untitled {n}",
    "stock photo",
    "file {n}",
)
KINDS = ("faithful", "vague", "wrong", "parrot")
SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>")
STRUCTURE = ("a", "and", "on", "noise", "stripes")


def make_words(n: int = 32, seed: int = 1234) -> list[str]:
    """``n`` distinct pronounceable 4-5 letter nonsense words (fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    cons, vow = "bdfgklmnprstvz", "aeiou"
    taken = set(COLOURS) | set(SHAPES) | set(SIZES) | set(FILLER) | set(VAGUE) | set(STRUCTURE)
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(list(cons)) + rng.choice(list(vow)) for _ in range(2))
        if rng.random() < 0.5:
            w += rng.choice(list(cons))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


WORDS = tuple(make_words())


def vocabulary(words: tuple[str, ...] = WORDS) -> list[str]:
    """The word-level vocabulary shared by the mini models (specials first, ``<pad>`` = 0)."""
    base = [*SPECIAL, *STRUCTURE, *COLOURS, *SHAPES, *SIZES, *FILLER, *VAGUE]
    return base + [str(d) for d in range(10)] + [w for w in words if w not in base]


_TOKEN_RE = re.compile(r"[a-z]+|\d")


def split_words(text: str) -> list[str]:
    """Lower-case word split used by the tokenizer: letters runs, and every digit on its own."""
    return _TOKEN_RE.findall(text.lower())


@dataclass
class Obj:
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float
    rgb: tuple[int, int, int]
    angle: float


@dataclass
class Scene:
    objects: list[Obj]
    background: str
    bg_params: dict = field(default_factory=dict)
    word: str = ""
    word_top: bool = True
    word_white: bool = False
    word_x: int = 2

    def caption(self) -> str:
        """The faithful ground-truth description (never mentions the rendered word)."""
        parts = [f"a {o.size} {o.colour} {o.shape}" for o in self.objects]
        cap = " and ".join(parts)
        suffix = BACKGROUNDS[self.background]
        return f"{cap} {suffix}" if suffix else cap

    def short_caption(self) -> str:
        """Colour + shape only, e.g. "a red circle and a blue square"."""
        return " and ".join(f"a {o.colour} {o.shape}" for o in self.objects)


def sample_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    word: str | None = None,
    background: str | None = None,
    objects: list[tuple[str, str, str]] | None = None,
) -> Scene:
    """Draw a random scene. ``word=''`` means no text; ``objects`` fixes (shape, colour, size) triples."""
    if objects is None:
        k = n_objects if n_objects is not None else int(rng.integers(1, 3))
        objects = [
            (
                SHAPES[rng.integers(len(SHAPES))],
                list(COLOURS)[rng.integers(len(COLOURS))],
                list(SIZES)[rng.integers(2)],
            )
            for _ in range(k)
        ]
    k = len(objects)
    objs: list[Obj] = []
    for i, (shape, colour, size) in enumerate(objects):
        lo, hi = SIZES[size]
        r = float(rng.uniform(lo, hi))
        if k == 1:
            cx = float(rng.uniform(r + 2, IMAGE_SIZE - r - 2))
        else:  # left object in the left half, right object in the right half
            x0 = 0 if i == 0 else IMAGE_SIZE / 2
            cx = float(rng.uniform(x0 + r + 1, x0 + IMAGE_SIZE / 2 - r - 1))
        cy = float(rng.uniform(STRIP + min(r, 11) - 1, IMAGE_SIZE - STRIP - min(r, 11) + 1))
        base = np.array(COLOURS[colour])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-20, 21, 3), 0, 255))
        objs.append(Obj(shape, colour, size, cx, cy, r, rgb, float(rng.uniform(-0.3, 0.3))))
    bg = background or ("plain", "noise", "stripes")[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    grey = int(rng.integers(95, 170))
    params = {
        "grey": grey,
        "tint": rng.integers(-12, 13, 3).tolist(),
        "seed": int(rng.integers(2**31)),
        "period": int(rng.integers(4, 8)),
        "orient": int(rng.integers(3)),
    }
    w = "" if word is None else word
    return Scene(
        objs,
        bg,
        params,
        word=w,
        word_top=bool(rng.random() < 0.5),
        word_white=bool(rng.random() < 0.5),
        word_x=int(rng.integers(0, 12)),
    )


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=11)


def _polygon(o: Obj) -> list[tuple[float, float]]:
    r, a = o.radius, o.angle
    if o.shape == "square":
        pts = [(np.pi / 4 + k * np.pi / 2, r) for k in range(4)]
    elif o.shape == "diamond":
        pts = [(k * np.pi / 2, r) for k in range(4)]
    elif o.shape == "triangle":
        pts = [(-np.pi / 2 + k * 2 * np.pi / 3, r * 1.1) for k in range(3)]
    elif o.shape == "star":
        pts = [(-np.pi / 2 + k * np.pi / 5, r * 1.15 if k % 2 == 0 else r * 0.45) for k in range(10)]
    else:  # cross
        t, rr = 0.38 * r, r
        xy = [
            (-t, -rr),
            (t, -rr),
            (t, -t),
            (rr, -t),
            (rr, t),
            (t, t),
            (t, rr),
            (-t, rr),
            (-t, t),
            (-rr, t),
            (-rr, -t),
            (-t, -t),
        ]
        pts = [(np.arctan2(y, x), np.hypot(x, y)) for x, y in xy]
    return [(o.cx + d * np.cos(th + a), o.cy + d * np.sin(th + a)) for th, d in pts]


def render(scene: Scene) -> np.ndarray:
    """Render a scene to a (48, 48, 3) uint8 array (deterministic given the scene)."""
    p = scene.bg_params
    base = np.clip(np.array([p["grey"]] * 3) + np.array(p["tint"]), 0, 255).astype(np.float32)
    arr = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    arr[:] = base
    if scene.background == "noise":
        noise = np.random.default_rng(p["seed"]).normal(0, 28, (IMAGE_SIZE, IMAGE_SIZE, 1))
        arr += noise
    elif scene.background == "stripes":
        yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
        coord = (yy, xx, yy + xx)[p["orient"]]
        arr[((coord // p["period"]) % 2) == 1] -= 45
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for o in scene.objects:
        if o.shape == "circle":
            r = o.radius
            draw.ellipse((o.cx - r, o.cy - r, o.cx + r, o.cy + r), fill=o.rgb)
        else:
            draw.polygon(_polygon(o), fill=o.rgb)
    if scene.word:
        y = -2 if scene.word_top else IMAGE_SIZE - STRIP - 1
        fill = (255, 255, 255) if scene.word_white else (0, 0, 0)
        draw.text((scene.word_x, y), scene.word, fill=fill, font=_font())
    return np.asarray(im, dtype=np.uint8)


def render_many(scenes: list[Scene]) -> np.ndarray:
    """Stack renders of ``scenes`` into (n, 48, 48, 3) uint8."""
    out = np.empty((len(scenes), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for i, s in enumerate(scenes):
        out[i] = render(s)
    return out


# --------------------------------------------------------------------------- pools


@dataclass
class PoolShares:
    """Shares of each caption kind (normalised) and of faithful images carrying an unmentioned word."""

    faithful: float = 0.4
    vague: float = 0.2
    wrong: float = 0.15
    parrot: float = 0.25
    word_in_faithful: float = 0.3

    def probs(self) -> np.ndarray:
        p = np.array([self.faithful, self.vague, self.wrong, self.parrot], dtype=np.float64)
        return p / p.sum()


PRESET_SHARES = {
    "clean": PoolShares(1.0, 0.0, 0.0, 0.0),
    "noisy": PoolShares(0.4, 0.2, 0.15, 0.25),
    "parrot_heavy": PoolShares(0.35, 0.1, 0.1, 0.45),
}


@dataclass
class MiniPool:
    """A generated pool: images, alt-texts and the hidden ground truth (kind, GT caption, rendered word)."""

    images: np.ndarray  # (n, 48, 48, 3) uint8
    texts: list[str]
    kinds: list[str]
    gt_captions: list[str]
    words: list[str]  # rendered word or ""
    original_sizes: np.ndarray  # (n, 2) int: claimed original (width, height), img2dataset style
    uids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _vague(rng: np.random.Generator) -> str:
    t = VAGUE_TEMPLATES[rng.integers(len(VAGUE_TEMPLATES))]
    return t.format(n=int(rng.integers(10, 10000)))


def make_pool(
    n: int, shares: PoolShares | None = None, seed: int = 0, words: tuple[str, ...] = WORDS
) -> MiniPool:
    """Generate ``n`` web-like pairs with the given noise shares (deterministic in ``seed``)."""
    shares = shares or PoolShares()
    rng = np.random.default_rng(seed)
    kinds = [KINDS[k] for k in rng.choice(4, size=n, p=shares.probs())]
    scenes: list[Scene] = []
    texts: list[str] = []
    for kind in kinds:
        if kind == "parrot":
            w = words[rng.integers(len(words))]
            scene = sample_scene(rng, word=w)
            texts.append(PARROT_TEMPLATES[rng.integers(len(PARROT_TEMPLATES))].format(w=w))
        else:
            has_word = kind == "faithful" and rng.random() < shares.word_in_faithful
            if kind != "faithful":
                has_word = rng.random() < 0.3
            scene = sample_scene(rng, word=words[rng.integers(len(words))] if has_word else "")
            if kind == "faithful":
                texts.append(scene.caption())
            elif kind == "vague":
                texts.append(_vague(rng))
            else:
                texts.append(sample_scene(rng).caption())
        scenes.append(scene)
    # claimed source sizes: most images are large, ~10% are small thumbnails or extreme aspect ratios
    w_ = rng.integers(240, 1200, n)
    ratio = rng.uniform(0.6, 1.6, n)
    h_ = (w_ * ratio).astype(int)
    small = rng.random(n) < 0.07
    w_[small] = rng.integers(48, 190, int(small.sum()))
    wide = rng.random(n) < 0.03
    h_[wide] = np.maximum(w_[wide] // 4, 1)
    uid_rng = np.random.default_rng(seed + 7_777_777)
    uids = [f"{int(a):016x}{int(b):016x}" for a, b in uid_rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)]
    return MiniPool(
        images=render_many(scenes),
        texts=texts,
        kinds=kinds,
        gt_captions=[s.caption() for s in scenes],
        words=[s.word for s in scenes],
        original_sizes=np.stack([w_, h_], axis=1),
        uids=uids,
    )


# --------------------------------------------------------------------------- clean test sets


@dataclass
class TestSets:
    """Held-out clean evaluation data (no noise, no rendered text unless stated)."""

    zs_images: np.ndarray  # single-object images, no word
    zs_labels: np.ndarray  # index into zs_classes
    zs_classes: list[str]  # class names "a {colour} {shape}"
    zs_templates: list[str]  # prompt ensemble: "a {size} {cls}{background}" over sizes and textures
    zs_word_images: np.ndarray  # same scenes with a random word rendered (typographic distraction)
    bind_images: np.ndarray  # two objects, distinct colours and shapes
    bind_true: list[str]
    bind_swapped: list[str]  # colours swapped between the two objects
    ret_images: np.ndarray  # clean retrieval set (full GT captions)
    ret_texts: list[str]


def zs_classes() -> list[str]:
    return [f"a {c} {s}" for c in COLOURS for s in SHAPES]


def zs_templates() -> list[str]:
    """Prompt ensemble (as CLIP's ImageNet templates): ``{}`` is "colour shape"; sizes x textures."""
    return [f"a {size} {{}}" + (f" {bg}" if bg else "") for size in SIZES for bg in BACKGROUNDS.values()]


def make_test_sets(n_zs: int = 960, n_bind: int = 1000, n_ret: int = 1000, seed: int = 10_000) -> TestSets:
    """Build the clean test sets (seeded apart from any pool seed used for training)."""
    rng = np.random.default_rng(seed)
    classes = zs_classes()
    labels = np.arange(n_zs) % len(classes)
    zs_scenes, zs_word_scenes = [], []
    for lab in labels:
        colour, shape = list(COLOURS)[lab // len(SHAPES)], SHAPES[lab % len(SHAPES)]
        s = sample_scene(rng, objects=[(shape, colour, list(SIZES)[rng.integers(2)])], word="")
        zs_scenes.append(s)
        zs_word_scenes.append(_with_word(s, WORDS[rng.integers(len(WORDS))]))
    bind_scenes, swapped = [], []
    for _ in range(n_bind):
        c = rng.choice(len(COLOURS), 2, replace=False)
        sh = rng.choice(len(SHAPES), 2, replace=False)
        cols = [list(COLOURS)[i] for i in c]
        shp = [SHAPES[i] for i in sh]
        s = sample_scene(
            rng, objects=[(shp[0], cols[0], "big"), (shp[1], cols[1], "big")], word="", background="plain"
        )
        bind_scenes.append(s)
        swapped.append(f"a big {cols[1]} {shp[0]} and a big {cols[0]} {shp[1]}")
    ret_scenes = [sample_scene(rng, word="") for _ in range(n_ret)]
    return TestSets(
        zs_images=render_many(zs_scenes),
        zs_labels=labels,
        zs_classes=classes,
        zs_templates=zs_templates(),
        zs_word_images=render_many(zs_word_scenes),
        bind_images=render_many(bind_scenes),
        bind_true=[s.caption() for s in bind_scenes],
        bind_swapped=swapped,
        ret_images=render_many(ret_scenes),
        ret_texts=[s.caption() for s in ret_scenes],
    )


def _with_word(scene: Scene, word: str) -> Scene:
    return Scene(
        scene.objects, scene.background, scene.bg_params, word, scene.word_top, scene.word_white, scene.word_x
    )


@dataclass
class ProbeSet:
    """Text-spotting probe: the same scene with (A) and without (B) its word."""

    with_word: np.ndarray
    without_word: np.ndarray
    words: list[str]
    captions: list[str]


def make_probe_set(n: int = 500, seed: int = 20_000, words: tuple[str, ...] = WORDS) -> ProbeSet:
    rng = np.random.default_rng(seed)
    a, b, ws, caps = [], [], [], []
    for _ in range(n):
        w = words[rng.integers(len(words))]
        s = sample_scene(rng, n_objects=1, word=w)
        a.append(s)
        b.append(_with_word(s, ""))
        ws.append(w)
        caps.append(s.caption())
    return ProbeSet(render_many(a), render_many(b), ws, caps)
