"""Blocks swap purely from YAML: MGIMM on the ConvNeXt encoder, Aquila-plus on the ViT encoder."""

import textwrap

import pytest

from rsvlm_zoo.cli import main

LLM = """
    llm:
      class_path: HFCausalLM
      init_args:
        tokenizer: builtin
        config: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,
                 num_attention_heads: 2, num_key_value_heads: 2}
"""
TRAINER = """
trainer: {accelerator: cpu, fast_dev_run: 1, logger: false, enable_progress_bar: false}
"""

MGIMM_ON_CONVNEXT = (
    TRAINER
    + """
model:
  class_path: MGIMM
  init_args:
    stage: 1
    encoder:
      class_path: ConvNeXtCLIPEncoder
      init_args: {model_name: test_convnext, input_size: [64, 64]}
    extractor:
      class_path: BoxRegionEncoder
      init_args: {in_channels: 48, dim: 48, depth: 1, num_heads: 2, mlp_dim: 32, feature_level: 2}
    projector: {class_path: MLPProjector, init_args: {in_dim: 48, out_dim: 32}}
"""
    + LLM
    + """
data:
  class_path: RegionDataModule
  init_args:
    train: {class_path: SyntheticSource, init_args: {num_scenes: 4, side: 64, task: box_attributes}}
    val: {class_path: SyntheticSource, init_args: {num_scenes: 2, side: 64, task: box_attributes}}
    batch_size: 2
"""
)

AQUILA_ON_VIT = (
    TRAINER
    + """
model:
  class_path: AquilaPlus
  init_args:
    stage: 3
    encoder:
      class_path: ViTCLIPEncoder
      init_args: {model_name: test_vit, input_size: [64, 64]}
    extractor:
      class_path: MaskAwareExtractor
      init_args: {in_channels: [64], out_dim: 32, hidden_dim: 16, pos_size: 16, pos_hidden: 16}
    projector: {class_path: MLPProjector, init_args: {in_dim: 64, out_dim: 32}}
"""
    + LLM
    + """
data:
  class_path: RegionDataModule
  init_args:
    train: {class_path: SyntheticSource, init_args: {num_scenes: 4, side: 64}}
    val: {class_path: SyntheticSource, init_args: {num_scenes: 2, side: 64, one_question_per_sample: true}}
    batch_size: 2
"""
)


@pytest.mark.parametrize("recipe", [MGIMM_ON_CONVNEXT, AQUILA_ON_VIT], ids=["mgimm-convnext", "aquila-vit"])
def test_swapped_encoder_trains_a_step(tmp_path, recipe):
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(recipe))
    assert main(["fit", "-c", str(path), "--trainer.default_root_dir", str(tmp_path)]) == 0
