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

    def token_to_image_attentions(self) -> list[Attention]:
        """The attentions in which the prompt tokens read the image: one per block, then the final one."""
        return [layer.cross_attn_token_to_image for layer in self.layers] + [self.final_attn_token_to_image]

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


ATTENTION_INITS = ("default", "positional")
# Peak query-key logit of the positional initialisation, where a corner and a cell centre coincide (SDPA's
# 1/sqrt(head_dim) included): high enough that the corner's neighbourhood dominates a softmax over the map.
POSITIONAL_PEAK_LOGIT = 16.0
# Factor on the content added to the positional encodings at the start, under the positional initialisation.
POSITIONAL_CONTENT_SCALE = 0.25


def init_positional_attention(attention: Attention, dim: int, peak_logit: float = POSITIONAL_PEAK_LOGIT) -> None:
    """Start `attention`'s query and key projections as a positional kernel over random-Fourier features.

    A `RandomFourierPositionEncoding` of width `dim` is [sin(2 pi p G), cos(2 pi p G)]; the sum over frequencies
    of sin*sin + cos*cos of two points is sum cos(2 pi (p - q) G), largest where p = q. Head h's projections pick
    the sine and cosine of its own share of the frequencies (scaled so that the coincident logit is
    `peak_logit`), with zero bias, so the attention starts peaked at the query's own position. Value and
    output projections keep their random initialisation.

    Args:
        attention: The attention to initialise (queries: box tokens, keys: map cells).
        dim: Width of the positional encoding (the module's width).
        peak_logit: Logit at coincident positions.

    Raises:
        ValueError: when a head's width is odd or the heads need more frequencies than the encoding has.
    """
    inner = attention.q_proj.out_features
    head_dim = inner // attention.num_heads
    freqs_per_head = head_dim // 2
    if head_dim % 2 or freqs_per_head * attention.num_heads > dim // 2:
        raise ValueError(
            f"attention_init='positional' needs an even head width and at most {dim // 2} frequencies in all; "
            f"got head width {head_dim} x {attention.num_heads} heads"
        )
    scale = math.sqrt(peak_logit * math.sqrt(head_dim) / freqs_per_head)
    weight = torch.zeros(inner, dim)
    for head in range(attention.num_heads):
        for j in range(freqs_per_head):
            freq = head * freqs_per_head + j
            weight[head * head_dim + j, freq] = scale  # sine of this frequency
            weight[head * head_dim + freqs_per_head + j, dim // 2 + freq] = scale  # its cosine
    with torch.no_grad():
        for proj in (attention.q_proj, attention.k_proj):
            proj.weight.copy_(weight)
            proj.bias.zero_()


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
            outweigh it in the attention. The small members turn it on.
        box_attention: Let each box's tokens attend only to the grid cells its box touches (the
            image -> token direction stays free). Off in the published module and in every member: a
            diagnostic that gives the module where to look, to tell a failure to localise from a failure to
            read what is there (README, Tiny MGIMM).
        attention_init: How the queries and keys of the box tokens' attention to the map start. `"default"`:
            PyTorch's random Linear initialisation, as published. `"positional"`: each head compares a share of
            the random-Fourier features of corner and cell, so at step 0 a corner token already attends around
            its corner (the dot product of two such encodings peaks where the points meet); training then
            moves from there. The architecture is unchanged; only the starting weights differ. Needs
            `image_norm`. The small members use it: with the default start the module did not learn where its
            box is in a CPU-sized run (README, Tiny MGIMM).
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
        attention_init: str = "default",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"BoxRegionEncoder needs depth >= 1, got {depth}")
        self.in_channels = int(in_channels)
        self.dim = self.out_dim = int(dim)
        self.feature_level = int(feature_level)
        self.box_attention = bool(box_attention)
        self.pe = RandomFourierPositionEncoding(self.dim)
        self.corner_embed = nn.Parameter(torch.randn(2, self.dim))  # top-left, bottom-right
        self.input_proj = nn.Identity() if self.in_channels == self.dim else nn.Linear(self.in_channels, self.dim)
        self.image_norm = nn.LayerNorm(self.dim) if image_norm else nn.Identity()
        self.transformer = TwoWayTransformer(self.dim, depth, num_heads, mlp_dim, attention_downsample_rate)
        if attention_init not in ATTENTION_INITS:
            raise ValueError(f"attention_init must be one of {ATTENTION_INITS}, got {attention_init!r}")
        self.attention_init = attention_init
        if attention_init == "positional":
            if not image_norm:
                raise ValueError(
                    "attention_init='positional' needs image_norm=True: it starts the normalised image content small "
                    "beside the positional encoding, which raw frozen features would drown"
                )
            self.init_positional()

    def init_positional(self, content_scale: float = POSITIONAL_CONTENT_SCALE) -> None:
        """Start every box-token -> map attention as a positional kernel (`attention_init="positional"`).

        The query and key projections compare random-Fourier features (`init_positional_attention`); the content
        added to those features (the normalised image tokens, the learned corner embeddings and the
        LayerNorms whose output forms the queries) starts `content_scale` times smaller, so that at step 0 the
        positional term dominates the logits and each corner token reads its neighbourhood. All of these stay
        trainable.
        """
        for attention in self.transformer.token_to_image_attentions():
            init_positional_attention(attention, self.dim)
        norms = [layer.norm1 for layer in self.transformer.layers] + [self.transformer.layers[-1].norm3]
        with torch.no_grad():
            self.corner_embed.mul_(content_scale)
            for norm in [self.image_norm, *norms]:
                if isinstance(norm, nn.LayerNorm):
                    norm.weight.mul_(content_scale)

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
    def forward(self, features: list[torch.Tensor], regions: RegionBatch) -> torch.Tensor:
        """Return the (R, 2, dim) refined corner tokens of every box of the batch.

        Args:
            features: Encoder feature maps; `features[feature_level]` is (B, in_channels, h, w).
            regions: Regions with `boxes` (R, 4) xyxy in input pixels, `image_index` (R,) and
                `image_size` (H, W) of the model input.

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
        return tokens
