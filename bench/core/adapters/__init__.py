from bench.core.adapters.base import DiffusionModel, standard_parameter_groups
from bench.core.adapters.class_conditional import ClassConditionalModel

__all__ = ["DiffusionModel", "ClassConditionalModel", "standard_parameter_groups", "load_model"]


def load_model(path, device="cpu") -> DiffusionModel:
    """Load any saved adapter directory (the same path real and tiny checkpoints take)."""
    import json
    from pathlib import Path

    from bench.core.errors import MissingWeightsError

    index = Path(path) / "unlearn_bench.json"
    if not index.exists():
        raise MissingWeightsError(f"no unlearn-bench model at {path} (missing {index.name})")
    kind = json.loads(index.read_text())["kind"]
    if kind == "class":
        return ClassConditionalModel.load(path, device=device)
    if kind == "text":
        from bench.core.adapters.text_to_image import TextToImageModel

        return TextToImageModel.load(path, device=device)
    raise MissingWeightsError(f"unknown model kind {kind!r} in {index}")
