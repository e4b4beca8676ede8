"""lsnet: a faithful LSNet (T, S, B and distilled forms) that runs anywhere."""
from lsnet import ops
from lsnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lsnet.layers import fuse
from lsnet.model import create_model, list_models, set_ska_backend

__all__ = ["CheckpointError", "create_model", "fuse", "list_models", "load_checkpoint", "ops", "save_checkpoint", "set_ska_backend"]
