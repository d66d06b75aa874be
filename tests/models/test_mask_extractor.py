import pytest
import torch

from rsvlm_zoo.models.blocks.mask_extractor import MaskAwareExtractor, area_downsample
from rsvlm_zoo.models.blocks.regions import RegionBatch

WIDTHS, STRIDES = [16, 24, 32, 40], [4, 8, 16, 32]


def features(batch: int, size: int) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(batch, c, size // s, size // s) for c, s in zip(WIDTHS, STRIDES, strict=True)]


def reference(ext: MaskAwareExtractor, feats, masks, index):
    """Per-mask loop written independently: weighted mean with area coverage as weights."""
    rows = []
    for m, b in zip(masks, index.tolist(), strict=True):
        total = 0
        for feat, proj in zip(feats, ext.level_proj, strict=True):
            h, w = feat.shape[-2:]
            fy, fx = m.shape[0] // h, m.shape[1] // w
            cover = m.reshape(h, fy, w, fx).mean((1, 3))
            pooled = (feat[b] * cover).sum((1, 2)) / cover.sum()
            total = total + proj(pooled)
        p = ext.pos_size
        pos = m.reshape(p, m.shape[0] // p, p, m.shape[1] // p).mean((1, 3)).flatten()
        rows.append(torch.stack([ext.mask_proj(total), ext.pos_mlp(pos)]))
    return torch.stack(rows)


def random_masks(n: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, size, size)
    for i in range(n):
        h, w = torch.randint(2, size // 2, (2,), generator=g).tolist()
        y, x = (
            torch.randint(0, size - h, (1,), generator=g).item(),
            torch.randint(0, size - w, (1,), generator=g).item(),
        )
        masks[i, y : y + h, x : x + w] = 1
    return masks


def test_vectorised_equals_per_mask_loop_with_uneven_region_counts():
    ext = MaskAwareExtractor(WIDTHS, out_dim=48, hidden_dim=32, pos_size=16, pos_hidden=32).eval()
    feats = features(3, 128)
    index = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2])  # image 1 has no region
    masks = random_masks(len(index), 128)
    out = ext(feats, RegionBatch(index, masks=masks, image_size=(128, 128)))
    assert out.shape == (8, 2, 48)
    torch.testing.assert_close(out, reference(ext, feats, masks, index), rtol=1e-4, atol=1e-5)


def test_six_pixel_car_survives_every_level_at_512():
    size = 512
    ext = MaskAwareExtractor(WIDTHS, out_dim=16, hidden_dim=8, pos_size=112, pos_hidden=8)
    mask = torch.zeros(1, size, size)
    mask[0, 301:307, 45:51] = 1  # 6x6 px, straddling stride-32 cell borders
    for stride in STRIDES:
        coarse = area_downsample(mask, (size // stride, size // stride))
        assert coarse.sum() > 0 and torch.isclose(coarse.sum() * stride * stride, torch.tensor(36.0))
    feats = [torch.ones(1, c, size // s, size // s) for c, s in zip(WIDTHS, STRIDES, strict=True)]
    ext.level_proj.requires_grad_(False)
    pooled_inputs = []
    hooks = [p.register_forward_hook(lambda m, i, o: pooled_inputs.append(i[0])) for p in ext.level_proj]
    ext(feats, RegionBatch(torch.zeros(1, dtype=torch.long), masks=mask, image_size=(size, size)))
    for h in hooks:
        h.remove()
    for x in pooled_inputs:  # mean of all-ones features is 1, never 0 for a small object
        torch.testing.assert_close(x, torch.ones_like(x))


def test_empty_mask_is_a_clear_error_not_nan():
    ext = MaskAwareExtractor(WIDTHS, out_dim=16, hidden_dim=8, pos_size=16, pos_hidden=8)
    masks = random_masks(2, 64)
    masks[1] = 0
    with pytest.raises(ValueError, match=r"region\(s\) \[1\].*empty"):
        ext(features(1, 64), RegionBatch(torch.zeros(2, dtype=torch.long), masks=masks, image_size=(64, 64)))


def test_wrong_encoder_widths_are_named():
    ext = MaskAwareExtractor([1, 2, 3, 4], out_dim=16)
    with pytest.raises(ValueError, match=r"\[1, 2, 3, 4\].*\[16, 24, 32, 40\]"):
        ext(features(1, 64), RegionBatch(torch.zeros(1, dtype=torch.long), masks=torch.ones(1, 64, 64)))


def test_no_regions_gives_empty_tokens():
    ext = MaskAwareExtractor(WIDTHS, out_dim=16, hidden_dim=8, pos_size=16, pos_hidden=8)
    out = ext(features(2, 64), RegionBatch(torch.zeros(0, dtype=torch.long), masks=torch.zeros(0, 64, 64)))
    assert out.shape == (0, 2, 16)
