"""Dereferences a null pointer when its file is imported: whatever imports it dies of SIGSEGV."""
import ctypes
from dataclasses import dataclass

from bench import Method

ctypes.string_at(0)


@dataclass
class HP:
    steps: int = 2


class ImportSegfault(Method):
    name = "hostile-import-segfault"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        ctx.step(None)
