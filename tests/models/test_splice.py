"""Splicing visual tokens into the text embeddings at their placeholders."""

import pytest
import torch

from rsvlm_zoo.models.splice import PlaceholderCountError, scatter_tokens


def test_tokens_land_at_their_placeholders_in_reading_order_with_their_gradients():
    torch.manual_seed(0)
    positions = torch.tensor([[False, True, True, False, True], [True, False, False, False, False]])
    embeds = torch.randn(2, 5, 3, requires_grad=True)
    tokens = torch.randn(4, 3, requires_grad=True)
    out = scatter_tokens(embeds, positions, tokens, "<mask>", per_row=torch.tensor([3, 1]))
    torch.testing.assert_close(out[0, 1], tokens[0])
    torch.testing.assert_close(out[0, 2], tokens[1])
    torch.testing.assert_close(out[0, 4], tokens[2])
    torch.testing.assert_close(out[1, 0], tokens[3])
    torch.testing.assert_close(out[~positions], embeds[~positions])
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    torch.testing.assert_close(tokens.grad, weights[positions])
    torch.testing.assert_close(embeds.grad, weights * (~positions).unsqueeze(-1))


def test_placeholder_and_token_counts_must_agree():
    positions = torch.tensor([[True, False], [True, True]])
    with pytest.raises(PlaceholderCountError, match="sample 1 of the batch has 2 <pos> tokens .* 1 <pos> features"):
        scatter_tokens(torch.zeros(2, 2, 4), positions, torch.zeros(2, 4), "<pos>", per_row=torch.tensor([1, 1]))
    with pytest.raises(PlaceholderCountError, match="3 <image> tokens in its text but 2"):
        scatter_tokens(torch.zeros(2, 2, 4), positions, torch.zeros(2, 4), "<image>")
