"""The batch of regions handed from the data layer to a region extractor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rsvlm_zoo.weights.model_config import RecordsInitArgs


@dataclass
class RegionBatch:
    """All regions of a batch, flattened image by image.

    Attributes:
        image_index: (R,) long tensor, the batch image each region belongs to (non-decreasing).
        masks: (R, H, W) float or bool tensor of binary masks at the model input size, or None.
        boxes: (R, 4) float tensor of (x1, y1, x2, y2) boxes in input pixels, or None.
        image_size: (height, width) of the model input the masks and boxes refer to.
    """

    image_index: torch.Tensor
    masks: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    image_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(self.image_index.numel())

    def to(self, device: torch.device | str) -> RegionBatch:
        """Move every tensor to `device`."""
        return RegionBatch(
            image_index=self.image_index.to(device),
            masks=None if self.masks is None else self.masks.to(device),
            boxes=None if self.boxes is None else self.boxes.to(device),
            image_size=self.image_size,
        )


class RegionExtractor(RecordsInitArgs, nn.Module):
    """Base of every extractor: feature maps + regions -> `tokens_per_region` vectors per region.

    Subclasses set `tokens_per_region`, `out_dim` and `needs` ("mask" or "box").
    """

    tokens_per_region: int = 2
    out_dim: int
    needs: str = "mask"

    def check_encoder_channels(self, channels: list[int]) -> None:
        """Refuse, when the model is built, an encoder whose level channels this extractor was not built for.

        Args:
            channels: The encoder's channels, one per level it returns.

        Raises:
            ValueError: naming both widths and the setting to change. The base reads no encoder width.
        """

    def forward(self, features: list[torch.Tensor], regions: RegionBatch) -> torch.Tensor:
        """Return a (R, tokens_per_region, out_dim) tensor of region tokens.

        Args:
            features: Encoder feature maps, each (B, C_l, H_l, W_l).
            regions: The batch's regions.
        """
        raise NotImplementedError
