"""Post-training quantisation: INT8 and FP8 Q/DQ graphs for TensorRT and TensorRT-RTX (`trtsr calibrate`).

- `recipe`: which layers keep float precision, as one table; defaults per precision.
- `data`: seeded calibration crops from a folder of images, fed through the graph's own input.
- `graph`: the ONNX rewrites and counts around quantisation.
- `quantize`: `calibrate()`, the orchestration (ModelOpt for int8/fp8, trtsr for int8-weights).

Needs the `calibrate` extra (nvidia-modelopt and the ONNX tools it uses); the runtime never imports it.
"""

from trtsr.calibration.quantize import CalibrationResult, CalibrationSettings, calibrate

__all__ = ["CalibrationResult", "CalibrationSettings", "calibrate"]
