"""Ship a trained run as the package's `default` model.

    python tools/ship_default_model.py runs/default-x4/model.safetensors

Stores the weights as fp16 safetensors in src/trtsr/models/weights/default.safetensors
(loading gives float32), keeps the run's metadata (target, teacher when one was used, steps, training
config and the history of earlier stages, read from the run's `init` checkpoint when the run did not
record it),
and re-exports the shipped ONNX graph (tools/ship_default_onnx.py) from them.
Write the model card (weights/default.md) from `trtsr evaluate -m default` afterwards.
"""

import json
import subprocess
import sys
from pathlib import Path

import torch

from trtsr.models.checkpoint import (
    DEFAULT_WEIGHTS,
    load_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
    training_history,
)
from trtsr.training.config import TrainConfig
from trtsr.training.loop import checkpoint_metadata

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    recorded = read_checkpoint_metadata(source)
    config = TrainConfig(**{**json.loads(recorded["train_config"]), "data": []})
    history = recorded.get("history") or json.dumps(training_history(config.init))
    # Recomputed from the run's config, so a run written before a metadata field existed ships it right.
    meta = checkpoint_metadata(config, int(recorded["steps"]), json.loads(history))
    meta["train_config"] = recorded["train_config"]  # as the run recorded it (its data folders included)
    save_checkpoint(load_checkpoint(source), DEFAULT_WEIGHTS, extra_metadata=meta, dtype=torch.float16)
    print(f"wrote {DEFAULT_WEIGHTS} ({DEFAULT_WEIGHTS.stat().st_size / 1e6:.1f} MB)")
    subprocess.run([sys.executable, str(Path(__file__).with_name("ship_default_onnx.py"))], check=True)
