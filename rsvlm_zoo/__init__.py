"""Lightning model zoo for region- and pixel-level remote-sensing vision-language models."""

__version__ = "0.1.0"
