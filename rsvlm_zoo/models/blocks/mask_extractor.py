"""Mask-aware visual extractor: each mask -> a mask token and a position token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsvlm_zoo.models.blocks.regions import RegionBatch, RegionExtractor


def area_downsample(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (R, H, W) masks to `size` by area averaging, keeping each mask's total mass.

    Unlike bilinear resizing followed by re-binarisation, the result is the fraction of each
    output cell the mask covers, so a mask smaller than one cell still leaves a positive cell.
    Integer factors use `avg_pool2d` (exact and fast); other sizes use adaptive (area) pooling.
    """
    h, w = masks.shape[-2:]
    if (h, w) == tuple(size):
        return masks
    if h % size[0] == 0 and w % size[1] == 0:
        return F.avg_pool2d(masks.unsqueeze(1), kernel_size=(h // size[0], w // size[1])).squeeze(1)
    return F.adaptive_avg_pool2d(masks.unsqueeze(1), size).squeeze(1)


def pad_by_image(values: torch.Tensor, image_index: torch.Tensor, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter per-region rows into a zero-padded (num_images, R_max, ...) tensor.

    Returns:
        The padded tensor and, per region, its slot within its image.
    """
    counts = torch.bincount(image_index, minlength=num_images)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(image_index.numel(), device=image_index.device) - starts[image_index]
    r_max = int(counts.max().item()) if counts.numel() else 0
    padded = values.new_zeros((num_images, r_max, *values.shape[1:]))
    padded[image_index, slot] = values
    return padded, slot


class MaskAwareExtractor(RegionExtractor):
    """Osprey-style mask extractor with small-object-safe pooling, vectorised over the batch.

    Mask token: for each encoder level, masked average pooling of that level's features
    (mask area-downsampled to the level), each through its own Linear(C_l -> hidden_dim),
    summed, then Linear(hidden_dim -> out_dim). Position token: the mask area-resized to
    `pos_size` (soft values), flattened, through MLP(pos_size^2 -> pos_hidden -> pos_hidden -> out_dim)
    with ReLU.

    Args:
        in_channels: Channels of each encoder level, e.g. [192, 384, 768, 1536].
        out_dim: Token width, normally the LLM hidden size.
        hidden_dim: Width of the per-level projections (1024 upstream).
        pos_size: Side of the mask fed to the position MLP (112 upstream).
        pos_hidden: Hidden width of the position MLP (1024 upstream).
        pool_pixels: Also pool the input pixels themselves as an extra level (3 channels). Off for
            the published design; the tiny from-scratch models use it because a randomly initialised
            ConvNeXt's per-pixel LayerNorm hides brightness, so "white" and grey ground look alike.
    """

    needs = "mask"
    tokens_per_region = 2

    def __init__(
        self,
        in_channels: list[int] = (192, 384, 768, 1536),  # type: ignore[assignment]
        out_dim: int = 4096,
        hidden_dim: int = 1024,
        pos_size: int = 112,
        pos_hidden: int = 1024,
        pool_pixels: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.out_dim = out_dim
        self.pos_size = pos_size
        self.pool_pixels = pool_pixels
        level_channels = self.in_channels + ([3] if pool_pixels else [])
        self.level_proj = nn.ModuleList(nn.Linear(c, hidden_dim) for c in level_channels)
        self.mask_proj = nn.Linear(hidden_dim, out_dim)
        self.pos_mlp = nn.Sequential(
            nn.Linear(pos_size * pos_size, pos_hidden),
            nn.ReLU(),
            nn.Linear(pos_hidden, pos_hidden),
            nn.ReLU(),
            nn.Linear(pos_hidden, out_dim),
        )

    def check_encoder_channels(self, channels: list[int]) -> None:
        """Refuse an encoder whose level channels differ from `in_channels` (see `RegionExtractor`)."""
        if [int(c) for c in channels] != self.in_channels:
            raise ValueError(
                f"MaskAwareExtractor was built for level channels {self.in_channels} but the encoder returns "
                f"{list(channels)}; set the extractor's in_channels to {list(channels)}"
            )

    def forward(
        self, features: list[torch.Tensor], regions: RegionBatch, pixel_values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return (R, 2, out_dim): the mask token then the position token of each region.

        Args:
            features: Encoder levels, each (B, C_l, H_l, W_l), finest first.
            regions: Regions with `masks` (R, H, W) at the input size.
            pixel_values: (B, 3, H, W) normalised input, needed when `pool_pixels` is on.

        Raises:
            ValueError: on missing or empty masks, or features that do not match `in_channels`.
        """
        if regions.masks is None:
            raise ValueError("MaskAwareExtractor needs region masks; this batch carries none (box-only data?)")
        got = [f.shape[1] for f in features]
        if got != self.in_channels:
            raise ValueError(f"MaskAwareExtractor was built for level channels {self.in_channels}, encoder gave {got}")
        masks = regions.masks.to(features[0].dtype)
        if masks.shape[0] == 0:
            return features[0].new_zeros((0, 2, self.out_dim))
        areas = masks.flatten(1).sum(1)
        empty = torch.nonzero(areas <= 0).flatten()
        if empty.numel():
            raise ValueError(
                f"region(s) {empty.tolist()} of the batch have empty masks at the model input size; "
                "drop empty regions in the data (or use a larger input size for sub-pixel objects)"
            )
        levels = list(features)
        if self.pool_pixels:
            if pixel_values is None:
                raise ValueError("pool_pixels=True needs pixel_values")
            levels.append(pixel_values.to(masks.dtype))
        num_images = features[0].shape[0]
        # Coarsen each mask once, finest level first, reusing the previous level's result (cheap).
        level_masks: dict[tuple[int, int], torch.Tensor] = {}
        current = masks
        for size in sorted({tuple(f.shape[-2:]) for f in levels}, key=lambda s: -s[0] * s[1]):
            current = area_downsample(current, size)
            level_masks[size] = current
        pooled_sum = None
        for feat, proj in zip(levels, self.level_proj, strict=True):
            m = level_masks[tuple(feat.shape[-2:])]
            m_pad, slot = pad_by_image(m.flatten(1), regions.image_index, num_images)  # (B, Rmax, HW)
            sums = torch.bmm(m_pad, feat.flatten(2).transpose(1, 2))  # (B, Rmax, C)
            pooled = sums[regions.image_index, slot] / m.flatten(1).sum(1, keepdim=True)
            out = proj(pooled)
            pooled_sum = out if pooled_sum is None else pooled_sum + out
        mask_token = self.mask_proj(pooled_sum)
        # The position MLP reads the finest coarsened mask when it is at least pos_size, else the input mask.
        finest = max(level_masks, key=lambda s: s[0] * s[1])
        source = level_masks[finest] if min(finest) >= self.pos_size else masks
        pos_in = area_downsample(source, (self.pos_size, self.pos_size))
        pos_token = self.pos_mlp(pos_in.flatten(1))
        return torch.stack([mask_token, pos_token], dim=1)
