"""Files from disk never run code: weights-only torch loads, an allow-list for text-encoder kinds."""
import json
import re
from pathlib import Path

import pytest
import torch

from bench.core.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
RAN = []


class Payload:
    def __reduce__(self):  # what a malicious pickle does: call something on load
        return (RAN.append, ("code ran",))


def test_resume_state_is_loaded_weights_only(tmp_path):
    from bench.core.class_training import STATE_FILE, _resume

    torch.save({"step": 1, "recipe": {}, "evil": Payload()}, tmp_path / STATE_FILE)
    with pytest.raises(ValueError, match="holds more than tensors and plain values"):
        _resume(tmp_path, None, None, None, None, None, None)
    assert RAN == []


def test_checkpoint_json_cannot_name_code_to_import(tmp_path):
    from bench.core.adapters.text_to_image import TextToImageModel

    (tmp_path / "unlearn_bench.json").write_text(json.dumps({"text_encoder": "os:system"}))
    with pytest.raises(BenchError, match="names text encoder 'os:system', not one of the loadable kinds"):
        TextToImageModel._load_uncached(tmp_path)


def test_every_torch_load_is_weights_only():
    calls = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or path.parts[len(ROOT.parts)] == "tests":
            continue
        for m in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text()):
            calls.append((path.relative_to(ROOT), m.group(1)))
    assert calls and all("weights_only=True" in args for _, args in calls), [c for c in calls if "weights_only=True" not in c[1]]
