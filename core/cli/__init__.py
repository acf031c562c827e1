"""The command line (``python -m core``, :mod:`.main`) and the benchmark (:mod:`.bench`)."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
