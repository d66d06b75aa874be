"""Sample -> model inputs: resize image and regions identically, template, tokenise, expand, mask labels.

Kept in one file (about 340 lines, a third of them docstrings) on purpose: the processor is the one public object
that turns a sample into what the model reads, as a transformers processor is; its geometry and its text halves
must agree on the number of regions.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.schema import DataFormatError, Sample, Turn
from rsvlm_zoo.data.templates import get_template
from rsvlm_zoo.tokens import IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN, REGION

IGNORE_INDEX = -100
ImagePolicy = Literal["squash", "pad", "tile"]
IMAGE_POLICIES = ("squash", "pad", "tile")


@dataclass
class InputSpec:
    """What a model needs from the data layer; built by the model, consumed here (no model import).

    Attributes:
        tokenizer: The LLM's tokenizer (with `<image>`, `<mask>`, `<pos>`).
        input_size: (height, width) of the model input.
        mean: Normalisation mean.
        std: Normalisation std.
        num_image_tokens: Tokens `<image>` expands to (global image tokens).
        region_kind: "mask" (regions as masks), "box" (regions as boxes) or "text" (GeoChat: every `<mask><pos>`
            reference becomes its region's box written as text, `{<x1><y1><x2><y2>}` on a 0-100 grid; no region
            tensors).
        regions_in_image: `<image>` also carries every region (MGIMM: [global ; 2 per box]); otherwise
            regions are referenced in the text by `<mask><pos>` (Aquila-plus).
        template: The model family's conversation template (see `rsvlm_zoo.data.templates`).
    """

    tokenizer: PreTrainedTokenizerBase
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_image_tokens: int
    region_kind: str = "mask"
    regions_in_image: bool = False
    template: str = "vicuna_v1"


class SkipSample(Exception):
    """A sample that cannot be used as configured (e.g. nothing supervised left after truncation)."""


class RegionProcessor:
    """Turns one `Sample` into tensors for the model.

    Args:
        spec: The model's input spec.
        template: Conversation template name; None takes the model family's (`spec.template`).
        max_length: Longest token sequence; whole trailing turns are dropped to fit, never a placeholder cut.
        image_policy: "squash" resizes to the input size (Osprey); "pad" pads to square first; "tile" takes
            tiles of at most `tile_size` scene pixels (from `TiledSource`), scales every tile by the same
            input size / tile size and pads a smaller (edge-of-a-small-scene) tile at the bottom/right.
        tile_size: (height, width) of the tiles in scene pixels for "tile"; default the input size (no resizing).
    """

    def __init__(
        self,
        spec: InputSpec,
        template: str | None = None,
        max_length: int = 2048,
        image_policy: ImagePolicy = "squash",
        tile_size: tuple[int, int] | None = None,
    ) -> None:
        if image_policy not in IMAGE_POLICIES:
            raise ValueError(f"image_policy must be one of {IMAGE_POLICIES}, got {image_policy!r}")
        self.spec = spec
        self.template = get_template(template or spec.template)
        self.max_length = max_length
        self.image_policy = image_policy
        self.tile_size = tuple(tile_size) if tile_size is not None else tuple(spec.input_size)
        tok = spec.tokenizer
        self.image_id, self.mask_id, self.pos_id = tok.convert_tokens_to_ids([IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN])
        self.mean = torch.tensor(spec.mean).view(3, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1)

    # ---------------------------------------------------------------- image + regions
    def _geometry(self, height: int, width: int) -> tuple[float, float, int, int]:
        """Scale (sy, sx) and offsets (top, left) mapping scene pixels to input pixels."""
        out_h, out_w = self.spec.input_size
        if self.image_policy == "squash":
            return out_h / height, out_w / width, 0, 0
        if self.image_policy == "tile":
            tile_h, tile_w = self.tile_size
            return out_h / tile_h, out_w / tile_w, 0, 0
        side = max(height, width)
        s_h, s_w = out_h / side, out_w / side
        return s_h, s_w, int(round((side - height) / 2 * s_h)), int(round((side - width) / 2 * s_w))

    def image_tensor(self, image: np.ndarray) -> torch.Tensor:
        """Resize an HxWx3 uint8 image to the input and normalise it -> (3, H_in, W_in)."""
        h, w = image.shape[:2]
        sy, sx, top, left = self._geometry(h, w)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255).unsqueeze(0)
        rh, rw = max(1, round(h * sy)), max(1, round(w * sx))
        if (rh, rw) != (h, w):
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
        # Padding is mean-coloured, i.e. zero after normalisation.
        canvas = self.mean.expand(3, *self.spec.input_size).clone()
        canvas[:, top : top + rh, left : left + rw] = x[0]
        return (canvas - self.mean) / self.std

    def mask_tensor(self, masks: np.ndarray) -> torch.Tensor:
        """Resize (R, H, W) boolean masks exactly as the image: area coverage, so no object vanishes."""
        r, h, w = masks.shape
        sy, sx, top, left = self._geometry(h, w)
        rh, rw = max(1, round(h * sy)), max(1, round(w * sx))
        m = torch.from_numpy(masks).float().unsqueeze(1)
        if (rh, rw) != (h, w):
            m = F.interpolate(m, size=(rh, rw), mode="area" if rh <= h and rw <= w else "nearest")
        out = torch.zeros(r, *self.spec.input_size)
        out[:, top : top + rh, left : left + rw] = m[:, 0]
        return out

    def box_tensor(self, boxes: np.ndarray, height: int, width: int) -> torch.Tensor:
        """Map (R, 4) xyxy scene-pixel boxes to input pixels."""
        sy, sx, top, left = self._geometry(height, width)
        b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4).clone()
        b[:, [0, 2]] = b[:, [0, 2]] * sx + left
        b[:, [1, 3]] = b[:, [1, 3]] * sy + top
        return b

    # ---------------------------------------------------------------- text
    def image_expansion(self, num_regions: int) -> list[int]:
        """The ids one `<image>` becomes: the image tokens, then `<mask><pos>` per region (`regions_in_image`)."""
        expansion = [self.image_id] * self.spec.num_image_tokens
        if self.spec.regions_in_image:
            expansion += [self.mask_id, self.pos_id] * num_regions
        return expansion

    def join_pieces(self, pieces: Sequence[Sequence[int]], expansion: list[int]) -> tuple[list[int], int]:
        """Token ids of a prompt's pieces (split at `<image>`, each tokenised with its special tokens), joined.

        Each `<image>` between two pieces becomes `expansion`; the beginning-of-sequence token the tokenizer puts
        at the start of every piece is kept once, at the very start (upstream's `tokenizer_image_token`).

        Returns:
            The ids, and how many leading ids each piece after the first lost (1 when a BOS was dropped, else 0).
        """
        first = list(pieces[0])
        bos = self.spec.tokenizer.bos_token_id
        skip = 1 if first and bos is not None and first[0] == bos else 0
        ids = first
        for piece in pieces[1:]:
            ids += expansion
            ids += piece[skip:]
        return ids, skip

    def encode_prompt(self, text: str, num_regions: int) -> tuple[list[int], list[int], list[bool]]:
        """Token ids of a whole prompt, per token the index of the character it ends at, and which were inserted.

        As upstream's `tokenizer_image_token`: the prompt is split only at `<image>`, each piece is tokenised
        with the tokenizer's own special tokens, the beginning-of-sequence token is kept once (when the
        tokenizer adds one) and each `<image>` becomes the image tokens (plus 2 per region for
        `regions_in_image` models).

        Raises:
            ValueError: for a tokenizer without character offsets (a slow, Python tokenizer).
        """
        tok = self.spec.tokenizer
        if not getattr(tok, "is_fast", False):
            raise ValueError(
                f"{type(tok).__name__} is a slow tokenizer; load the fast one (AutoTokenizer's default, which needs "
                "the tokenizers package, and sentencepiece + protobuf to convert a tokenizer.model)"
            )
        expansion = self.image_expansion(num_regions)
        pieces = text.split(IMAGE_TOKEN)
        encoded = tok(pieces, return_offsets_mapping=True)  # one call per sample
        ids, skip = self.join_pieces(encoded.input_ids, expansion)
        ends: list[int] = [0] * skip
        start = 0
        for k, piece in enumerate(pieces):
            if k:
                ends += [start - 1] * len(expansion)  # the last character of the `<image>` they replace
            ends += [start + (b - 1 if b > a else a) for a, b in encoded.offset_mapping[k][skip:]]
            start += len(piece) + len(IMAGE_TOKEN)
        inserted = [False] * len(ids)
        if expansion:
            n, cursor = len(expansion), skip
            for k in range(1, len(pieces)):  # mark each expansion: it follows piece k-1's tokens
                cursor += len(encoded.input_ids[k - 1]) - skip
                inserted[cursor : cursor + n] = [True] * n
                cursor += n
        return ids, ends, inserted

    def tokenize(self, sample: Sample, num_regions: int, generation: bool = False) -> tuple[list[int], list[int]]:
        """Template + tokenise the whole prompt + expand `<image>`; returns (input_ids, labels).

        Labels supervise the answers (with their end-of-sequence token) and ignore everything else. A token
        belongs to the template segment holding its last character, so an answer's first token carries the
        space before it, as in upstream's token streams. Too long a conversation is cut after its last whole
        exchange that fits `max_length`.

        Raises:
            SkipSample: when not even the first exchange fits `max_length`.
        """
        tok = self.spec.tokenizer
        segments = self.template.render(list(sample.conversation), tok.eos_token, add_generation_prompt=generation)
        text = "".join(seg.text for seg in segments)
        ids, ends, inserted = self.encode_prompt(text, num_regions)
        seg_ends = list(itertools.accumulate(len(seg.text) for seg in segments))
        owner = [min(bisect.bisect_right(seg_ends, e), len(segments) - 1) for e in ends]
        labels = [
            t if segments[o].supervised and not ins else IGNORE_INDEX
            for t, o, ins in zip(ids, owner, inserted, strict=True)
        ]
        if len(ids) <= self.max_length:
            return ids, labels
        # Truncated: keep whole segments that fit, then drop a dangling question.
        cut = 0
        for k in range(len(segments)):
            last = bisect.bisect_right(owner, k)  # owners never decrease
            if last > self.max_length:
                break
            cut = last
        ids, labels = ids[:cut], labels[:cut]
        if not generation:
            while labels and labels[-1] == IGNORE_INDEX:
                ids.pop()
                labels.pop()
        if generation or not any(label != IGNORE_INDEX for label in labels):
            raise SkipSample(
                f"{sample.where()}: its first exchange needs more than max_length={self.max_length} tokens"
            )
        return ids, labels

    # ---------------------------------------------------------------- all together
    def __call__(
        self, sample: Sample, image: np.ndarray, generation: bool = False, with_pixels: bool = True
    ) -> dict[str, Any]:
        """Process one sample whose image is already decoded (HxWx3 uint8).

        `with_pixels=False` leaves out `pixel_values` (for callers that stack each unique image once).
        """
        h, w = image.shape[:2]
        if (h, w) != (sample.height, sample.width):
            raise DataFormatError(
                f"{sample.where()}: image is {w}x{h} but the annotation says {sample.width}x{sample.height}; "
                "fix the width/height fields"
            )
        if self.image_policy == "tile" and (h > self.tile_size[0] or w > self.tile_size[1]):
            raise ValueError(
                f"{sample.where()}: a {w}x{h} image is larger than the {self.tile_size[1]}x{self.tile_size[0]} "
                "tiles of image_policy='tile'; read it through TiledSource (RegionDataModule does so)"
            )
        text = "".join(t.text for t in sample.conversation)
        refs = self._region_refs(sample, text)
        if self.spec.region_kind == "text":
            sample, refs = self.regions_as_text(sample, refs), []
        ids, labels = self.tokenize(sample, len(refs), generation)
        # Truncation may drop trailing turns and with them their region references.
        if not self.spec.regions_in_image:
            refs = refs[: ids.count(self.mask_id)]
        out: dict[str, Any] = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "num_regions": len(refs),
            "sample_id": sample.sample_id,
        }
        if with_pixels:
            out["pixel_values"] = self.image_tensor(image)
        regions = [sample.regions[i] for i in refs]
        if self.spec.region_kind == "mask":
            masks = (
                np.stack([_geometry_of(sample, k, "to_mask", h, w) for k in refs])
                if regions
                else np.zeros((0, h, w), bool)
            )
            empty = [refs[i] for i in range(len(regions)) if not masks[i].any()]
            if empty:
                raise DataFormatError(f"{sample.where()}: region(s) {empty} have empty masks; fix or drop them")
            out["masks"] = self.mask_tensor(masks)
        elif self.spec.region_kind == "text":
            out["boxes"] = torch.zeros(0, 4)  # regions are in the text; an empty tensor keeps collation uniform
        else:
            boxes = np.array([_geometry_of(sample, k, "to_box") for k in refs], dtype=np.float32).reshape(-1, 4)
            bad = [refs[i] for i, b in enumerate(boxes) if b[2] <= b[0] or b[3] <= b[1]]
            if bad:
                raise DataFormatError(f"{sample.where()}: region(s) {bad} have zero-area boxes; fix or drop them")
            out["boxes"] = self.box_tensor(boxes, h, w)
        return out

    def regions_as_text(self, sample: Sample, refs: list[int]) -> Sample:
        """`sample` with its k-th `<mask><pos>` replaced by the box of region `refs[k]` written as text.

        Boxes are GeoChat's `{<x1><y1><x2><y2>}` on a 0-100 grid over the original image's width and height
        (`BoxCodec("grid100")`), so they do not depend on the input size or image policy.

        Raises:
            DataFormatError: when a `<mask>` and its `<pos>` are not written together, or a region has no box.
        """
        codec, pending, turns = BoxCodec("grid100"), iter(refs), []
        for turn in sample.conversation:
            pieces = turn.text.split(REGION)
            if any(MASK_TOKEN in p or POS_TOKEN in p for p in pieces):
                raise DataFormatError(f"{sample.where()}: every {MASK_TOKEN} must be followed by {POS_TOKEN} directly")
            text = pieces[0]
            for piece in pieces[1:]:
                box = _geometry_of(sample, next(pending), "to_box")
                text += codec.encode(box, sample.width, sample.height) + piece
            turns.append(Turn(turn.role, text) if text != turn.text else turn)
        return dataclasses.replace(sample, conversation=turns, region_refs=[])

    def _region_refs(self, sample: Sample, text: str) -> list[int]:
        if self.spec.regions_in_image:
            return list(range(len(sample.regions)))
        n_mask, n_pos = text.count(MASK_TOKEN), text.count(POS_TOKEN)
        if n_mask != n_pos:
            raise DataFormatError(f"{sample.where()}: {n_mask} {MASK_TOKEN} but {n_pos} {POS_TOKEN} tokens in text")
        refs = sample.region_refs if sample.region_refs is not None else list(range(n_mask))
        if len(refs) != n_mask or any(not 0 <= r < len(sample.regions) for r in refs):
            raise DataFormatError(
                f"{sample.where()}: text has {n_mask} {MASK_TOKEN}{POS_TOKEN} placeholders but the sample has "
                f"{len(sample.regions)} regions (refs {refs}); each placeholder needs exactly one region"
            )
        return refs


def _geometry_of(sample: Sample, k: int, method: str, *args: int) -> Any:
    """`sample.regions[k].<method>(*args)`, with geometry errors naming the record and the region."""
    try:
        return getattr(sample.regions[k], method)(*args)
    except DataFormatError as err:
        raise DataFormatError(f"{sample.where()}: region {k}: {err}") from err
