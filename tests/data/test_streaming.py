"""Packed LitData shards: `rsvlm data pack` output streamed back as the in-memory samples after the same resize."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

pytest.importorskip("litdata", reason="LitData is not installed: pip install 'rsvlm_zoo[stream]'")

from rsvlm_zoo.data.check import check_dataset  # noqa: E402
from rsvlm_zoo.data.images import decode  # noqa: E402
from rsvlm_zoo.data.pack import pack, pack_source, resize_sample  # noqa: E402
from rsvlm_zoo.data.sources import AnnotationSource, StreamingSampler, StreamingSource, SyntheticSource  # noqa: E402
from rsvlm_zoo.data.sources.tiled import TiledSource  # noqa: E402
from rsvlm_zoo.data.tiling import TileDropped  # noqa: E402
from tests.resume_helpers import MAX_STEPS, assert_same_weights, fit_tiny, kill_and_resume  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def isaid(real_data: Path) -> Path:
    return real_data / "regions" / "isaid" / "instances.json"


@pytest.fixture(scope="module")
def isaid_pack(isaid: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("isaid") / "shards"
    pack("coco", isaid, out, input_size=SIZE, image_policy="squash", workers=2)
    return out


def assert_same_sample(got, want) -> None:
    assert got.sample_id == want.sample_id
    assert (got.width, got.height) == (want.width, want.height)
    assert [(t.role, t.text) for t in got.conversation] == [(t.role, t.text) for t in want.conversation]
    assert got.captions == want.captions and got.region_refs == want.region_refs
    assert (got.source, got.split) == (want.source, want.split)
    assert got.meta == want.meta
    np.testing.assert_array_equal(got.image, want.image)
    assert len(got.regions) == len(want.regions)
    for a, b in zip(got.regions, want.regions, strict=True):
        assert (a.category, a.text, a.attributes) == (b.category, b.text, b.attributes)
        assert a.box == b.box and a.rle == b.rle
        np.testing.assert_array_equal(a.to_mask(got.height, got.width), b.to_mask(want.height, want.width))
        assert a.to_box() == b.to_box()


def test_packed_isaid_streams_the_in_memory_samples_after_the_same_resize(isaid, isaid_pack):
    memory = AnnotationSource("coco", str(isaid))
    streamed = StreamingSource(isaid_pack)
    assert len(streamed) == len(memory) == 2
    by_id = {streamed[i].sample_id: streamed[i] for i in range(len(streamed))}
    for i in range(len(memory)):
        want = memory[i]
        resized = resize_sample(want, decode(want.image), SIZE, SIZE)
        got = by_id[want.sample_id]
        assert_same_sample(got, resized)
        assert all(r.to_mask(SIZE, SIZE).any() for r in got.regions), "no region vanishes when resized"
        prov = streamed.provenance(list(by_id).index(want.sample_id))
        assert prov["source"] == str(isaid) and prov["image"] == str(want.image) and prov["record"] == i
    manifest = json.loads((isaid_pack / "pack.json").read_text())
    assert manifest["samples"] == 2 and manifest["image_policy"] == "squash" and manifest["skipped"] == {}


def test_tile_packs_hold_the_tiles_of_the_in_memory_tiler(isaid, tmp_path):
    report = pack("coco", isaid, tmp_path / "tiles", input_size=SIZE, image_policy="tile", workers=2)
    tiles = TiledSource(AnnotationSource("coco", str(isaid)), SIZE)
    want = {}
    for k in range(len(tiles)):
        try:
            t = tiles[k]
        except TileDropped:
            continue
        want[t.sample_id] = t
    streamed = StreamingSource(tmp_path / "tiles")
    assert len(streamed) == len(want) == report.samples
    assert report.skipped["dropped tiles"] == len(tiles) - len(want)
    for i in range(len(streamed)):
        got = streamed[i]
        tile = want[got.sample_id]
        image = decode(tile.image)
        assert_same_sample(got, resize_sample(tile, image, *image.shape[:2]))
    assert streamed.tiled(SIZE) is streamed
    with pytest.raises(ValueError, match="holds tiles"):
        streamed.tiled(64)


def test_a_squash_pack_refuses_to_be_tiled(isaid_pack):
    with pytest.raises(ValueError, match="pack it again with --image-policy tile"):
        StreamingSource(isaid_pack).tiled(SIZE)


def test_check_reads_a_shard_folder_with_the_counts_of_its_annotation(isaid, isaid_pack):
    packed, original = check_dataset("shards", isaid_pack), check_dataset("coco", isaid)
    for name in ("samples", "images", "regions", "splits", "categories"):
        assert getattr(packed, name) == getattr(original, name), name
    assert packed.problems.get("bad records (skipped)", 0) == original.problems.get("bad records (skipped)", 0)


def test_an_interrupted_pack_continues_from_its_done_parts(isaid, tmp_path, monkeypatch):
    from rsvlm_zoo.data.packing import writer

    real, calls = writer.write_part, []

    def failing(entries, part_dir, *args, **kwargs):
        calls.append(part_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed during the second part")
        return real(entries, part_dir, *args, **kwargs)

    monkeypatch.setattr(writer, "write_part", failing)
    out = tmp_path / "shards"
    with pytest.raises(KeyboardInterrupt):
        pack("coco", isaid, out, input_size=SIZE, part_size=1)
    assert (out / ".parts" / "part-00000" / "done.json").is_file()
    with pytest.raises(ValueError, match="other settings"):
        pack("coco", isaid, out, input_size=64, part_size=1)
    report = pack("coco", isaid, out, input_size=SIZE, part_size=1, workers=1)  # another worker count may continue
    assert report.parts == (1, 1) and report.samples == 2
    assert len(calls) == 3, "the rerun packs only the unfinished part"
    ids = sorted(StreamingSource(out)[i].sample_id for i in range(2))
    assert ids == sorted(s.sample_id for s in AnnotationSource("coco", str(isaid)).samples)
    with pytest.raises(ValueError, match="already holds a finished pack"):
        pack("coco", isaid, out, input_size=SIZE, part_size=1)


def test_the_shards_and_skip_report_do_not_depend_on_the_number_of_workers(isaid, tmp_path):
    reports = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        reports[workers] = pack("coco", isaid, out, input_size=SIZE, image_policy="tile", workers=workers, part_size=1)
    one, two = tmp_path / "w1", tmp_path / "w2"
    assert reports[1].skipped["dropped tiles"] > 0, "the tiles of these scenes include dropped ones"
    assert (reports[1].samples, reports[1].skipped, reports[1].reasons) == (
        reports[2].samples,
        reports[2].skipped,
        reports[2].reasons,
    )
    names = sorted(p.name for p in one.glob("*.bin"))
    assert names == sorted(p.name for p in two.glob("*.bin")) and names
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    index = [json.loads((d / "index.json").read_text()) for d in (one, two)]
    assert index[0]["chunks"] == index[1]["chunks"] and index[0]["config"] == index[1]["config"]
    manifests = [json.loads((d / "pack.json").read_text()) for d in (one, two)]
    assert manifests[0].pop("workers") == 1 and manifests[1].pop("workers") == 2
    assert manifests[0] == manifests[1]


def _die(batch, settings):
    """A packing worker killed mid-part (stands in for the kernel's out-of-memory killer)."""
    os._exit(9)


def test_a_dead_packing_worker_stops_the_pack_naming_the_part_and_the_fix(isaid, tmp_path, monkeypatch):
    from rsvlm_zoo.data.packing import writer

    monkeypatch.setattr(writer, "_pack_batch", _die)
    with pytest.raises(RuntimeError, match=r"packing worker died while packing .*part-00000.*fewer --workers"):
        pack("coco", isaid, tmp_path / "shards", input_size=SIZE, workers=2)
    monkeypatch.undo()
    report = pack("coco", isaid, tmp_path / "shards", input_size=SIZE, workers=2)
    assert report.samples == 2 and report.parts == (1, 0), "the same command continues the pack"


@pytest.fixture(scope="module")
def synthetic_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "shards"
    pack_source(SyntheticSource(40, seed=0), out, input_size=SIZE, workers=2, chunk_bytes="120KB")
    return out


def test_the_streaming_order_is_fixed_by_seed_and_epoch_and_shared_disjointly_between_ranks(synthetic_pack):
    source = StreamingSource(synthetic_pack)
    assert len(source.chunk_sizes()) > 1, "several chunks, so the order is shuffled across chunks"
    n = len(source)
    first = StreamingSampler(source, seed=3)
    epoch0 = list(first)
    assert sorted(epoch0) == list(range(n)) and list(StreamingSampler(source, seed=3)) == epoch0
    first.set_epoch(1)
    assert list(first) != epoch0 and sorted(first) == list(range(n))
    assert list(StreamingSampler(source, seed=4)) != epoch0
    for world, drop_last in ((3, True), (3, False), (4, True)):
        shares = [
            list(StreamingSampler(source, seed=3, rank=r, world_size=world, drop_last=drop_last)) for r in range(world)
        ]
        flat = [i for share in shares for i in share]
        assert len(flat) == len(set(flat)), "no sample repeats across ranks"
        assert len(flat) == (n - n % world if drop_last else n)
        assert [len(s) for s in shares] == [len(StreamingSampler(source, 3, r, world, drop_last)) for r in range(world)]


def test_the_streaming_sampler_resumes_mid_epoch(synthetic_pack):
    source = StreamingSource(synthetic_pack)
    a = StreamingSampler(source, seed=1, rank=1, world_size=2)
    a.set_epoch(2)
    full = list(a)
    state = a.state_dict(num_seen=7)
    b = StreamingSampler(source, seed=1, rank=1, world_size=2)
    b.load_state_dict(state)
    assert list(b) == full[7:]
    assert list(b) == full, "resuming skips only the next iteration"
    with pytest.raises(ValueError, match="same settings"):
        StreamingSampler(source, seed=2, rank=1, world_size=2).load_state_dict(state)


def test_packed_synthetic_scenes_stream_back_unchanged_at_the_input_size(synthetic_pack):
    memory, streamed = SyntheticSource(40, seed=0), StreamingSource(synthetic_pack)
    by_id = {streamed[i].sample_id: streamed[i] for i in range(len(streamed))}
    for i in range(0, 40, 7):
        want = memory[i]
        assert_same_sample(by_id[want.sample_id], resize_sample(want, decode(want.image), SIZE, SIZE))


@pytest.fixture(scope="module")
def twelve_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic scenes in several chunks: the in-memory resume test's training set, packed."""
    out = tmp_path_factory.mktemp("twelve") / "shards"
    pack_source(SyntheticSource(12, seed=0), out, input_size=SIZE, workers=1, chunk_bytes="40KB")
    return out


def _streaming_loader(source, rank: int, world: int, trainer_extra: dict | None = None, seed: int = 5):
    from rsvlm_zoo import build_model
    from rsvlm_zoo.datamodules import RegionDataModule

    data = RegionDataModule(train=source, batch_size=4, max_length=256, seed=seed)
    data.trainer = SimpleNamespace(world_size=world, global_rank=rank, **(trainer_extra or _restarting(0, 0, False)))
    data.attach(build_model("aquila_plus_tiny").input_spec())
    return data.train_dataloader()


def _restarting(epoch: int, batches_done: int, restarting: bool = True) -> dict:
    """Trainer attributes of a run restored mid-epoch (what `_resume_position` reads)."""
    current = SimpleNamespace(processed=batches_done)
    loop = SimpleNamespace(
        restarting=restarting, epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=current))
    )
    return {"current_epoch": epoch, "fit_loop": loop}


def test_region_datamodule_orders_a_streaming_source_by_its_sampler_with_disjoint_rank_shares(synthetic_pack):
    source = StreamingSource(synthetic_pack)
    n, world = len(source), 3
    shares = []
    for rank in range(world):
        loader = _streaming_loader(source, rank, world)
        sampler = loader.sampler
        assert isinstance(sampler, StreamingSampler) and isinstance(sampler, DistributedSampler)
        assert (sampler.seed, sampler.rank, sampler.world_size) == (5, rank, world)
        shares.append(list(sampler))
        assert shares[-1] == source.order(5, 0, rank, world).tolist()
    flat = [i for share in shares for i in share]
    assert len(flat) == len(set(flat)) == n - n % world, "disjoint shares, no repeats, equal lengths"
    # chunk-local: one rank's share visits each chunk in one run (it enters a chunk at most once)
    chunk_of = np.repeat(np.arange(len(source.chunk_sizes())), source.chunk_sizes())
    whole = list(_streaming_loader(source, 0, 1).sampler)
    runs = [c for k, c in enumerate(chunk_of[whole]) if k == 0 or c != chunk_of[whole[k - 1]]]
    assert len(runs) == len(set(runs)) == len(source.chunk_sizes())


def test_lightning_keeps_the_streaming_sampler_under_ddp(synthetic_pack):
    import lightning as L
    from lightning.pytorch.trainer.states import RunningStage

    trainer = L.Trainer(accelerator="cpu", strategy="ddp", devices=2, logger=False, enable_progress_bar=False)
    loader = _streaming_loader(StreamingSource(synthetic_pack), rank=1, world=2)
    prepared = trainer._data_connector._prepare_dataloader(loader, shuffle=True, mode=RunningStage.TRAINING)
    assert prepared.sampler is loader.sampler, "not wrapped in Lightning's distributed sampler (which pads shares)"


def test_region_datamodule_resumes_a_streaming_rank_share_mid_epoch(synthetic_pack):
    source = StreamingSource(synthetic_pack)
    straight = _streaming_loader(source, rank=1, world=2)
    straight.sampler.set_epoch(1)
    epoch1 = list(straight.sampler)
    resumed = _streaming_loader(source, rank=1, world=2, trainer_extra=_restarting(epoch=1, batches_done=2))
    assert list(resumed.sampler) == epoch1[8:], "the resumed share starts after its first 2 batches of 4"
    resumed = _streaming_loader(source, rank=1, world=2, trainer_extra=_restarting(epoch=1, batches_done=2))
    want = [source[i].sample_id for i in epoch1[8:]]
    got = [sid for batch in resumed for sid in batch["sample_ids"]]
    assert got == want, "the resumed loader yields the remaining samples of the epoch, in order"


def test_region_datamodule_keeps_the_epoch_seeded_sampler_for_other_sources(synthetic_pack):
    from rsvlm_zoo.data.sources.resumable import EpochSeededSampler
    from rsvlm_zoo.datamodules import InstructionSource

    wrapped = InstructionSource(StreamingSource(synthetic_pack), "category", {"per_region": True})
    for source in (SyntheticSource(8, seed=0), wrapped):
        sampler = _streaming_loader(source, 0, 1).sampler
        assert type(sampler) is EpochSeededSampler and sampler.seed == 5
        assert list(sampler) == EpochSeededSampler(len(source), 5).permutation()


def test_streaming_source_is_a_region_datamodule_source_and_resumes_like_the_in_memory_path(twelve_pack, tmp_path):
    source = StreamingSource(twelve_pack)
    assert len(source) == 12 and len(source.chunk_sizes()) > 1
    reference, _ = fit_tiny(tmp_path / "straight", seed=0, train=source)
    resumed, trainer = kill_and_resume(tmp_path / "killed", source)
    assert trainer.global_step == MAX_STEPS
    assert_same_weights(resumed, reference)


def test_json_lines_are_packed_a_part_at_a_time_as_the_json_list_reads(tmp_path, real_data):
    image = real_data / "regions" / "deepforest" / "OSBS_029.png"
    records = []
    for k in range(7):
        records.append(
            {
                "file_name": str(image),
                "height": 400,
                "width": 400,
                "annotation": [{"bbox": [10 + k, 20, 30, 40], "segmentation": [[10 + k, 20, 40 + k, 20, 40 + k, 60]]}],
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is <mask><pos>?"},
                    {"from": "gpt", "value": f"tree {k}"},
                ],
            }
        )
    records[3]["conversations"] = []  # a bad record, skipped and counted
    lines = [json.dumps(r) for r in records]
    lines.insert(5, "{not json")
    jsonl = tmp_path / "regions.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    report = pack(
        "osprey",
        jsonl,
        tmp_path / "shards",
        images=str(image.parent),
        input_size=64,
        part_size=2,
        options={"allow_outside_images": True},
    )
    assert report.samples == 6 and report.skipped["bad records (skipped)"] == 2
    assert any("line 6: invalid JSON" in r for r in report.reasons["bad records (skipped)"])
    assert any("line 4" in r for r in report.reasons["bad records (skipped)"]), report.reasons
    whole = tmp_path / "regions.json"
    whole.write_text(json.dumps([r for k, r in enumerate(records)]))
    memory = AnnotationSource(
        "osprey", str(whole), str(image.parent), options={"on_bad_record": "skip", "allow_outside_images": True}
    )
    streamed = StreamingSource(tmp_path / "shards")
    got = {streamed[i].sample_id: streamed[i] for i in range(len(streamed))}
    assert sorted(got) == sorted(s.sample_id for s in memory.samples)
    for want in memory.samples:
        want.source = str(jsonl)
        assert_same_sample(got[want.sample_id], resize_sample(want, decode(want.image), 64, 64))
