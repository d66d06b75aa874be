"""Training runs every trained block in training mode, whatever mode the model was built or loaded in.

`build_model`, `from_pretrained` and Hugging Face's `from_pretrained` (a pretrained LLM) all hand back eval-mode
modules, and Lightning keeps the modes it finds: without the model's own switch, dropout and LoRA dropout would
stay off through a whole fit without a word.
"""

from __future__ import annotations

import warnings

import lightning as L
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.models.lora import LoraSettings
from tests.models.test_aquila_plus import train_batch
from tests.models.test_precision import OneBatch


class ModeProbe(L.Callback):
    """Records, at the first training batch, which blocks hold modules in eval mode and the LoRA dropouts' modes."""

    def __init__(self) -> None:
        self.eval_blocks: set[str] = set()
        self.lora_dropout_training: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx:
            return
        self.eval_blocks = {name.split(".")[0] for name, m in pl_module.named_modules() if name and not m.training}
        self.lora_dropout_training = [
            m.training
            for name, m in pl_module.llm.named_modules()
            if "lora_dropout" in name and isinstance(m, torch.nn.Dropout)
        ]


def test_a_model_built_in_eval_mode_trains_its_blocks_in_training_mode(tmp_path):
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny", lora=LoraSettings(r=4, alpha=8, dropout=0.1))
    model.llm.eval()  # as Hugging Face's from_pretrained leaves a pretrained LLM
    assert not model.training and not model.llm.training
    probe = ModeProbe()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[probe],
    )
    loader = torch.utils.data.DataLoader(OneBatch(train_batch(model, n=2), 1), batch_size=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, train_dataloaders=loader)
    assert probe.eval_blocks == {"encoder"}  # the frozen encoder only, on purpose
    assert probe.lora_dropout_training and all(probe.lora_dropout_training)
    assert not [w for w in caught if "in eval mode" in str(w.message)]
