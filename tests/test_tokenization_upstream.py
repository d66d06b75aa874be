"""Token streams identical to upstream's (LLaVA-1.5 / Osprey training code) with a real SentencePiece tokenizer.

The tokenizer is a Llama-kind SentencePiece model trained here (BPE, byte fallback, `<s>` `</s>` `<unk>`, no pad),
stored as Vicuna ships it (`tokenizer.model` + `tokenizer_config.json`) and loaded through `HFCausalLM`'s own
path. The reference is written from upstream's algorithm: `get_prompt()` of `SeparatorStyle.TWO`,
`tokenizer_image_token` (the prompt split only at `<image>`, each piece tokenised with its BOS, BOS kept once),
and `preprocess_v1`'s label masking (rounds split at `</s>`, the instruction of each round ignored).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsvlm_zoo.data.processor import IGNORE_INDEX, InputSpec, RegionProcessor
from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.data.templates import OSPREY_SYSTEM, VICUNA_SYSTEM
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.tokens import IMAGE_TOKEN
from rsvlm_zoo.weights.files import MissingWeightsError

spm = pytest.importorskip("sentencepiece")

CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "This provides an overview of the picture. There are 2 part regions in the picture: region1, region2.",
    "What is the category of this region? Answer the question using a single word or phrase.",
    "a large white ship is moored next to a small harbour with three storage tanks and a baseball field",
    "USER: ASSISTANT: Please give me a short description. 12 airplanes, 3 vehicles, 45.5 metres.",
]
IMAGE_TOKENS = 5
PLACEHOLDER = -200  # upstream's IMAGE_TOKEN_INDEX


@pytest.fixture(scope="module")
def vicuna_like_dir(tmp_path_factory):
    """A tokenizer directory in Vicuna's on-disk form: `tokenizer.model` and its config, nothing else."""
    root = tmp_path_factory.mktemp("sp")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 40),
        model_prefix=str(root / "sp"),
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    out = root / "vicuna"
    out.mkdir()
    (out / "tokenizer.model").write_bytes((root / "sp.model").read_bytes())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "model_max_length": 4096,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def tokenizer(vicuna_like_dir):
    return HFCausalLM._load_tokenizer(str(vicuna_like_dir), None)


def upstream_prompt(system, turns, generation=False):
    """LLaVA's `Conversation.get_prompt()` for `SeparatorStyle.TWO` (sep " ", sep2 "</s>")."""
    seps = [" ", "</s>"]
    messages = [("USER" if t.role == "human" else "ASSISTANT", t.text) for t in turns]
    if generation:
        messages.append(("ASSISTANT", None))
    out = system + seps[0]
    for i, (role, message) in enumerate(messages):
        out += role + ": " + message + seps[i % 2] if message else role + ":"
    return out


def upstream_ids(prompt, tok):
    """Upstream's `tokenizer_image_token`, `<image>` as one placeholder id."""
    chunks = [tok(chunk).input_ids for chunk in prompt.split(IMAGE_TOKEN)]
    ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tok.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    for k, chunk in enumerate(chunks):
        if k:
            ids.append(PLACEHOLDER)
        ids.extend(chunk[offset:])
    return ids


def upstream_labels(prompt, ids, tok):
    """Upstream's `preprocess_v1` masking (with LLaVA's adjustment for non-legacy Llama tokenizers)."""
    labels = list(ids)
    sep = " ASSISTANT: "
    cur = 1
    labels[:cur] = [IGNORE_INDEX] * cur
    for i, rou in enumerate(prompt.split("</s>")):
        if rou == "":
            break
        parts = rou.split(sep)
        assert len(parts) == 2, rou
        round_len = len(upstream_ids(rou, tok))
        instruction_len = len(upstream_ids(parts[0] + sep, tok)) - 2
        if i != 0 and not tok.legacy:
            round_len -= 1
            instruction_len -= 1
        labels[cur : cur + instruction_len] = [IGNORE_INDEX] * instruction_len
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * (len(labels) - cur)
    assert cur == len(ids), "upstream's own arithmetic must cover the prompt exactly"
    return labels


def expand(ids, labels, extra):
    """`<image>` -> the image tokens (and region tokens for MGIMM), all ignored in the labels."""
    out_ids, out_labels = [], []
    for t, label in zip(ids, labels, strict=True):
        if t == PLACEHOLDER:
            out_ids += extra
            out_labels += [IGNORE_INDEX] * len(extra)
        else:
            out_ids.append(t)
            out_labels.append(label)
    return out_ids, out_labels


def conversation():
    return [
        Turn(
            "human",
            "<image>\nThis provides an overview of the picture.\nThere are 2 part regions in the picture: "
            "region1<mask><pos>, region2<mask><pos>. What is the category of region1?",
        ),
        Turn("gpt", "a large white ship"),
        Turn("human", "And region2? Answer the question using a single word or phrase."),
        Turn("gpt", "12 storage tanks"),
    ]


def sample(turns):
    mask = np.zeros((40, 50), bool)
    mask[5:15, 5:20] = True
    return Sample("mem", 50, 40, regions=[Region(mask=mask), Region(mask=mask)], conversation=turns, sample_id="s")


def processor(tokenizer, template, in_image=False):
    kind = "box" if in_image else "mask"
    spec = InputSpec(tokenizer, (32, 32), (0.5,) * 3, (0.25,) * 3, IMAGE_TOKENS, kind, in_image, template)
    return RegionProcessor(spec)


@pytest.mark.parametrize(
    ("template", "system"), [("vicuna_v1", VICUNA_SYSTEM), ("osprey_v1", OSPREY_SYSTEM), ("llava_v1", OSPREY_SYSTEM)]
)
def test_training_ids_and_labels_equal_upstreams(tokenizer, template, system):
    proc = processor(tokenizer, template)
    turns = conversation()
    ids, labels = proc.tokenize(sample(turns), 2)
    prompt = upstream_prompt(system, turns)
    assert proc.template.prompt(turns, "</s>") == prompt
    ref_ids = upstream_ids(prompt, tokenizer)
    ref_ids, ref_labels = expand(ref_ids, upstream_labels(prompt, ref_ids, tokenizer), [proc.image_id] * IMAGE_TOKENS)
    assert ids == ref_ids
    assert labels == ref_labels
    assert ids.count(tokenizer.bos_token_id) == 1
    supervised = tokenizer.decode([t for t in labels if t != IGNORE_INDEX])
    assert supervised == "a large white ship</s> 12 storage tanks</s>"


def test_answers_start_without_a_stray_space_token(tokenizer):
    ids, labels = processor(tokenizer, "vicuna_v1").tokenize(sample(conversation()), 2)
    first = tokenizer.convert_ids_to_tokens([next(t for t in labels if t != IGNORE_INDEX)])[0]
    assert first.startswith("▁") and first != "▁"  # '▁a', as in the whole prompt, not '▁', '▁a'


def test_generation_prompt_ends_like_upstreams(tokenizer):
    proc = processor(tokenizer, "vicuna_v1")
    turns = conversation()[:3]
    ids, _ = proc.tokenize(sample(turns), 2, generation=True)
    ref = upstream_ids(upstream_prompt(VICUNA_SYSTEM, turns, generation=True), tokenizer)
    assert ids == expand(ref, ref, [proc.image_id] * IMAGE_TOKENS)[0]
    assert tokenizer.convert_ids_to_tokens(ids[-1:]) == [":"]


def test_mgimm_image_carries_the_region_tokens(tokenizer):
    proc = processor(tokenizer, "vicuna_v1", in_image=True)
    turns = [Turn("human", "<image>\nDescribe the image in detail."), Turn("gpt", "a harbour with 2 ships")]
    ids, labels = proc.tokenize(sample(turns), 2)
    prompt = upstream_prompt(VICUNA_SYSTEM, turns)
    ref = upstream_ids(prompt, tokenizer)
    extra = [proc.image_id] * IMAGE_TOKENS + [proc.mask_id, proc.pos_id] * 2
    assert (ids, labels) == expand(ref, upstream_labels(prompt, ref, tokenizer), extra)


def test_the_models_processor_is_public(tiny_aquila):
    item = tiny_aquila.processor(sample(conversation()), np.zeros((40, 50, 3), np.uint8))
    assert {"input_ids", "labels", "pixel_values", "masks"} <= set(item)
    assert tiny_aquila.processor.template.name == "osprey_v1"


def test_a_named_llm_without_tokenizer_files_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"(?s)no tokenizer could be loaded from .*empty.*tokenizer: builtin"):
        HFCausalLM._load_tokenizer(str(tmp_path / "empty"), None)
    with pytest.raises(MissingWeightsError, match="neither a local directory nor in the local Hugging Face cache"):
        HFCausalLM._load_tokenizer("no-such-org/no-such-model", None)
