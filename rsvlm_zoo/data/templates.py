"""Conversation templates: turns -> text segments flagged as prompt or supervised answer."""

from __future__ import annotations

from dataclasses import dataclass

from rsvlm_zoo.data.schema import DataFormatError, Turn

# LLaVA-1.5's `conv_vicuna_v1`, the template Osprey's and LLaVA-1.5's training scripts use (`--version v1`).
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# Osprey's own `conv_osprey_v1` (its demo and evaluation prompts) and LLaVA's `conv_llava_v1` (MGIMM's evaluation
# prompts, `--conv-mode llava_v1`): the same text.
OSPREY_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text; `supervised` segments are the answers the loss is computed on."""

    text: str
    supervised: bool


@dataclass(frozen=True)
class ConversationTemplate:
    """How turns are written around the answers; the segments concatenate to the whole prompt.

    For `vicuna_v1` the result is exactly LLaVA's `SeparatorStyle.TWO` prompt:
    `SYSTEM + " " + "USER: " + q1 + " " + "ASSISTANT: " + a1 + "</s>" + "USER: " + q2 ...`, and a generation
    prompt ends with `"ASSISTANT:"` (no trailing space), as LLaVA's `get_prompt()` writes it.

    Attributes:
        name: Template name.
        system: Text before the first turn (with its separator).
        user_prefix: Written before each human turn.
        assistant_prefix: Written after each human turn (ends the prompt when generating).
        answer_prefix: Written before each answer (part of the supervised segment).
        answer_suffix: Written after each answer; `{eos}` is the tokenizer's end-of-sequence token.
    """

    name: str
    system: str
    user_prefix: str
    assistant_prefix: str
    answer_prefix: str
    answer_suffix: str

    def render(self, turns: list[Turn], eos: str, add_generation_prompt: bool = False) -> list[Segment]:
        """Render alternating human/gpt turns.

        Args:
            turns: The conversation; must alternate human, gpt, human, gpt, ...
            eos: The tokenizer's end-of-sequence token, closing each answer.
            add_generation_prompt: Render every turn up to and including the last human turn and end
                with the assistant prefix (for generation); trailing gpt turns are dropped.

        Raises:
            DataFormatError: when turns do not alternate or no answer turn exists (training).
        """
        if add_generation_prompt:
            while turns and turns[-1].role == "gpt":
                turns = turns[:-1]
        for i, turn in enumerate(turns):
            expected = "human" if i % 2 == 0 else "gpt"
            if turn.role != expected:
                raise DataFormatError(f"turn {i} is from {turn.role!r} but {expected!r} was expected (turns alternate)")
        if not add_generation_prompt and (len(turns) < 2 or len(turns) % 2):
            raise DataFormatError("conversation has no answer turn after its last question; add a 'gpt' turn")
        segments = [Segment(self.system, False)] if self.system else []
        for i in range(0, len(turns), 2):
            segments.append(Segment(self.user_prefix + turns[i].text + self.assistant_prefix, False))
            if i + 1 < len(turns):
                answer = self.answer_prefix + turns[i + 1].text + self.answer_suffix.replace("{eos}", eos)
                segments.append(Segment(answer, True))
        return segments

    def prompt(self, turns: list[Turn], eos: str, add_generation_prompt: bool = False) -> str:
        """The whole prompt as one string (what upstream's `get_prompt()` returns)."""
        return "".join(s.text for s in self.render(turns, eos, add_generation_prompt))


TEMPLATES: dict[str, ConversationTemplate] = {
    "vicuna_v1": ConversationTemplate("vicuna_v1", VICUNA_SYSTEM + " ", "USER: ", " ASSISTANT:", " ", "{eos}"),
    "osprey_v1": ConversationTemplate("osprey_v1", OSPREY_SYSTEM + " ", "USER: ", " ASSISTANT:", " ", "{eos}"),
    "llava_v1": ConversationTemplate("llava_v1", OSPREY_SYSTEM + " ", "USER: ", " ASSISTANT:", " ", "{eos}"),
    "llama_2": ConversationTemplate(
        "llama_2", f"[INST] <<SYS>>\n{OSPREY_SYSTEM}\n<</SYS>>\n\n", "", " [/INST]", " ", " {eos}[INST] "
    ),
    "plain": ConversationTemplate("plain", "", "", "", "", "{eos}"),
}


def get_template(name: str) -> ConversationTemplate:
    """Look a template up by name.

    Raises:
        KeyError: naming the known templates.
    """
    if name not in TEMPLATES:
        raise KeyError(f"unknown conversation template {name!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[name]
