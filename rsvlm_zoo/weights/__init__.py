"""Weights in and out: pretrained sources, encoder layouts, model config, checkpoints, exports, upstream imports."""
