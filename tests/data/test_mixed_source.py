"""MixedSource: proportions, determinism, samples unchanged, weight validation, YAML configuration."""

from __future__ import annotations

from collections import Counter

import lightning as L
import numpy as np
import pytest
from jsonargparse import ArgumentParser

from rsvlm_zoo.data.schema import Region, Sample
from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.data.sources.mixed import apportion
from rsvlm_zoo.datamodules import MixedSource, RegionDataModule, TiledSource


class Named(SampleSource):
    """`n` tiny samples whose ids and `source` name where they come from."""

    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int) -> Sample:
        if not 0 <= idx < self.n:
            raise IndexError(idx)
        return Sample(image="x.png", width=4, height=4, sample_id=f"{self.name}{idx}", source=f"{self.name}.json")


def test_proportions_follow_the_weights_and_samples_keep_their_source():
    small, large = Named("s", 10), Named("l", 1000)
    mix = MixedSource([small, large], weights=[3, 1], num_samples=400, seed=0)
    assert len(mix) == 400
    origin = Counter(mix.source_of(i) for i in range(len(mix)))
    assert origin == {0: 300, 1: 100}
    ids = Counter(mix[i].sample_id for i in range(len(mix)))
    assert all(ids[f"s{k}"] == 30 for k in range(10))  # small source: whole passes, each sample equally often
    assert sum(v for k, v in ids.items() if k.startswith("l")) == 100 and max(ids[f"l{k}"] for k in range(1000)) == 1
    for i in range(len(mix)):
        sample = mix[i]
        assert sample.source == ("s.json" if mix.source_of(i) == 0 else "l.json")
        assert sample.sample_id.startswith("s" if mix.source_of(i) == 0 else "l")


def test_same_seed_same_mixture_other_seed_other_mixture():
    def ids(seed):
        mix = MixedSource([Named("a", 7), Named("b", 13)], weights=[1.0, 2.5], num_samples=50, seed=seed)
        return [mix[i].sample_id for i in range(len(mix))]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)
    assert Counter(s[0] for s in ids(3)) == Counter(s[0] for s in ids(4)) == {"a": 14, "b": 36}


def test_defaults_concatenate_in_proportion_to_size():
    mix = MixedSource([Named("a", 3), Named("b", 5)])
    assert sorted(mix[i].sample_id for i in range(len(mix))) == sorted(
        [f"a{k}" for k in range(3)] + [f"b{k}" for k in range(5)]
    )


def test_apportion_is_exact_to_one_sample():
    counts = apportion(10, [1, 1, 1])
    assert sum(counts) == 10 and sorted(counts) == [3, 3, 4]
    assert apportion(7, [0.5, 0.25, 0.25]) == [3, 2, 2]  # shares 3.5, 1.75, 1.75: largest remainders get the rest
    rng = np.random.default_rng(0)
    for _ in range(50):
        weights, total = rng.uniform(0.1, 5, 4), int(rng.integers(1, 500))
        counts = apportion(total, weights)
        assert sum(counts) == total
        assert np.all(np.abs(np.array(counts) - total * weights / weights.sum()) < 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": [], "weights": None}, "at least one source"),
        ({"weights": [1.0]}, "2 sources but 1 weights; give one weight per source"),
        ({"weights": [1.0, 0.0]}, r"positive finite numbers; got weights\[1\]=0.0"),
        ({"weights": [-1.0, 2.0]}, r"weights\[0\]=-1.0"),
        ({"weights": [float("nan"), 1.0]}, r"weights\[0\]=nan"),
        ({"weights": [1.0, True]}, r"weights\[1\]=True"),
        ({"weights": [1.0, 1.0], "num_samples": 0}, "num_samples must be a positive int"),
    ],
)
def test_bad_weights_are_clear_errors(kwargs, message):
    args = {"sources": [Named("a", 2), Named("b", 2)], **kwargs}
    with pytest.raises(ValueError, match=message):
        MixedSource(**args)


def test_empty_source_is_named():
    mix = MixedSource([Named("a", 2), Named("b", 0)], weights=[1, 1])
    with pytest.raises(ValueError, match=r"source\(s\) \[1\] are empty"):
        len(mix)


def test_tiled_mixture_tiles_every_source():
    scene = Sample(
        image=np.zeros((100, 200, 3), np.uint8), width=200, height=100, regions=[Region(box=(1, 1, 190, 90))]
    )

    class Scenes(SampleSource):
        def __len__(self):
            return 2

        def __getitem__(self, idx):
            return scene

    mix = MixedSource([Scenes(), Scenes()], weights=[1, 1], seed=1).tiled(64, 0, 0.01)
    assert isinstance(mix, MixedSource) and all(isinstance(s, TiledSource) for s in mix.sources)
    assert len(mix) == 2 * 2 * 8  # each source: 2 scenes x (4 x 2) tiles


def test_mixture_from_yaml_like_lightning_cli():
    import rsvlm_zoo.datamodules  # noqa: F401 - registers the short class names, as the CLI does

    parser = ArgumentParser()
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_string(
        """
data:
  class_path: RegionDataModule
  init_args:
    train:
      class_path: MixedSource
      init_args:
        sources:
          - {class_path: SyntheticSource, init_args: {num_scenes: 10, seed: 0}}
          - {class_path: SyntheticSource, init_args: {num_scenes: 30, seed: 1}}
        weights: [3, 1]
        num_samples: 40
        seed: 5
"""
    )
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, RegionDataModule) and isinstance(dm.train_source, MixedSource)
    mix = dm.train_source
    assert mix.weights == [3.0, 1.0] and len(mix) == 40
    assert Counter(mix.source_of(i) for i in range(40)) == {0: 30, 1: 10}
    assert {mix[i].source for i in range(40)} == {"synthetic(seed=0)", "synthetic(seed=1)"}
    bad = cfg.clone()
    bad.data.init_args.train.init_args.weights = [3, -1]
    with pytest.raises(ValueError, match=r"weights\[1\]=-1"):
        parser.instantiate(bad)
