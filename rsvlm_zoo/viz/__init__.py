"""Figures: numbered regions with their answers (`regions`), training curves (`curves`)."""
