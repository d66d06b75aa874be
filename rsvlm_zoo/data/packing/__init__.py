"""The parts of `rsvlm data pack` (the public entry points are in `rsvlm_zoo.data.pack`), one role per module.

- `settings`: constants, `PackSettings`, skip bookkeeping (`Skips`), the LitData import check.
- `resize`: one sample at the model input (image, masks as RLE, boxes).
- `items`: a resized sample as a LitData item (PNG + JSON record) and back.
- `entry`: the packing of one reader sample (decode, tile, resize, encode; skips counted), run in the workers.
- `parts`: the reader's samples in parts of `part_size` (JSON Lines a part at a time, other formats whole).
- `writer`: the worker pool, one resumable shard folder per part, the final merge and `pack.json`.
"""
