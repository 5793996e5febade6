"""Ship a trained run as the package's `default` model.

    python tools/ship_default_model.py runs/default-x4/model.safetensors

Stores the weights as fp16 safetensors in src/trtsr/models/weights/default.safetensors
(loading gives float32), keeps the run's metadata (teacher, steps, training config and the
history of earlier stages, read from the run's `init` checkpoint when the run did not record it),
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

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    meta = {k: v for k, v in read_checkpoint_metadata(source).items()
            if k in ("teacher", "steps", "train_config", "history")}
    if "history" not in meta:
        meta["history"] = json.dumps(training_history(json.loads(meta["train_config"])["init"]))
    save_checkpoint(load_checkpoint(source), DEFAULT_WEIGHTS, extra_metadata=meta, dtype=torch.float16)
    print(f"wrote {DEFAULT_WEIGHTS} ({DEFAULT_WEIGHTS.stat().st_size / 1e6:.1f} MB)")
    subprocess.run([sys.executable, str(Path(__file__).with_name("ship_default_onnx.py"))], check=True)
