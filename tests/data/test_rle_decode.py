"""COCO RLE run lengths: the vectorised decoder reads pycocotools' strings exactly and refuses corrupt ones."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rsvlm_zoo.data.schema import DataFormatError
from rsvlm_zoo.data.validation import decode_counts, rle_runs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compressed_counts_decode_to_the_masks_pycocotools_encoded(seed):
    rng = np.random.default_rng(seed)
    for k in range(60):
        h, w = (int(v) for v in rng.integers(1, 200, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if k % 7 == 0:
            mask[:] = k % 2  # one run only: all background or all object
        rle = mask_utils.encode(np.asfortranarray(mask))
        runs = decode_counts(rle["counts"])
        assert runs.sum() == h * w
        back = mask_utils.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)
        np.testing.assert_array_equal(mask_utils.decode(back), mask)
        assert np.array_equal(rle_runs({"size": [h, w], "counts": rle["counts"].decode()}, h, w), runs)


def test_uncompressed_counts_keep_their_checks():
    assert rle_runs({"size": [2, 3], "counts": [1, 4, 1]}, 2, 3).tolist() == [1, 4, 1]
    assert rle_runs({"size": [2, 3], "counts": [np.int32(6)]}, 2, 3).tolist() == [6]
    with pytest.raises(DataFormatError, match="must be integers, found True"):
        rle_runs({"size": [2, 3], "counts": [True, 5]}, 2, 3)
    with pytest.raises(DataFormatError, match="longer than any image"):
        rle_runs({"size": [2, 3], "counts": [2**70, 1]}, 2, 3)
    with pytest.raises(DataFormatError, match="negative run length"):
        rle_runs({"size": [2, 3], "counts": [7, -1]}, 2, 3)


@pytest.mark.parametrize(
    "counts, reason",
    [
        ("o" * 13 + "0", "longer than any image"),  # 'o' carries the continuation bit: a 14-character run
        ("a", "ends inside a number"),
        ("5\x01", "outside COCO's alphabet"),
        ("@", "negative run length"),  # '@' is 16: the sign bit of a one-character run
    ],
)
def test_corrupt_strings_are_refused(counts, reason):
    with pytest.raises(DataFormatError, match=reason):
        decode_counts(counts)
