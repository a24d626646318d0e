"""The suite's logger. Library code logs; the `unlearn-bench` command shows INFO and above on stderr
as plain lines (the stream looked up at each line, so pytest's capture and redirections see them)."""
from __future__ import annotations

import logging
import sys

LOGGER_NAME = "unlearn_bench"


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


class _CurrentStderr(logging.StreamHandler):
    """A StreamHandler bound to whatever sys.stderr is when a line is written."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns one; the property ignores it
        pass


def show_on_stderr(level: int = logging.INFO) -> None:
    """Plain `message` lines on stderr for the suite's logger (idempotent: one handler however often called)."""
    logger = get_logger()
    logger.setLevel(level)
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
