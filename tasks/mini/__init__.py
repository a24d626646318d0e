"""The embedded mini world: data that ships with the install, recipes, small committed checkpoints."""
from pathlib import Path

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
