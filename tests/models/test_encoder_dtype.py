"""Encoder execution options: a frozen encoder kept in half precision (`encoder_dtype`), and `compile_encoder`."""

import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.weights.export import export_model, from_pretrained
from tests.models.test_aquila_plus import train_batch


def _pair():
    """The same tiny Aquila-plus twice: fp32 throughout, and with its frozen encoder in bfloat16."""
    torch.manual_seed(0)
    full = build_model("aquila_plus_tiny", stage=3)
    torch.manual_seed(0)
    half = build_model("aquila_plus_tiny", stage=3, encoder_dtype="bfloat16")
    return full, half


def test_frozen_encoder_runs_in_bfloat16_and_the_rest_trains_in_fp32():
    full, half = _pair()
    assert {p.dtype for p in half.encoder.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in half.extractor.parameters()} == {torch.float32}
    batch = train_batch(half, n=2)
    maps = half.encode(batch["pixel_values"])
    assert all(m.dtype == torch.float32 for m in maps), "maps reach the extractor in its dtype"
    loss = half(batch)
    loss.backward()
    assert half.extractor.mask_proj.weight.grad.dtype == torch.float32
    assert all(p.grad is None for p in half.encoder.parameters())
    with torch.no_grad():
        # Same weights, only the encoder rounded to bfloat16: the loss moves by rounding only.
        torch.testing.assert_close(loss.detach(), full(batch), rtol=2e-2, atol=0)


def test_encoder_stays_in_its_dtype_after_the_model_is_moved_to_fp32():
    _, half = _pair()
    half.float()
    assert next(half.encoder.parameters()).dtype == torch.float32
    batch = train_batch(half, n=1)
    half(batch)
    assert next(half.encoder.parameters()).dtype == torch.bfloat16


def test_encoder_dtype_is_refused_for_a_trained_encoder_or_an_unknown_name():
    with pytest.raises(ValueError, match="train_encoder: false"):
        build_model("aquila_plus_tiny", train_encoder=True, encoder_dtype="bfloat16")
    with pytest.raises(ValueError, match="encoder_dtype must be one of"):
        build_model("aquila_plus_tiny", encoder_dtype="bf16")


def test_saved_model_keeps_its_encoder_dtype(tmp_path):
    _, half = _pair()
    export_model(half, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m")
    assert next(loaded.encoder.parameters()).dtype == torch.bfloat16
    batch = train_batch(half, n=2)
    half.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), half(batch))


def test_compiled_encoder_gives_the_same_maps_and_keeps_parameter_names():
    torch.manual_seed(0)
    plain = build_model("aquila_plus_tiny", stage=3).eval()
    torch.manual_seed(0)
    compiled = build_model("aquila_plus_tiny", stage=3, compile_encoder=True).eval()
    assert compiled.encoder._compiled_call_impl is not None and plain.encoder._compiled_call_impl is None
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    pixels = train_batch(plain, n=2)["pixel_values"]
    with torch.no_grad():
        for got, want in zip(compiled.encode(pixels), plain.encode(pixels), strict=True):
            # float32 summation order differs once compiled: within 1e-5 of the map's scale
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
