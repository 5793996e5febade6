"""Sessions: one module per backend behind one protocol (`Session`).

    onnxruntime_session.OnnxRuntimeSession   an exported graph in ONNX Runtime (CPU, or its CUDA provider)
    engine_session.EngineSession             a TensorRT or TensorRT-RTX engine, pinned I/O buffers, one stream
    torch_session.TorchSession               the model itself in PyTorch (needs the export extra)

Each module is imported only by the run that uses it, so a run-only install never loads torch.
"""

from trtsr.sessions.base import Session, SessionBase

__all__ = ["Session", "SessionBase"]
