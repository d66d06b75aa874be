"""Seeded synthetic remote-sensing scenes with known object attributes and instance masks.

Kept in one file (a little over 300 lines) on purpose: the scene drawing and the three task wordings built on it
(region attributes, MGIMM descriptions, GeoChat referring) read the same seeded objects; apart, a change to the
drawing could silently disagree with the answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.tokens import MGIMM_ATTRIBUTE_PROMPT, MGIMM_DESCRIPTION_PROMPT, OVERVIEW, region_list

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "blue": (40, 80, 210),
    "green": (40, 165, 60),
    "yellow": (225, 205, 40),
    "white": (238, 238, 238),
}
# Each category has its own footprint: (shape word, base length, aspect ratio).
CATEGORIES: dict[str, tuple[str, float, float]] = {
    "storage tank": ("round", 1.0, 1.0),
    "building": ("square", 1.0, 1.0),
    "vehicle": ("rectangular", 1.2, 0.5),
    "pool": ("oval", 1.3, 0.6),
}
SIZES: dict[str, float] = {"small": 0.11, "large": 0.2}  # base length as a share of the scene side


@dataclass
class SceneObject:
    """One drawn object: its attributes and instance mask."""

    category: str
    colour: str
    size: str
    shape: str
    mask: np.ndarray
    centre: tuple[float, float]

    @property
    def answer(self) -> str:
        """The attribute phrase, e.g. "a large red round storage tank"."""
        return f"a {self.size} {self.colour} {self.shape} {self.category}"


def _ground(rng: np.random.Generator, side: int) -> np.ndarray:
    base = rng.uniform(95, 150) + rng.uniform(-15, 15, size=3)
    coarse = rng.normal(0, 12, size=(side // 16 + 1, side // 16 + 1, 3)).astype(np.float32)
    low = coarse.repeat(16, axis=0).repeat(16, axis=1)[:side, :side]
    fine = rng.standard_normal(size=(side, side, 3), dtype=np.float32) * 8
    return np.clip(base + low + fine, 0, 255)


def _footprint(category: str, size: str, side: int, centre: tuple[float, float], angle: float) -> np.ndarray:
    shape, length, aspect = CATEGORIES[category]
    half_l = SIZES[size] * side * length / 2
    half_w = half_l * aspect
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = centre
    if shape in ("round", "oval"):
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([half_l * np.cos(t), half_w * np.sin(t)], 1)
    else:
        pts = np.array([[-half_l, -half_w], [half_l, -half_w], [half_l, half_w], [-half_l, half_w]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = pts @ rot.T + [cx, cy]
    draw.polygon([tuple(p) for p in pts], fill=1)
    return np.asarray(canvas, dtype=bool)


def _category_pattern(
    category: str,
    mask: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    centre: tuple[float, float],
    angle: float,
    half_length: float,
) -> np.ndarray:
    """Per-pixel (gain, white blend) of an object's interior pattern, as its category looks from above.

    Storage tanks have a dark centre (the roof's shadowed vent), buildings a dark roof ridge along their
    axis, vehicles a dark windshield band near one end, pools a light rim (the deck around the water).
    """
    u = (xs - centre[0]) * np.cos(angle) + (ys - centre[1]) * np.sin(angle)
    v = -(xs - centre[0]) * np.sin(angle) + (ys - centre[1]) * np.cos(angle)
    gain, white = np.ones(xs.size), np.zeros(xs.size)
    if category == "storage tank":
        gain[np.hypot(u, v) < 0.4 * half_length] = 0.5
    elif category == "building":
        gain[np.abs(v) < max(1.0, 0.12 * half_length)] = 0.55
    elif category == "vehicle":
        gain[(u > 0.25 * half_length) & (u < 0.6 * half_length)] = 0.4
    else:  # pool: light rim where the mask meets ground
        inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        interior = np.zeros_like(mask)
        interior[1:-1, 1:-1] = inner
        rim = ~interior[ys, xs]
        gain[rim], white[rim] = 0.4, 0.6
    return np.stack([gain, white], 1)


def generate_scene(
    seed: int, side: int = 128, min_objects: int = 2, max_objects: int = 4
) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw one scene: textured ground and non-overlapping objects of random attributes.

    Returns:
        The HxWx3 uint8 image and its objects (in drawing order).
    """
    rng = np.random.default_rng(seed)
    image = _ground(rng, side)
    boxes: list[tuple[int, int, int, int]] = []
    objects: list[SceneObject] = []
    want = int(rng.integers(min_objects, max_objects + 1))
    for _ in range(want * 20):
        if len(objects) == want:
            break
        category = str(rng.choice(list(CATEGORIES)))
        size, colour = str(rng.choice(list(SIZES))), str(rng.choice(list(COLOURS)))
        margin = SIZES[size] * side * 0.75 + 2
        centre = (float(rng.uniform(margin, side - margin)), float(rng.uniform(margin, side - margin)))
        angle = float(rng.integers(0, 2)) * np.pi / 2  # axis-aligned, like buildings on a street grid
        mask = _footprint(category, size, side, centre, angle)
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        box = (xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3)  # 3 px of ground between objects
        if any(box[0] <= b[2] and b[0] <= box[2] and box[1] <= b[3] and b[1] <= box[3] for b in boxes):
            continue
        boxes.append(box)
        jitter = rng.normal(0, 10, size=3)
        pixels = np.array(COLOURS[colour]) + jitter + rng.normal(0, 6, size=(mask.sum(), 3))
        shade = _category_pattern(
            category, mask, ys, xs, centre, angle, SIZES[size] * side * CATEGORIES[category][1] / 2
        )
        image[mask] = np.clip(pixels * shade[:, 0:1] + 255 * shade[:, 1:2], 0, 255)
        objects.append(SceneObject(category, colour, size, CATEGORIES[category][0], mask, centre))
    return image.astype(np.uint8), objects


def position_phrase(centre: tuple[float, float], side: int) -> str:
    """Rough position on a 3x3 grid: "at the top left", "in the center", "on the right", ..."""
    col = ("left", "", "right")[min(2, int(3 * centre[0] / side))]
    row = ("top", "", "bottom")[min(2, int(3 * centre[1] / side))]
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    return f"on the {col}" if col else "in the center"


def describe_scene(objects: list[SceneObject], side: int) -> str:
    """A grounded detailed description naming every object's attributes and position, in reading order."""
    ordered = sorted(objects, key=lambda o: (int(3 * o.centre[1] / side), o.centre[0]))
    parts = [f"{o.answer} {position_phrase(o.centre, side)}" for o in ordered]
    return f"there are {len(objects)} objects in the image . " + " . ".join(parts) + " ."


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight (x1, y1, x2, y2) pixel box of a boolean mask."""
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


class SyntheticRegionScenes:
    """A lazily generated, seeded set of region Q&A samples in the Aquila-plus conversation form.

    Training samples hold every object's question in one multi-turn conversation (in random order);
    evaluation samples (`one_question_per_sample=True`) ask about one object each, with its answer
    in `meta["answer"]`.

    Args:
        num_scenes: Number of scenes.
        seed: Base seed; scene i uses seed * 1_000_003 + i, so different seeds give disjoint scenes.
        side: Scene side in pixels.
        min_objects: Fewest objects per scene.
        max_objects: Most objects per scene.
        one_question_per_sample: One sample per (scene, object) instead of one per scene.
        shuffle_masks: Control: permute masks between the regions of a scene (a derangement) so a
            question about regionK carries another object's mask; for "box_attributes", the box is another
            object's of the same scene while the answer stays the asked object's.
        task: "region_qa" (Aquila-plus region questions), "box_attributes" (MGIMM stage 1: one box per
            sample, answer = attribute phrase) or "description" (MGIMM stage 2: every box of the scene,
            answer = a detailed description with each object's attributes and position) or "refer" (GeoChat
            referring: one object per sample, "[refer] Where is the large red round storage tank?" -> its box
            as text on the 0-100 grid, `{<x1><y1><x2><y2>}`; the rough position is added to the phrase when
            another object of the scene has the same attributes).
    """

    TASKS = ("region_qa", "box_attributes", "description", "refer")

    def __init__(
        self,
        num_scenes: int = 1000,
        seed: int = 0,
        side: int = 128,
        min_objects: int = 2,
        max_objects: int = 4,
        one_question_per_sample: bool = False,
        shuffle_masks: bool = False,
        task: str = "region_qa",
    ) -> None:
        if task not in self.TASKS:
            raise ValueError(f"task must be one of {self.TASKS}, got {task!r}")
        self.task = task
        if min_objects < 1 or max_objects < min_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
        if shuffle_masks and min_objects < 2:
            raise ValueError("shuffle_masks needs at least 2 objects per scene (min_objects >= 2)")
        self.num_scenes, self.seed, self.side = num_scenes, seed, side
        self.min_objects, self.max_objects = min_objects, max_objects
        self.one_question = one_question_per_sample
        self.shuffle_masks = shuffle_masks
        self._index: list[tuple[int, int]] | None = None

    def _scene_seed(self, i: int) -> int:
        return self.seed * 1_000_003 + i

    def _pairs(self) -> list[tuple[int, int]]:
        if self._index is None:  # one question per object: count objects once, cheaply (masks are small)
            self._index = [
                (i, k)
                for i in range(self.num_scenes)
                for k in range(
                    len(generate_scene(self._scene_seed(i), self.side, self.min_objects, self.max_objects)[1])
                )
            ]
        return self._index

    def __len__(self) -> int:
        per_object = self.one_question or self.task in ("box_attributes", "refer")
        return len(self._pairs()) if per_object and self.task != "description" else self.num_scenes

    def __getitem__(self, idx: int) -> Sample:
        if self.task == "refer":
            return self._refer_sample(idx)
        if self.task != "region_qa":
            return self._mgimm_sample(idx)
        scene, ask = self._pairs()[idx] if self.one_question else (idx, None)
        seed = self._scene_seed(scene)
        image, objects = generate_scene(seed, self.side, self.min_objects, self.max_objects)
        rng = np.random.default_rng(seed + 7)
        masks = [o.mask for o in objects]
        if self.shuffle_masks:
            shift = int(rng.integers(1, len(masks)))
            masks = masks[shift:] + masks[:shift]
        regions = [
            Region(
                mask=m,
                category=o.category,
                text=o.answer,
                attributes={"colour": o.colour, "size": o.size, "shape": o.shape},
            )
            for m, o in zip(masks, objects, strict=True)
        ]
        head = OVERVIEW + region_list(len(objects))
        order = [ask] if ask is not None else [int(k) for k in rng.permutation(len(objects))]
        turns: list[Turn] = []
        for j, k in enumerate(order):
            # The question carries the region's tokens again (Osprey's form), so the answer sits next to them.
            turns += [
                Turn("human", (head if j == 0 else "") + f"What is region{k + 1}<mask><pos>?"),
                Turn("gpt", objects[k].answer),
            ]
        refs = list(range(len(objects))) + order
        meta = {"answer": objects[ask].answer} if ask is not None else {}
        return Sample(
            image=image,
            width=self.side,
            height=self.side,
            regions=regions,
            conversation=turns,
            region_refs=refs,
            sample_id=f"scene{scene}" + (f":region{ask + 1}" if ask is not None else ""),
            source=f"synthetic(seed={self.seed})",
            split=None,
            meta=meta,
        )

    def _mgimm_sample(self, idx: int) -> Sample:
        scene, ask = self._pairs()[idx] if self.task == "box_attributes" else (idx, None)
        image, objects = generate_scene(self._scene_seed(scene), self.side, self.min_objects, self.max_objects)
        chosen = [objects[ask]] if ask is not None else sorted(objects, key=lambda o: (o.centre[1], o.centre[0]))
        regions = [Region(box=mask_box(o.mask), category=o.category, text=o.answer) for o in chosen]
        if ask is not None and self.shuffle_masks:  # the control: another object's box, the asked object's answer
            rng = np.random.default_rng(self._scene_seed(scene) + 7)
            other = objects[(ask + int(rng.integers(1, len(objects)))) % len(objects)]
            regions = [Region(box=mask_box(other.mask), category=chosen[0].category, text=chosen[0].answer)]
        if ask is not None:
            prompt, answer = MGIMM_ATTRIBUTE_PROMPT, objects[ask].answer
        else:
            prompt, answer = MGIMM_DESCRIPTION_PROMPT, describe_scene(objects, self.side)
        return Sample(
            image=image,
            width=self.side,
            height=self.side,
            regions=regions,
            conversation=[Turn("human", prompt), Turn("gpt", answer)],
            sample_id=f"scene{scene}" + (f":box{ask + 1}" if ask is not None else ""),
            source=f"synthetic(seed={self.seed}, task={self.task})",
            meta={"answer": answer},
        )

    def _refer_sample(self, idx: int) -> Sample:
        scene, ask = self._pairs()[idx]
        image, objects = generate_scene(self._scene_seed(scene), self.side, self.min_objects, self.max_objects)
        obj = objects[ask]
        phrase = obj.answer.removeprefix("a ")
        if sum(o.answer == obj.answer for o in objects) > 1:  # not unique in the scene: say where it is
            phrase += " " + position_phrase(obj.centre, self.side)
        box = mask_box(obj.mask)
        answer = BoxCodec("grid100").encode(box, self.side, self.side)
        return Sample(
            image=image,
            width=self.side,
            height=self.side,
            regions=[Region(box=box, category=obj.category, text=obj.answer)],
            conversation=[Turn("human", f"<image>\n[refer] Where is the {phrase}?"), Turn("gpt", answer)],
            sample_id=f"scene{scene}:object{ask + 1}",
            source=f"synthetic(seed={self.seed}, task={self.task})",
            meta={"answer": answer, "phrase": phrase},
        )
