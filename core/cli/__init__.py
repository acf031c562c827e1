"""The command line (``python -m core``): the parser and the commands (:mod:`.main`), evaluate and sanity
(:mod:`.metric_commands`); ``bench`` hands over to the top-level ``bench`` package."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
