"""LoRA adapters on the LLM's projections only (never the vision encoder, extractor or projector)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rsvlm_zoo.models.blocks.llms import HFCausalLM


@dataclass
class LoraSettings:
    """LoRA hyper-parameters.

    Attributes:
        r: Rank.
        alpha: Scaling numerator (scale = alpha / r).
        dropout: Dropout on the LoRA input.
        target_modules: LLM linear layers to adapt (Llama names by default).
    """

    r: int = 16
    alpha: int = 256
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


def apply_lora(llm: HFCausalLM, settings: LoraSettings) -> None:
    """Wrap `llm.model` in a peft model with LoRA on `settings.target_modules`.

    Raises:
        ValueError: when none of the target modules exists in the LLM.
    """
    # peft is imported here, not with the package: it imports bitsandbytes, slow to load and noisy on the CPU.
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    names = {n.rsplit(".", 1)[-1] for n, _ in llm.model.named_modules()}
    if not set(settings.target_modules) & names:
        raise ValueError(
            f"LoRA targets {settings.target_modules} match no module of the LLM; it has e.g. {sorted(names)[:10]}"
        )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=[t for t in settings.target_modules if t in names],
        bias="none",
        task_type="CAUSAL_LM",
    )
    if llm.quantized:  # upcasts norms and enables input grads; on the LLM alone, never the vision blocks
        # peft re-enables checkpointing with its own (reentrant) default unless told: keep the non-reentrant kind.
        llm.model = prepare_model_for_kbit_training(
            llm.model,
            use_gradient_checkpointing=llm.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    llm.model = get_peft_model(llm.model, config)
