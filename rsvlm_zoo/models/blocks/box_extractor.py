"""MGIMM's region interactive module: box prompt tokens refined on the patch map by a two-way transformer.

Kept in one file (over 300 lines) on purpose: the box prompt encoder, the two-way transformer and its box-restricted
attention are one module of the paper, tested as one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rsvlm_zoo.models.blocks.regions import RegionBatch, RegionExtractor


class RandomFourierPositionEncoding(nn.Module):
    """Random-Fourier encoding of 2-D points given in normalised [0, 1] coordinates.

    A point (x, y) is mapped to [-1, 1], multiplied by a fixed Gaussian matrix G (2, dim / 2) and by
    2*pi, and encoded as [sin, cos] of the result, giving `dim` features. G is a persistent buffer so
    a checkpoint carries it (a fresh draw would scramble every trained weight downstream).

    Args:
        dim: Number of output features (even).
        scale: Standard deviation of the Gaussian matrix.
    """

    def __init__(self, dim: int, scale: float = 1.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"the random-Fourier encoding needs an even dim, got {dim}")
        self.register_buffer("gaussian", scale * torch.randn(2, dim // 2))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode (..., 2) normalised (x, y) coordinates as (..., dim) features (float32)."""
        proj = (2.0 * coords.float() - 1.0) @ self.gaussian.float()
        proj = 2.0 * math.pi * proj
        return torch.cat([proj.sin(), proj.cos()], dim=-1)

    def dense(self, size: tuple[int, int]) -> torch.Tensor:
        """Encode the centres ((j + 0.5) / w, (i + 0.5) / h) of an (h, w) grid as an (h, w, dim) tensor."""
        h, w = size
        device = self.gaussian.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        return self(grid)


class Attention(nn.Module):
    """Multi-head attention whose inner width may be downsampled (SAM-style), using SDPA.

    Args:
        dim: Width of the inputs and the output.
        num_heads: Number of heads; must divide `dim // downsample_rate`.
        downsample_rate: The queries, keys and values are projected to `dim // downsample_rate`.
    """

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = dim // downsample_rate
        if inner <= 0 or inner % num_heads:
            raise ValueError(
                f"attention width {dim} // downsample rate {downsample_rate} = {inner} must be a positive "
                f"multiple of num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend (N, Lq, dim) queries over (N, Lk, dim) keys/values; returns (N, Lq, dim).

        `mask` (N, Lq, Lk) bool, True where a query may look, restricts the attention.
        """
        out = F.scaled_dot_product_attention(
            self._split(self.q_proj(q)),
            self._split(self.k_proj(k)),
            self._split(self.v_proj(v)),
            attn_mask=None if mask is None else mask.unsqueeze(1),
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MLPBlock(nn.Module):
    """Linear -> ReLU -> Linear.

    Args:
        dim: Input and output width.
        hidden_dim: Hidden width.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    """Queries self-attend, attend to the image, pass an MLP; then the image attends to the queries.

    Each step is residual and followed by a LayerNorm. Positional encodings are added to the
    queries and keys (not the values) of every attention; the very first self-attention uses the
    raw prompt tokens (which already are positional encodings) and replaces rather than adds.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_dim: Hidden width of the MLP.
        attention_downsample_rate: Inner-width reduction of the two cross attentions.
        skip_first_layer_pe: Whether this is the first block (see above).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int,
        skip_first_layer_pe: bool,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, attention_downsample_rate)
        self.norm4 = nn.LayerNorm(dim)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update (N, Lq, dim) queries and (N, Lk, dim) keys; `key_pe` may be (1, Lk, dim).

        `mask` (N, Lq, Lk) bool limits which keys each query reads (the image -> query direction is free).
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys, mask))

        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM-style two-way transformer: `depth` two-way blocks, then a final query -> image attention + norm.

    Args:
        dim: Token width.
        depth: Number of two-way blocks.
        num_heads: Attention heads.
        mlp_dim: Hidden width of the MLPs.
        attention_downsample_rate: Inner-width reduction of the cross attentions.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_dim: int, attention_downsample_rate: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, attention_downsample_rate, skip_first_layer_pe=i == 0)
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, prompt: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image: (N, L, dim) image tokens, one row per prompt set.
            image_pe: (1 or N, L, dim) positional encoding of the image tokens.
            prompt: (N, Lq, dim) prompt tokens (also used as their own positional encoding).
            mask: Optional (N, Lq, L) bool: which image tokens each prompt token may attend to.

        Returns:
            The updated (N, Lq, dim) prompt tokens and (N, L, dim) image tokens.
        """
        queries, keys = prompt, image
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe=prompt, key_pe=image_pe, mask=mask)
        q, k = queries + prompt, keys + image_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys, mask))
        return queries, keys


class BoxRegionEncoder(RegionExtractor):
    """MGIMM's region interactive module: each box -> 2 tokens, its refined top-left and bottom-right corners.

    The corners, normalised by the real input size (x / W, y / H), get a random-Fourier positional
    encoding plus one learned embedding per corner. A two-way transformer lets these 2 tokens attend
    to the patch map (plus the same random-Fourier encoding evaluated at the cell centres, so corner
    and grid share one coordinate frame) and the map attend back; the refined corner tokens are the
    region tokens. All boxes of the batch run as one transformer batch.

    Args:
        in_channels: Channels of the encoder feature map (1024 for CLIP ViT-L/14).
        dim: Width of the transformer and of the output tokens; a Linear maps the features to it
            when it differs from `in_channels`.
        depth: Number of two-way blocks.
        num_heads: Attention heads.
        mlp_dim: Hidden width of the MLPs.
        attention_downsample_rate: Inner-width reduction of the cross attentions.
        feature_level: Which of the encoder's feature maps to read.
        image_norm: LayerNorm the (projected) image tokens before the transformer, as SAM's image embeddings
            are. Off in the published module. Frozen encoder features are not normalised (EfficientNet-Lite0's
            stride-16 map has a standard deviation near 6) and, added to a positional encoding of unit scale,
            outweigh it in the attention; `recipes/tiny/mgimm_stage1_lite0.yaml` turns it on (what that reaches:
            README, Tiny MGIMM).
        box_attention: Let each box's tokens attend only to the grid cells its box touches (the
            image -> token direction stays free). Off in the published module, whose pretrained
            attention localises by itself; it lets a randomly initialised encoder and region module
            read the box's content from the first step (the tiny recipes use it).
        pixel_crop: When > 0, also resample the input pixels inside each box to a `pixel_crop` x
            `pixel_crop` crop and add a linear embedding of it, and one of the box's log-size, to both
            region tokens. Off in the published module: it stands in for
            what pretrained CLIP features already hold about a box, which a randomly initialised tiny
            encoder cannot learn in a CPU-sized run (the tiny recipes use 8).
    """

    needs = "box"
    tokens_per_region = 2

    def __init__(
        self,
        in_channels: int = 1024,
        dim: int = 1024,
        depth: int = 2,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        feature_level: int = -1,
        image_norm: bool = False,
        box_attention: bool = False,
        pixel_crop: int = 0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"BoxRegionEncoder needs depth >= 1, got {depth}")
        self.in_channels = int(in_channels)
        self.dim = self.out_dim = int(dim)
        self.feature_level = int(feature_level)
        self.box_attention = bool(box_attention)
        if pixel_crop < 0:
            raise ValueError(f"pixel_crop must be >= 0 (0 = off), got {pixel_crop}")
        self.pixel_crop = int(pixel_crop)
        self.pool_pixels = self.pixel_crop > 0  # the model then passes the input pixels to forward()
        # Appearance and size get their own embeddings: with one Linear, the 2 size inputs would start with
        # weights scaled for 3 c^2 inputs and barely move the tokens.
        self.crop_embed = nn.Linear(3 * self.pixel_crop**2, self.dim) if self.pixel_crop else None
        self.size_embed = nn.Linear(2, self.dim) if self.pixel_crop else None
        self.pe = RandomFourierPositionEncoding(self.dim)
        self.corner_embed = nn.Parameter(torch.randn(2, self.dim))  # top-left, bottom-right
        self.input_proj = nn.Identity() if self.in_channels == self.dim else nn.Linear(self.in_channels, self.dim)
        self.image_norm = nn.LayerNorm(self.dim) if image_norm else nn.Identity()
        self.transformer = TwoWayTransformer(self.dim, depth, num_heads, mlp_dim, attention_downsample_rate)

    # ------------------------------------------------------------------ encodings
    @staticmethod
    def normalise_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Map (R, 4) xyxy pixel boxes to (R, 2, 2) corners [[x1/W, y1/H], [x2/W, y2/H]]."""
        h, w = image_size
        scale = boxes.new_tensor([w, h]).float()
        return boxes.float().reshape(-1, 2, 2) / scale

    def box_position_encoding(self, boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """The (R, 2, dim) positional part of the corner tokens (without the learned corner embeddings)."""
        return self.pe(self.normalise_boxes(boxes, image_size))

    def dense_position_encoding(self, size: tuple[int, int]) -> torch.Tensor:
        """The (h, w, dim) encoding of the feature grid's cell centres, in the corners' coordinate frame."""
        return self.pe.dense(size)

    @staticmethod
    def box_cell_mask(boxes: torch.Tensor, image_size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
        """(R, h*w) bool: which cells of an (h, w) grid over an (H, W) input each xyxy pixel box touches.

        A box that touches no cell (it lies outside the input) may look everywhere, so its
        attention stays defined.
        """
        (big_h, big_w), (h, w) = image_size, grid
        boxes = boxes.float()
        dev = boxes.device
        cx0 = torch.arange(w, device=dev, dtype=torch.float32) * (big_w / w)
        cy0 = torch.arange(h, device=dev, dtype=torch.float32) * (big_h / h)
        cols = (cx0 < boxes[:, 2:3]) & (cx0 + big_w / w > boxes[:, 0:1])  # (R, w)
        rows = (cy0 < boxes[:, 3:4]) & (cy0 + big_h / h > boxes[:, 1:2])  # (R, h)
        mask = (rows[:, :, None] & cols[:, None, :]).flatten(1)
        return mask | ~mask.any(1, keepdim=True)

    def crop_features(self, pixel_values: torch.Tensor, regions: RegionBatch) -> torch.Tensor:
        """(R, 3 * c * c + 2): each box's pixels resampled to c x c (bin centres, bilinear), then its log-size.

        The size is log2 of w/W and h/H plus 3: a factor of 2 in size is a unit step, and a box an eighth
        of the input wide is 0, so the size embedding does not start as a large constant offset.
        """
        c, (big_h, big_w) = self.pixel_crop, regions.image_size
        boxes = regions.boxes.to(pixel_values.device).float()
        steps = (torch.arange(c, device=boxes.device, dtype=torch.float32) + 0.5) / c  # (c,)
        xs = boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])  # (R, c) pixel x of bin centres
        ys = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])
        gx = (2 * xs / big_w - 1)[:, None, :].expand(-1, c, -1)  # grid_sample's [-1, 1], align_corners=False
        gy = (2 * ys / big_h - 1)[:, :, None].expand(-1, -1, c)
        grid = torch.stack([gx, gy], dim=-1)  # (R, c, c, 2) as (x, y)
        images = pixel_values.index_select(0, regions.image_index.to(pixel_values.device).long())
        crops = F.grid_sample(images.float(), grid, mode="bilinear", align_corners=False)  # (R, 3, c, c)
        shares = torch.stack([(boxes[:, 2] - boxes[:, 0]) / big_w, (boxes[:, 3] - boxes[:, 1]) / big_h], dim=1)
        return torch.cat([crops.flatten(1), shares.clamp(min=2.0**-12).log2() + 3.0], dim=1)

    # ------------------------------------------------------------------ checks
    def _check(self, features: list[torch.Tensor], regions: RegionBatch) -> torch.Tensor:
        """Validate the inputs and return the feature map to use."""
        try:
            feat = features[self.feature_level]
        except IndexError:
            raise ValueError(
                f"BoxRegionEncoder reads feature level {self.feature_level} but the encoder gave "
                f"{len(features)} level(s); set feature_level to one of them"
            ) from None
        if feat.dim() != 4 or feat.shape[1] != self.in_channels:
            raise ValueError(
                f"BoxRegionEncoder expects a (B, {self.in_channels}, h, w) feature map, "
                f"got {tuple(feat.shape)}; set in_channels to the encoder's channels "
                "(ViT patch tokens must be reshaped to a map)"
            )
        boxes, index = regions.boxes, regions.image_index
        if boxes is None:
            raise ValueError(
                "BoxRegionEncoder needs region boxes; this batch carries none (mask-only data?). "
                "Give every region a (x1, y1, x2, y2) box"
            )
        if index.dim() != 1:
            raise ValueError(f"regions.image_index must be 1-D (R,), got shape {tuple(index.shape)}")
        if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.shape[0] != index.numel():
            raise ValueError(
                f"regions.boxes must be ({index.numel()}, 4) xyxy pixel boxes (one per image_index entry), "
                f"got shape {tuple(boxes.shape)}"
            )
        if index.dtype.is_floating_point or index.dtype == torch.bool:
            raise ValueError(f"regions.image_index must be an integer tensor, got {index.dtype}")
        h, w = regions.image_size
        if h <= 0 or w <= 0:
            raise ValueError(
                f"regions.image_size must be the positive (height, width) of the model input, got {regions.image_size}"
            )
        if index.numel() == 0:
            return feat
        num_images = feat.shape[0]
        bad = torch.nonzero((index < 0) | (index >= num_images)).flatten()
        if bad.numel():
            r = int(bad[0])
            raise ValueError(
                f"region {r} has image_index {int(index[r])} but the batch has {num_images} image(s); "
                f"image_index must lie in [0, {num_images})"
            )
        bad = torch.nonzero(~torch.isfinite(boxes).all(1)).flatten()
        if bad.numel():
            r = int(bad[0])
            raise ValueError(
                f"region {r} has a non-finite box {boxes[r].tolist()}; drop it or fix its coordinates in the data"
            )
        bad = torch.nonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).flatten()
        if bad.numel():
            r = int(bad[0])
            raise ValueError(
                f"region {r} has box {boxes[r].tolist()} with x2 < x1 or y2 < y1; boxes are (x1, y1, x2, y2) "
                "pixels: swap the corners (or convert from xywh) in the data"
            )
        return feat

    # ------------------------------------------------------------------ forward
    def forward(
        self, features: list[torch.Tensor], regions: RegionBatch, pixel_values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the (R, 2, dim) refined corner tokens of every box of the batch.

        Args:
            features: Encoder feature maps; `features[feature_level]` is (B, in_channels, h, w).
            regions: Regions with `boxes` (R, 4) xyxy in input pixels, `image_index` (R,) and
                `image_size` (H, W) of the model input.
            pixel_values: (B, 3, H, W) normalised input, needed when `pixel_crop` is on.

        Raises:
            ValueError: on missing or malformed boxes, out-of-range image indices or a feature map
                that does not match `in_channels`.
        """
        feat = self._check(features, regions)
        dtype = self.corner_embed.dtype
        num = len(regions)
        if num == 0:
            return feat.new_zeros((0, 2, self.dim), dtype=dtype)
        h, w = feat.shape[-2:]
        # Project once per image, then give each box its image's tokens.
        image = self.image_norm(self.input_proj(feat.to(dtype).flatten(2).transpose(1, 2)))  # (B, h*w, dim)
        image = image.index_select(0, regions.image_index.to(image.device).long())  # (R, h*w, dim)
        image_pe = self.dense_position_encoding((h, w)).to(dtype).reshape(1, h * w, self.dim)
        boxes = regions.boxes.to(image.device)
        prompt = self.box_position_encoding(boxes, regions.image_size).to(dtype) + self.corner_embed
        mask = None
        if self.box_attention:
            mask = self.box_cell_mask(boxes, regions.image_size, (h, w)).unsqueeze(1).expand(-1, 2, -1)
        tokens, _ = self.transformer(image, image_pe, prompt, mask)
        if self.crop_embed is not None and self.size_embed is not None:
            if pixel_values is None:
                raise ValueError("BoxRegionEncoder(pixel_crop > 0) needs the input pixel_values")
            crop = self.crop_features(pixel_values, regions).to(dtype)
            extra = self.crop_embed(crop[:, :-2]) + self.size_embed(crop[:, -2:])
            tokens = tokens + extra[:, None, :]
        return tokens
