"""The shared RegionVLM LightningModule: encode, extract, project, splice, loss, generate, stages.

Kept in one file (about 370 lines, a quarter of them docstrings): the forward path (encode, extract, project,
splice, loss, generate) and the stage set-up it depends on; evaluation steps, the optimiser and precision rules
live in evaluating.py, optim.py and precision.py.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rsvlm_zoo.batch import Batch
from rsvlm_zoo.data.processor import InputSpec, RegionProcessor
from rsvlm_zoo.data.templates import get_template
from rsvlm_zoo.models.blocks.encoders import VisionEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.blocks.projectors import MLPProjector
from rsvlm_zoo.models.blocks.regions import RegionBatch, RegionExtractor
from rsvlm_zoo.models.describe import ImageLike
from rsvlm_zoo.models.evaluating import AnswerEvaluation
from rsvlm_zoo.models.lora import LoraSettings, apply_lora
from rsvlm_zoo.models.optim import adamw_warmup_cosine
from rsvlm_zoo.models.precision import frozen_encoder_dtype, warn_if_updates_stall
from rsvlm_zoo.models.splice import scatter_tokens
from rsvlm_zoo.tokens import IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN
from rsvlm_zoo.weights.checkpoint_contents import check_loadable, trim_checkpoint
from rsvlm_zoo.weights.export import export_model
from rsvlm_zoo.weights.model_config import CHECKPOINT_CONFIG_KEY, model_config, register_own_class
from rsvlm_zoo.weights.stage_checkpoint import load_stage_checkpoint

log = logging.getLogger(__name__)


class RegionVLM(AnswerEvaluation):
    """Encoder + region extractor + projector + causal LM, trained in stages.

    Args:
        encoder: Vision encoder block.
        extractor: Region extractor block.
        projector: Image-token projector (vision width -> LLM width).
        llm: The language model block.
        stage: Training stage; `STAGES` of the subclass maps it to the trainable blocks.
        lr: Base learning rate.
        block_lr: Per-block learning rates overriding `lr` (keys: encoder, extractor, projector, llm).
        weight_decay: AdamW weight decay.
        warmup_ratio: Share of the steps with linear warm-up before the cosine decay.
        lora: LoRA on the LLM when the stage trains it (None: full fine-tuning).
        train_encoder: Also train the vision encoder (only sensible for tiny from-scratch models).
        encoder_dtype: Dtype the encoder is kept and run in (`bfloat16`, `float16` or `float32`), whatever the
            precision of the rest: under fp32 training on hardware with bf16 units it halves the encoder's
            time and memory (as LLaVA-style trainers keep their frozen vision tower in half precision). Its
            feature maps are cast to the extractor's dtype. None: the model's dtype. Half precision needs a frozen
            encoder.
        compile_encoder: Compile the encoder with `torch.compile` (in place: parameter names, checkpoints and
            copies are unchanged). The first batch pays the compilation (seconds on a GPU; tens of seconds on a
            CPU, which also needs a C++ compiler); a frozen ConvNeXt then runs ~10-15 % faster on a CPU.
        train_llm: Also train the LLM in stages that freeze it (only sensible for tiny random LLMs).
        init_checkpoint: Checkpoint of an earlier stage (Lightning .ckpt or .safetensors) whose weights
            initialise this model before LoRA is attached; loaded with `weights_only=True`.
        max_new_tokens: Generation length in validation/test.
        eval_metrics: Metrics of generated answers in validation/test (`exact_match`, `cider`).
        template: Conversation template the data is written in; None: the family's (`TEMPLATE`).
    """

    STAGES: ClassVar[dict[int, tuple[str, ...]]] = {}
    project_regions: ClassVar[bool] = False
    TEMPLATE: ClassVar[str] = "vicuna_v1"  # the family's conversation template (rsvlm_zoo.data.templates)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_own_class(cls)  # model files may name the zoo's models (see weights/model_config.py)

    def __init__(
        self,
        encoder: VisionEncoder,
        extractor: RegionExtractor,
        llm: HFCausalLM,
        projector: MLPProjector | None = None,
        stage: int = 1,
        lr: float = 2e-5,
        block_lr: dict[str, float] | None = None,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        lora: LoraSettings | None = None,
        train_encoder: bool = False,
        encoder_dtype: str | None = None,
        compile_encoder: bool = False,
        train_llm: bool = False,
        init_checkpoint: str | None = None,
        max_new_tokens: int = 32,
        eval_metrics: tuple[str, ...] = ("exact_match",),
        template: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "extractor", "projector", "llm"])
        if stage not in self.STAGES:
            raise ValueError(f"{type(self).__name__} has stages {sorted(self.STAGES)}, got stage={stage}")
        self.encoder, self.extractor, self.llm = encoder, extractor, llm
        self.projector = projector or MLPProjector(encoder.image_dim, llm.hidden_size)
        self._check_widths()
        self.stage = stage
        self.template = get_template(template or self.TEMPLATE).name
        self.train_encoder = train_encoder
        self.encoder_dtype = frozen_encoder_dtype(encoder_dtype, train_encoder)
        tok = llm.tokenizer
        self.image_id, self.mask_id, self.pos_id = tok.convert_tokens_to_ids([IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN])
        extra = (("encoder",) if train_encoder else ()) + (
            ("llm",) if train_llm and "llm" not in self.STAGES[stage] else ()
        )
        self.trainable_blocks = self.STAGES[stage] + extra
        if isinstance(lora, dict):
            lora = LoraSettings(**lora)
        self.lora = lora
        # Hyperparameters hold plain data only, so checkpoints load with torch.load(weights_only=True).
        self.hparams.lora = dataclasses.asdict(lora) if lora is not None else None
        if init_checkpoint:
            load_stage_checkpoint(self, init_checkpoint)
        if llm.quantized and "llm" in self.trainable_blocks and lora is None:
            raise ValueError("a 4-bit LLM cannot be fine-tuned directly; set `lora` (QLoRA) or load_in_4bit: false")
        if lora is not None and "llm" in self.trainable_blocks:
            apply_lora(self.llm, lora)
        self._apply_freezing()
        if self.encoder_dtype is not None:
            self.encoder.to(self.encoder_dtype)
        if compile_encoder:
            self.encoder.compile()
        # Checkpoints leave out frozen pretrained tensors (see checkpoint_contents); on_load_checkpoint checks
        # what a checkpoint holds, so Lightning's own strict key matching is switched off.
        self.strict_loading = False
        self._init_evaluation(eval_metrics)  # answer metrics per split and evaluation set (models/evaluating.py)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained tensors and those that cannot be rebuilt, plus the config that rebuilds the rest."""
        trim_checkpoint(self, checkpoint)
        try:
            checkpoint[CHECKPOINT_CONFIG_KEY] = model_config(self)
        except TypeError as err:  # a custom block that cannot be written as config: the checkpoint still loads
            log.warning("checkpoint carries no model config (from_pretrained will not read it): %s", err)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose tensors do not fit this model, before any is copied."""
        check_loadable(self, checkpoint)

    # ------------------------------------------------------------------ construction helpers
    def _check_widths(self) -> None:
        self.extractor.check_encoder_channels(self.encoder.channels)
        d_llm = self.llm.hidden_size
        if self.projector.in_dim != self.encoder.image_dim or self.projector.out_dim != d_llm:
            raise ValueError(
                f"projector maps {self.projector.in_dim}->{self.projector.out_dim} but the encoder's image level has "
                f"{self.encoder.image_dim} channels and the LLM width is {d_llm}; set projector in_dim/out_dim to match"
            )
        want = self.projector.in_dim if self.project_regions else d_llm
        if self.extractor.out_dim != want:
            raise ValueError(f"extractor emits width {self.extractor.out_dim} but {want} is needed here")

    def _apply_freezing(self) -> None:
        for name in ("encoder", "extractor", "projector", "llm"):
            block = getattr(self, name)
            train = name in self.trainable_blocks
            for pname, p in block.named_parameters():
                p.requires_grad_(train and (name != "llm" or self.lora is None or "lora_" in pname))
        self.encoder.train(self.train_encoder)

    def on_fit_start(self) -> None:
        """Put the blocks in training mode, and warn once when trained weights cannot move.

        Lightning keeps the modes it finds, and a pretrained LLM loads in eval mode (Hugging Face's
        `from_pretrained`), as do `build_model` and `from_pretrained` here: without this, its dropout and LoRA
        dropout would stay off through training. `train()` keeps a frozen encoder in eval mode.

        The stall warning names trained weights that sit in half precision with a learning rate too small to move
        them. Lightning warns about every module in eval mode when training starts; a frozen encoder is in eval
        mode on purpose, so that warning is silenced for exactly its module count (any other module in eval mode
        changes the count, and the warning shows).
        """
        self.train()
        warn_if_updates_stall(self)
        if not self.train_encoder:
            frozen = sum(1 for _ in self.encoder.modules())
            message = rf"Found {frozen} module\(s\) in eval mode at the start of training"
            warnings.filterwarnings("ignore", message=message)

    def train(self, mode: bool = True) -> RegionVLM:
        """Switch mode but keep a frozen encoder in eval mode (no dropout, frozen norms)."""
        super().train(mode)
        if not self.train_encoder:
            self.encoder.eval()
        return self

    def input_spec(self) -> InputSpec:
        """What the data layer needs to prepare inputs for this model."""
        return InputSpec(
            tokenizer=self.llm.tokenizer,
            input_size=self.encoder.input_size,
            mean=self.encoder.mean,
            std=self.encoder.std,
            num_image_tokens=self.encoder.num_image_tokens,
            region_kind=self.extractor.needs,
            regions_in_image=self.project_regions,
            template=self.template,
        )

    @property
    def processor(self) -> RegionProcessor:
        """The processor that turns one `Sample` and its decoded image into this model's inputs.

        `model.processor(sample, image)` returns `input_ids`, `labels`, `pixel_values` and the region tensors,
        exactly as training builds them (the family's template, the whole prompt tokenised as upstream does).
        """
        return RegionProcessor(self.input_spec())

    # ------------------------------------------------------------------ forward
    def encode(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Run the encoder (without autograd when it is frozen) and return its maps in the extractor's dtype.

        With `encoder_dtype` set, the encoder runs in that dtype even after the model was moved to another
        (`model.float()`, a precision plugin): it is cast back here before it runs.
        """
        if self.encoder_dtype is not None and self._vision_dtype() != self.encoder_dtype:
            self.encoder.to(self.encoder_dtype)
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            maps = self.encoder(pixel_values.to(self._vision_dtype()))
        dtype = self._compute_dtype()
        return [m if m.dtype == dtype else m.to(dtype) for m in maps]

    def region_tokens(
        self,
        features: list[torch.Tensor],
        batch: Batch,
        image_index: torch.Tensor,
        size: tuple[int, int],
        pixel_values: torch.Tensor,
    ) -> torch.Tensor:
        """(R, 2, D_llm) tokens for every region of the batch; `image_index` maps regions to `features` rows."""
        regions = RegionBatch(
            image_index=image_index, masks=batch.get("region_masks"), boxes=batch.get("region_boxes"), image_size=size
        )
        if getattr(self.extractor, "pool_pixels", False):
            tokens = self.extractor(features, regions, pixel_values=pixel_values)
        else:
            tokens = self.extractor(features, regions)
        return self.projector(tokens) if self.project_regions else tokens

    def inputs_embeds(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with image and region tokens spliced in at their placeholders.

        When `batch["sequence_image_index"]` is given, `pixel_values` holds each unique image once and
        that index maps every sequence to its image, so an image asked about many times is encoded once.
        """
        ids = batch["input_ids"]
        pixel_values = batch["pixel_values"].to(self.device, self._compute_dtype())
        seq_image = batch.get("sequence_image_index")
        region_seq = batch["region_image_index"]
        is_img, is_mask, is_pos = ids == self.image_id, ids == self.mask_id, ids == self.pos_id
        pad = self.llm.tokenizer.pad_token_id
        embeds = self.llm.embed(ids.masked_fill(is_img | is_mask | is_pos, pad))
        features = self.encode(pixel_values)
        level = features[self.encoder.image_level]
        image_tokens = self.projector(level.flatten(2).transpose(1, 2))  # (U, N, D)
        region_image = region_seq
        if seq_image is not None:
            image_tokens = image_tokens[seq_image]
            region_image = seq_image[region_seq]
        n = image_tokens.shape[1]
        embeds = scatter_tokens(embeds, is_img, image_tokens.flatten(0, 1), IMAGE_TOKEN, torch.full_like(ids[:, 0], n))
        counts = torch.bincount(region_seq, minlength=ids.shape[0])
        tokens = self.region_tokens(features, batch, region_image, tuple(pixel_values.shape[-2:]), pixel_values)
        embeds = scatter_tokens(embeds, is_mask, tokens[:, 0], MASK_TOKEN, counts)
        return scatter_tokens(embeds, is_pos, tokens[:, 1], POS_TOKEN, counts)

    def _vision_dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def _compute_dtype(self) -> torch.dtype:
        """Dtype of the trained vision-side blocks (extractor, projector): the model's precision."""
        return next(self.projector.parameters()).dtype

    def forward(self, batch: Batch) -> torch.Tensor:
        """Language-modelling loss of a batch (mean over supervised tokens)."""
        return self.llm.supervised_loss(self.inputs_embeds(batch), batch["attention_mask"], batch["labels"])

    @torch.no_grad()
    def generate(self, batch: Batch, max_new_tokens: int | None = None, **kwargs: Any) -> list[str]:
        """Greedy (by default) answers for a left-padded prompt batch.

        Runs in eval mode (no dropout, so the same input gives the same answer) and restores the mode it found.
        """
        tok = self.llm.tokenizer
        was_training = self.training
        self.eval()
        try:
            out = self.llm.model.generate(
                inputs_embeds=self.inputs_embeds(batch),
                attention_mask=batch["attention_mask"],
                max_new_tokens=max_new_tokens or self.hparams.max_new_tokens,
                do_sample=kwargs.pop("do_sample", False),
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                **kwargs,
            )
        finally:
            self.train(was_training)
        return [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """One optimisation step on the language-modelling loss (a batch of only skipped samples is passed over)."""
        if batch is None:
            return None
        if batch.get("skipped"):
            self.log("train/skipped_samples", float(batch["skipped"]), reduce_fx="sum", batch_size=1)
        loss = self(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss {loss.item()} at global step {self.global_step}, batch {batch_idx} "
                f"(samples {batch.get('sample_ids')}); lower the learning rate or check these samples"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with per-block learning rates, linear warm-up then cosine decay (`rsvlm_zoo.models.optim`)."""
        return adamw_warmup_cosine(self)

    def describe(
        self,
        images: list[ImageLike],
        regions: list[list[Any]] | None = None,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        **generate_kwargs: Any,
    ) -> list[Any]:
        """Answer about the regions of a batch of images in one greedy generation batch (each family's own).

        Args:
            images: PIL images, HxWx3 uint8 arrays or file paths, any size.
            regions: Per image, the regions in the family's form (masks for Aquila-plus, boxes for MGIMM and
                GeoChat's `identify`, phrases for GeoChat's `refer`).
            prompt: The question; each family has its default.
            max_new_tokens: Generation length.
            **generate_kwargs: The family's options (e.g. `task`) and generation arguments.

        Returns:
            The answers, per image (and per region where the family answers per region).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement describe()")

    def save_pretrained(self, out_dir: str | Path, merge: bool = False, overwrite: bool = False) -> Path:
        """Write a deployable directory that `rsvlm_zoo.from_pretrained` loads back (see `weights/export.py`).

        Args:
            out_dir: Directory to write (config, trained tensors, LoRA adapter or merged LLM).
            merge: Merge the LoRA adapter into the LLM and write it as a Hugging Face model directory.
            overwrite: Replace an existing directory.
        """
        return export_model(self, out_dir, merge=merge, overwrite=overwrite)

    def num_parameters(self, trainable_only: bool = False) -> dict[str, int]:
        """Parameter counts per block."""
        return {
            name: sum(p.numel() for p in getattr(self, name).parameters() if p.requires_grad or not trainable_only)
            for name in ("encoder", "extractor", "projector", "llm")
        }

    def trainable_modules(self) -> nn.ModuleDict:
        """The blocks this stage trains."""
        return nn.ModuleDict({n: getattr(self, n) for n in self.trainable_blocks})
