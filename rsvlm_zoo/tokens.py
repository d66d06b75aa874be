"""The one truth of the zoo's special tokens and of the published region wordings.

- `<image>`, `<mask>`, `<pos>`: the placeholders the data layer writes and the models fill;
- the Osprey/Aquila region wording ("There are N part regions in the picture: region1<mask><pos>, ...") and the
  MGIMM prompts, written once here and used by the readers, the generated scenes and `describe()`;
- the offline word-level tokenizer of the tiny members, built in memory from a shipped vocabulary.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

IMAGE_TOKEN = "<image>"
MASK_TOKEN = "<mask>"
POS_TOKEN = "<pos>"
REGION_TOKENS = (MASK_TOKEN, POS_TOKEN)
SPECIAL_TOKENS = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
REGION = MASK_TOKEN + POS_TOKEN  # how one region reference is written in a conversation

# Published instruction wordings (Osprey's dataset code; MGIMM's prompts).
OVERVIEW = "<image>\nThis provides an overview of the picture.\n"
MGIMM_ATTRIBUTE_PROMPT = (
    "<image>\n Based on the provided region of the remote sensing image, describe the basic attributes of the main "
    "objects in that region."
)
MGIMM_DESCRIPTION_PROMPT = "<image>\nDescribe this remote sensing image in detail."
DEFAULT_REGION_PROMPT = "What is {region}?"  # describe()'s question; {region} becomes "regionK<mask><pos>"


def region_name(k: int) -> str:
    """The k-th region (0-based) as a conversation names it: `region{k+1}<mask><pos>`."""
    return f"region{k + 1}{REGION}"


def region_list(num_regions: int, style: str = "zoo") -> str:
    """Osprey's region enumeration, in one of two forms.

    Args:
        num_regions: Regions listed.
        style: `zoo` (what `describe()` asks with and the zoo trains on): `There are N part regions in the
            picture: region1<mask><pos>, region2<mask><pos>.` and a newline; `osprey`: Osprey-724K's loader
            verbatim, `Ther are N part region(s) in the picture: region1<mask><pos>,region2<mask><pos>. `
            (its spelling, no space after the commas, singular for one region, a trailing space).
    """
    if style == "osprey":
        names = ",".join(region_name(k) for k in range(num_regions))
        noun = "part region" if num_regions == 1 else "part regions"
        return f"Ther are {num_regions} {noun} in the picture: {names}. "
    if style != "zoo":
        raise ValueError(f"region list style must be 'zoo' or 'osprey', got {style!r}")
    names = ", ".join(region_name(k) for k in range(num_regions))
    return f"There are {num_regions} part regions in the picture: {names}.\n"


def _vocabulary() -> list[str]:
    text = resources.files("rsvlm_zoo").joinpath("assets/tiny_vocab.txt").read_text(encoding="utf-8")
    words = [w.strip() for w in text.split() if w.strip()]
    words += [f"region{i}" for i in range(1, 65)] + [str(i) for i in range(0, 1001)]
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w.lower(), None)
    return list(seen)


@lru_cache(maxsize=1)
def _build_tokenizer_object() -> Tokenizer:
    specials = [SPECIAL_TOKENS[k] for k in ("unk_token", "pad_token", "bos_token", "eos_token")]
    vocab = {tok: i for i, tok in enumerate(specials + [IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN])}
    for word in _vocabulary():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (IMAGE_TOKEN, *REGION_TOKENS)])
    bos = SPECIAL_TOKENS["bos_token"]
    # Like Llama's tokenizers, text is encoded with a leading beginning-of-sequence token.
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    return tok


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the shipped vocabulary, with `<image>`, `<mask>`, `<pos>`, pad, bos and eos.

    Words outside the vocabulary map to `<unk>`; text is lower-cased. Built without any file or network access.
    """
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_build_tokenizer_object().to_str()),
        additional_special_tokens=[IMAGE_TOKEN, *REGION_TOKENS],
        **SPECIAL_TOKENS,
    )
    tokenizer.padding_side = "right"
    return tokenizer
