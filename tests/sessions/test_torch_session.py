"""The torch run backend: the same pixels as the shipped graph, guidance as the graphs take it, one-line
refusals, and the out-of-memory answer (tiles). On the CPU it runs fp32, standing in for CUDA where the
logic is the same; the tests marked `gpu` run it on CUDA in bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend needs the export extra")

from trtsr.backends import OnnxRuntimeSettings, TorchSettings  # noqa: E402
from trtsr.errors import OutOfMemory, TrtsrError  # noqa: E402
from trtsr.paths import shipped_graphs  # noqa: E402
from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession  # noqa: E402
from trtsr.sessions.torch_session import TorchSession  # noqa: E402
from trtsr.source import resolve_source  # noqa: E402
from trtsr.spec import ExportSpec, spec_path_for  # noqa: E402

DATA = Path(__file__).parents[1] / "data"


def _photo(height: int, width: int, top: int = 40, left: int = 30) -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / "0030.jpg") as img:
        return np.asarray(img.convert("RGB"))[top:top + height, left:left + width].copy()


def _shipped(scale: int, padcfg: bool) -> Path:
    for graph in shipped_graphs():
        spec = ExportSpec.load(spec_path_for(graph))
        if spec.scale == scale and (spec.guidance is not None) == padcfg:
            return graph
    raise AssertionError(f"no shipped x{scale} graph with padcfg={padcfg}")


@pytest.fixture(scope="module")
def padcfg_session():
    session = TorchSession(resolve_source("default", scale=4), w=2.2, settings=TorchSettings(device="cpu"))
    yield session
    session.close()


@pytest.mark.parametrize(("height", "width"), [(37, 53), (24, 70)])  # unaligned sizes, PadCFG and not
def test_cpu_output_equals_the_shipped_graph(height, width, padcfg_session):
    lr = _photo(height, width).astype(np.float32)
    graph = OnnxRuntimeSession(_shipped(4, padcfg=True), OnnxRuntimeSettings(cuda=False))
    expected = graph.infer(lr, 2.2)
    got = padcfg_session.infer(lr, 2.2)
    assert got.shape == expected.shape == (4 * height, 4 * width, 3)
    assert np.abs(got - expected).max() < 1e-2  # float32 both; the graph's fused kernels round differently

    plain = TorchSession(resolve_source("default", scale=4), w=None, settings=TorchSettings(device="cpu"))
    no_cfg = OnnxRuntimeSession(_shipped(4, padcfg=False), OnnxRuntimeSettings(cuda=False))
    assert np.abs(plain.infer(lr, None) - no_cfg.infer(lr, None)).max() < 1e-2
    plain.close()


def test_guidance_is_an_input_of_the_padcfg_session(padcfg_session):
    lr = _photo(32, 32).astype(np.float32)
    own = padcfg_session.infer(lr, padcfg_session.guidance)
    assert np.array_equal(own, padcfg_session.infer(lr, 2.2))
    stronger = padcfg_session.infer(lr, 4.0)
    assert np.abs(stronger - own).max() > 1.0
    assert padcfg_session.guidance == 2.2 and padcfg_session.guidance_input is not None


def test_chunked_feed_forward_gives_the_same_pixels_and_follows_the_settings():
    from trtsr.models import load_model

    net = load_model("default")
    lr = _photo(30, 34).astype(np.float32)
    chunked = TorchSession(net, scale=4, w=2.2, settings=TorchSettings(device="cpu"))  # eager: chunked
    blocks = [b for b in net.unet.modules() if hasattr(b, "set_chunk_feed_forward")]
    assert blocks and all(b._chunk_size == 1 for b in blocks)
    got = chunked.infer(lr, 2.2)
    plain = TorchSession(net, scale=4, w=2.2, settings=TorchSettings(device="cpu", chunk_feed_forward=False))
    assert all(b._chunk_size is None for b in blocks)  # a shared network does not keep the last session's choice
    assert np.abs(got - plain.infer(lr, 2.2)).max() < 1e-3


def test_a_session_without_padcfg_refuses_a_guidance():
    session = TorchSession(resolve_source("default", scale=2), w=None, settings=TorchSettings(device="cpu"))
    with pytest.raises(TrtsrError, match="has no PadCFG; it cannot run w 3"):
        session.infer(_photo(20, 20).astype(np.float32), 3.0)
    assert session.sizes.padding == 8 and session.scale == 2  # the positive branch's pad, as with PadCFG
    session.close()
    with pytest.raises(TrtsrError, match="closed"):
        session.infer(_photo(20, 20).astype(np.float32), None)


def test_cpu_runs_fp32_with_float_io_and_tiles_like_onnxruntime(padcfg_session):
    assert padcfg_session.io == "float32" and padcfg_session.precision == "fp32"
    assert padcfg_session.max_input is None  # the upscaler tiles on the CPU
    assert padcfg_session.backend_name.startswith(f"torch {torch.__version__} on CPU (fp32, eager")


@pytest.mark.parametrize(("settings", "message"), [
    (dict(device="tpu"), "torch device must be one of"),
    (dict(precision="int8"), "torch precision must be one of"),
    (dict(attention="sage"), "attention must be one of auto, flash"),
])
def test_settings_are_checked(settings, message):
    with pytest.raises(TrtsrError, match=message):
        TorchSettings(**settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
@pytest.mark.parametrize(("settings", "message"), [
    (dict(device="cuda"), "asked for CUDA but torch sees no CUDA device"),
    (dict(device="cpu", precision="bf16"), "on the CPU runs fp32, not bf16"),
    (dict(compile=True), "--compile needs a CUDA GPU"),
])
def test_cuda_only_settings_are_refused_without_cuda(settings, message):
    with pytest.raises(TrtsrError, match=message):
        TorchSession(resolve_source("default", scale=4), w=None, settings=TorchSettings(**settings))


def test_out_of_memory_becomes_tiles_through_the_upscaler():
    """torch's out-of-memory error is trtsr's OutOfMemory, and the upscaler answers it with smaller tiles."""
    from trtsr.pipeline.upscaler import Upscaler
    from trtsr.runtime.images import Picture

    session = TorchSession(resolve_source("default", scale=4), w=2.2, settings=TorchSettings(device="cpu"))
    session.max_input = (8192, 8192)  # what a CUDA session says: whole pictures first
    real, seen = session._module, []

    def limited(x, *rest):
        seen.append(tuple(x.shape[:2]))
        if x.shape[0] * x.shape[1] > 48 * 48:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(x, *rest)

    session._module = limited
    lr = _photo(70, 90).astype(np.float32)
    with pytest.raises(OutOfMemory, match="ran out of memory at 90x70 input"):
        session.infer(lr, 2.2)
    upscaler = Upscaler.from_session(session, overlap=8)
    out = upscaler.upscale_picture(Picture(lr)).rgb
    assert out.shape == (280, 360, 3) and np.isfinite(out).all()
    assert seen[0] == (70, 90) and max(h * w for h, w in seen[2:]) <= 48 * 48  # whole, refused; then tiles
    session._module = real
    session.close()


# -- on a CUDA GPU --------------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.gpu
@cuda
def test_cuda_bf16_matches_the_fp32_graph_on_a_photo():
    session = TorchSession(resolve_source("default", scale=4), w=2.2)
    assert session.device.type == "cuda" and session.io == "uint8" and session.max_input == (8192, 8192)
    assert session.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    lr = _photo(120, 160, top=0, left=0)
    got = session.infer(lr, 2.2).astype(np.float64)
    graph = OnnxRuntimeSession(_shipped(4, padcfg=True), OnnxRuntimeSettings(cuda=False))
    expected = graph.infer(lr.astype(np.float32), 2.2)
    mse = np.mean((got - expected) ** 2)
    assert got.shape == (480, 640, 3) and 10 * np.log10(255**2 / mse) > 35
    session.close()


@pytest.mark.gpu
@cuda
def test_cuda_out_of_memory_is_out_of_memory_and_the_session_recovers():
    session = TorchSession(resolve_source("default", scale=4), w=2.2)
    lr = _photo(64, 64, top=0, left=0)
    session.infer(lr, 2.2)
    free, total = torch.cuda.mem_get_info()
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + 64 * 2**20) / total)
    try:
        with pytest.raises(OutOfMemory, match="ran out of memory at 1024x1024"):
            session.infer(np.zeros((1024, 1024, 3), np.uint8) + 100, 2.2)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert session.infer(lr, 2.2).shape == (256, 256, 3)
    session.close()


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("kernel", ["flash", "cudnn", "efficient"])
def test_each_attention_kernel_gives_the_same_picture(kernel):
    lr = _photo(96, 96, top=0, left=0)
    reference = TorchSession(resolve_source("default", scale=4), w=2.2)
    expected = reference.infer(lr, 2.2).astype(np.float64)
    reference.close()
    session = TorchSession(resolve_source("default", scale=4), w=2.2, settings=TorchSettings(attention=kernel))
    got = session.infer(lr, 2.2).astype(np.float64)
    assert 10 * np.log10(255**2 / max(np.mean((got - expected) ** 2), 1e-12)) > 40
    session.close()
