import pytest
import torch

from rsvlm_zoo.models.blocks.box_extractor import Attention, BoxRegionEncoder
from rsvlm_zoo.models.blocks.regions import RegionBatch

TINY = dict(in_channels=24, dim=32, depth=2, num_heads=4, mlp_dim=48, attention_downsample_rate=2)


def tiny(**overrides) -> BoxRegionEncoder:
    torch.manual_seed(0)
    return BoxRegionEncoder(**{**TINY, **overrides}).eval()


def random_boxes(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy1 = torch.rand(n, 2, generator=g) * torch.tensor([width, height]) * 0.7
    wh = (torch.rand(n, 2, generator=g) * 0.3 + 0.01) * torch.tensor([width, height])
    return torch.cat([xy1, xy1 + wh], dim=1)


def batch_with_counts(counts, height=96, width=160, channels=24, grid=(6, 10)):
    torch.manual_seed(1)
    feats = [torch.randn(len(counts), channels, *grid)]
    index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    boxes = random_boxes(len(index), height, width)
    return feats, RegionBatch(index, boxes=boxes, image_size=(height, width))


def test_shape_for_uneven_counts_and_gradients_reach_every_parameter():
    ext = tiny(in_channels=24, dim=32).train()
    feats, regions = batch_with_counts([0, 1, 4])
    out = ext(feats, regions)
    assert out.shape == (5, 2, 32)
    assert ext.out_dim == 32 and ext.tokens_per_region == 2 and ext.needs == "box"
    out.square().sum().backward()
    missing = [n for n, p in ext.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert "pe.gaussian" in ext.state_dict()  # the fixed random matrix travels with checkpoints
    assert all(n != "pe.gaussian" for n, _ in ext.named_parameters())


def test_empty_region_batch():
    ext = tiny()
    feats, _ = batch_with_counts([0, 0])
    regions = RegionBatch(torch.zeros(0, dtype=torch.long), boxes=torch.zeros(0, 4), image_size=(96, 160))
    assert ext(feats, regions).shape == (0, 2, 32)


def test_vectorised_equals_per_box_loop():
    ext = tiny()
    feats, regions = batch_with_counts([3, 0, 4, 2])
    out = ext(feats, regions)
    rows = []
    for r, b in enumerate(regions.image_index.tolist()):
        one = RegionBatch(torch.zeros(1, dtype=torch.long), boxes=regions.boxes[r : r + 1], image_size=(96, 160))
        rows.append(ext([feats[0][b : b + 1]], one)[0])
    torch.testing.assert_close(out, torch.stack(rows), rtol=1e-5, atol=1e-5)


def test_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, downsample_rate=2)
    q, k, v = torch.randn(3, 2, 32), torch.randn(3, 7, 32), torch.randn(3, 7, 32)

    def heads(x):
        return x.reshape(3, -1, 4, 4).transpose(1, 2)

    qh, kh, vh = heads(attn.q_proj(q)), heads(attn.k_proj(k)), heads(attn.v_proj(v))
    weights = (qh @ kh.transpose(-1, -2) / 2.0).softmax(-1)  # sqrt(head dim 4) = 2
    expected = attn.out_proj((weights @ vh).transpose(1, 2).reshape(3, 2, 16))
    torch.testing.assert_close(attn(q, k, v), expected, rtol=1e-5, atol=1e-6)


def test_corner_at_cell_centre_gets_that_cells_dense_encoding_on_non_square_input():
    ext = tiny()
    height, width, (h, w) = 96, 160, (6, 10)  # 16 px cells
    dense = ext.dense_position_encoding((h, w))
    assert dense.shape == (h, w, 32)
    cells = [(0, 0), (2, 7), (5, 9), (4, 1)]
    boxes = []
    for (i1, j1), (i2, j2) in zip(cells, cells[1:] + cells[:1], strict=True):
        x1, y1 = (j1 + 0.5) * width / w, (i1 + 0.5) * height / h
        x2, y2 = (j2 + 0.5) * width / w, (i2 + 0.5) * height / h
        boxes.append([x1, y1, max(x1, x2), max(y1, y2)])
    boxes = torch.tensor(boxes)
    pe = ext.box_position_encoding(boxes, (height, width))
    for r, (i1, j1) in enumerate(cells):
        torch.testing.assert_close(pe[r, 0], dense[i1, j1], rtol=0, atol=1e-5)
    # The upstream (width, height) mix-up must not also match.
    wrong = ext.box_position_encoding(boxes, (width, height))
    assert not torch.allclose(wrong[1, 0], dense[2, 7], atol=1e-3)
    # The box extremes span the full [0, 1] frame: the far corner of the image is the far corner of the grid.
    far = ext.box_position_encoding(torch.tensor([[0.0, 0.0, width - 8.0, height - 8.0]]), (height, width))
    torch.testing.assert_close(far[0, 1], dense[-1, -1], rtol=0, atol=1e-5)


def test_same_relative_box_on_a_larger_input_gives_the_same_tokens():
    ext = tiny()
    feats, regions = batch_with_counts([2, 3])
    big = RegionBatch(regions.image_index, boxes=regions.boxes * 2, image_size=(192, 320))
    torch.testing.assert_close(ext(feats, regions), ext(feats, big), rtol=1e-5, atol=1e-5)


def test_tokens_depend_on_image_content_and_on_the_box():
    ext = tiny()
    feats, regions = batch_with_counts([2, 2])
    out = ext(feats, regions)
    swapped = ext([feats[0].flip(0)], regions)
    assert (out - swapped).abs().amax() > 1e-3
    moved = RegionBatch(regions.image_index, boxes=regions.boxes + 10.0, image_size=regions.image_size)
    assert (out - ext(feats, moved)).abs().amax() > 1e-3


def test_in_channels_different_from_dim_uses_a_projection():
    ext = tiny(in_channels=24, dim=16, num_heads=2)
    assert isinstance(ext.input_proj, torch.nn.Linear)
    feats, regions = batch_with_counts([1, 2])
    assert ext(feats, regions).shape == (3, 2, 16)
    assert isinstance(tiny(in_channels=32, dim=32).input_proj, torch.nn.Identity)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: setattr(r, "boxes", None), r"needs region boxes.*\(x1, y1, x2, y2\)"),
        (lambda r: setattr(r, "boxes", r.boxes[:, :3]), r"must be \(3, 4\) xyxy"),
        (lambda r: setattr(r, "boxes", r.boxes[:2]), r"must be \(3, 4\) xyxy"),
        (
            lambda r: setattr(r, "image_index", torch.tensor([0, 1, 2])),
            r"region 2 has image_index 2 .* \[0, 2\)",
        ),
        (lambda r: setattr(r, "image_index", torch.tensor([0, -1, 1])), r"region 1 has image_index -1"),
        (lambda r: r.boxes.__setitem__((1, 0), 200.0), r"region 1 .*x2 < x1 or y2 < y1.*swap the corners"),
        (lambda r: r.boxes.__setitem__((2, 3), 0.0), r"region 2 .*x2 < x1 or y2 < y1"),
        (lambda r: r.boxes.__setitem__((0, 2), float("nan")), r"region 0 has a non-finite box"),
        (lambda r: r.boxes.__setitem__((2, 1), float("inf")), r"region 2 has a non-finite box"),
        (lambda r: setattr(r, "image_size", (0, 0)), r"image_size must be the positive \(height, width\)"),
    ],
)
def test_invalid_inputs_raise_helpful_errors(mutate, message):
    ext = tiny()
    feats, regions = batch_with_counts([1, 2])
    mutate(regions)
    with pytest.raises(ValueError, match=message):
        ext(feats, regions)


def test_feature_map_mismatch_is_reported():
    ext = tiny()
    _, regions = batch_with_counts([1, 2])
    with pytest.raises(ValueError, match=r"expects a \(B, 24, h, w\) feature map"):
        ext([torch.randn(2, 16, 6, 10)], regions)
    with pytest.raises(ValueError, match="expects a"):
        ext([torch.randn(2, 60, 24)], regions)


def test_full_size_parameter_count():
    dim, mlp, ds = 1024, 2048, 2
    inner = dim // ds

    def attn(i):
        return 3 * (dim * i + i) + (i * dim + dim)

    norm = 2 * dim
    block = attn(dim) + 2 * attn(inner) + (dim * mlp + mlp + mlp * dim + dim) + 4 * norm
    expected = 2 * block + attn(inner) + norm + 2 * dim  # blocks, final attention + norm, corner embeddings
    ext = BoxRegionEncoder()
    count = sum(p.numel() for p in ext.parameters())
    print(f"BoxRegionEncoder full size: {count:,} parameters")
    assert count == expected == 27_310_592
    assert sum(p.numel() for p in BoxRegionEncoder(image_norm=True).parameters()) == expected + norm
    assert ext.pe.gaussian.shape == (2, dim // 2)
    # A different encoder width (in_channels != dim) adds a Linear(in_channels -> dim).
    assert sum(p.numel() for p in BoxRegionEncoder(in_channels=768).parameters()) == expected + 768 * dim + dim


def test_full_size_forward_on_a_clip_vit_map():
    ext = BoxRegionEncoder().eval()
    feats = [torch.randn(2, 1024, 24, 24)]
    regions = RegionBatch(
        torch.tensor([0, 1, 1]),
        boxes=torch.tensor([[0.0, 0, 336, 336], [10, 20, 30, 40], [100, 50, 300, 60]]),
        image_size=(336, 336),
    )
    with torch.no_grad():
        out = ext(feats, regions)
    assert out.shape == (3, 2, 1024) and torch.isfinite(out).all()


def test_box_cell_mask_on_a_non_square_input():
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [20.0, 10.0, 40.0, 20.0], [500.0, 500.0, 600.0, 600.0]])
    mask = BoxRegionEncoder.box_cell_mask(boxes, (64, 128), (4, 8)).reshape(3, 4, 8)  # 16 px cells
    assert mask[0].nonzero().tolist() == [[0, 0]]
    assert mask[1].nonzero().tolist() == [[0, 1], [0, 2], [1, 1], [1, 2]]  # x 20-40 -> cols 1-2, y 10-20 -> rows 0-1
    assert mask[2].all()  # outside the input: attends everywhere rather than to nothing


def test_box_attention_makes_tokens_blind_to_features_outside_the_box():
    ext = tiny(box_attention=True)
    feats, regions = batch_with_counts([2])
    out = ext(feats, regions)
    grid = feats[0].shape[-2:]
    inside = BoxRegionEncoder.box_cell_mask(regions.boxes[:1], regions.image_size, grid).reshape(grid)
    outside = feats[0].clone()
    outside[0][:, ~inside] += 5 * torch.randn_like(outside[0][:, ~inside])
    torch.testing.assert_close(ext([outside], regions)[0], out[0])  # box 0 reads only its own cells
    plain = tiny()
    assert not torch.allclose(plain([outside], regions)[0], plain(feats, regions)[0])  # without: it reads them
    inner = feats[0].clone()
    inner[0][:, inside] += 1.0
    assert not torch.allclose(ext([inner], regions)[0], out[0])


def test_image_tokens_are_normalised_so_the_positional_encoding_counts():
    """With image_norm, frozen features of large scale (std ~6 for Lite0) are layer-normalised."""
    ext = BoxRegionEncoder(in_channels=32, dim=32, depth=1, num_heads=2, mlp_dim=64, image_norm=True)
    feats = 40.0 * torch.randn(1, 32, 6, 6)
    tokens = ext.image_norm(ext.input_proj(feats.flatten(2).transpose(1, 2)))
    assert tokens.std().item() == pytest.approx(1.0, abs=0.05)
    assert isinstance(BoxRegionEncoder().image_norm, torch.nn.Identity)  # off in the published module


def _first_attention_mass_in_box(ext: BoxRegionEncoder, feats: torch.Tensor, regions: RegionBatch) -> float:
    """Mean share of the first box-token -> map attention that falls on the cells each box touches."""
    seen = {}

    def hook(module, args, output):
        q, k = module._split(module.q_proj(args[0])), module._split(module.k_proj(args[1]))
        seen["weights"] = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)  # (R, H, 2, L)

    handle = ext.transformer.layers[0].cross_attn_token_to_image.register_forward_hook(hook)
    with torch.no_grad():
        ext([feats], regions)
    handle.remove()
    inside = BoxRegionEncoder.box_cell_mask(regions.boxes, regions.image_size, feats.shape[-2:])
    return float((seen["weights"] * inside[:, None, None, :]).sum(-1).mean())


def test_positional_attention_init_starts_each_box_reading_its_own_cells():
    """At step 0 the positional start puts most of a corner's attention in its box; the default spreads it."""
    torch.manual_seed(0)
    feats = 6.0 * torch.randn(4, 112, 8, 8)  # the scale of Lite0's stride-16 map
    corners = torch.rand(64, 2) * 100
    boxes = torch.cat([corners, corners + 22.0], dim=1)  # ~1.4 cells, as the generated objects
    regions = RegionBatch(torch.arange(64) % 4, boxes=boxes, image_size=(128, 128))
    kwargs = {"in_channels": 112, "dim": 112, "depth": 1, "num_heads": 2, "mlp_dim": 128, "image_norm": True}
    share = BoxRegionEncoder.box_cell_mask(boxes, (128, 128), (8, 8)).float().mean().item()
    default = _first_attention_mass_in_box(BoxRegionEncoder(**kwargs), feats, regions)
    positional = _first_attention_mass_in_box(BoxRegionEncoder(**kwargs, attention_init="positional"), feats, regions)
    assert default < 2 * share  # ~uniform: about the share of cells in the box
    assert positional > 0.5 > 5 * share


def test_positional_attention_init_keeps_the_architecture_and_checks_its_settings():
    default = BoxRegionEncoder(in_channels=32, dim=32, depth=2, num_heads=2, mlp_dim=64, image_norm=True)
    positional = BoxRegionEncoder(
        in_channels=32, dim=32, depth=2, num_heads=2, mlp_dim=64, image_norm=True, attention_init="positional"
    )
    shapes = {k: v.shape for k, v in default.state_dict().items()}
    assert {k: v.shape for k, v in positional.state_dict().items()} == shapes  # a checkpoint loads into either
    with pytest.raises(ValueError, match="attention_init must be one of"):
        BoxRegionEncoder(in_channels=32, dim=32, num_heads=2, mlp_dim=64, attention_init="sam")
    with pytest.raises(ValueError, match="needs image_norm=True"):
        BoxRegionEncoder(in_channels=32, dim=32, num_heads=2, mlp_dim=64, attention_init="positional")
