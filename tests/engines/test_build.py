"""Real TensorRT-RTX engines built on this machine (no GPU needed to build)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys

import pytest

from trtsr.engines import BuildSettings, EngineMetadata, build_engine, load_backend
from trtsr.errors import TrtsrError
from trtsr.files import sha256_of

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

FAST = ("sm86",)  # one ahead-of-time target keeps CPU builds short

TWO_PROFILES = ("720p", "256x256:1024x768:2048x2048")


@pytest.fixture(scope="module")
def fp16_engine(tiny_fp16, tmp_path_factory):
    out = tmp_path_factory.mktemp("e16") / "tiny16.engine"
    return build_engine(tiny_fp16.onnx_path, out, BuildSettings(profiles=TWO_PROFILES, backend="tensorrt-rtx"))


@pytest.fixture(scope="module")
def bf16_engine(tiny_bf16, tmp_path_factory):
    out = tmp_path_factory.mktemp("e") / "tiny-bf16.engine"
    settings = BuildSettings(profiles=TWO_PROFILES, backend="tensorrt-rtx", compute_capabilities=FAST)
    return build_engine(tiny_bf16.onnx_path, out, settings)


@pytest.mark.parametrize("which", ["fp16_engine", "bf16_engine"])
def test_engine_and_metadata_match_the_request(which, request):
    result = request.getfixturevalue(which)
    meta = result.metadata
    precision = "fp16" if which == "fp16_engine" else "bf16"
    assert result.engine_path.stat().st_size == meta.engine_bytes > 100_000
    assert sha256_of(result.engine_path) == meta.engine_sha256
    assert EngineMetadata.for_engine(result.engine_path) == meta
    assert meta.backend == "tensorrt-rtx" and meta.backend_version == load_backend("tensorrt-rtx").version
    assert meta.precision == precision and meta.scale == 4 and meta.guidance == 1.8
    assert [p.name for p in meta.profiles] == list(TWO_PROFILES)
    assert meta.profiles[0].output_max == (720, 1280, 3) and meta.profiles[0].input_max == (180, 320, 3)
    assert meta.profiles[1].input_min == (64, 64, 3) and meta.profiles[1].input_opt == (192, 256, 3)
    assert meta.profiles[1].output_max == (2048, 2048, 3)
    assert [(t["name"], t["dtype"]) for t in meta.tensors] == [("lr", "uint8"), ("guidance", "float"),
                                                                ("hr", "uint8")]
    assert meta.guidance_input == "guidance"  # one engine serves every w
    assert meta.gpu is None  # this machine has none; the field records that
    expected_cc = "backend default" if which == "fp16_engine" else list(FAST)
    assert meta.builder["compute_capabilities"] == expected_cc
    assert meta.builder["attention_layers"] == 20 and meta.builder["attention_fallback"] is True


def test_profile_selection(fp16_engine):
    meta = fp16_engine.metadata
    assert meta.profile_for(100, 100) == 0  # fits both; 720p has the smaller max
    assert meta.profile_for(500, 500) == 1
    assert meta.profile_for(10, 10) is None and meta.profile_for(600, 600) is None


@pytest.mark.parametrize("which", ["fp16_engine", "bf16_engine"])
def test_info_describes_the_engine(which, request):
    result = request.getfixturevalue(which)
    proc = subprocess.run([sys.executable, "-m", "trtsr", "info", str(result.engine_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "tensorrt-rtx" in text and result.metadata.precision in text
    assert "profile 0  720p: output 60x60 to 1280x720" in text
    assert "input      lr: uint8 [?x?x3] (height x width x 3)" in text
    meta = result.metadata
    assert f"output     {meta.output_name}: uint8 [?x?x3] ({meta.scale}h x {meta.scale}w x 3)" in text
    if meta.guidance_input is not None:  # w is one value, not a picture
        assert f"{meta.guidance_input}: float [1] (the PadCFG guidance w, one value)" in text
    assert "cannot run here: no NVIDIA GPU" in text
    assert "activation memory per profile: known only where the engine loads" in text
    assert "Traceback" not in proc.stderr


def test_info_spots_a_corrupt_engine(fp16_engine, tmp_path):
    engine = tmp_path / "bad.engine"
    shutil.copy(fp16_engine.engine_path, engine)
    shutil.copy(fp16_engine.metadata_path, tmp_path / "bad.engine.json")
    with open(engine, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff" * 16)
    proc = subprocess.run([sys.executable, "-m", "trtsr", "info", str(engine)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "corrupt" in proc.stdout


def test_info_without_metadata_is_one_line(tmp_path):
    engine = tmp_path / "lonely.engine"
    engine.write_bytes(b"x" * 10)
    proc = subprocess.run([sys.executable, "-m", "trtsr", "info", str(engine)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "lonely.engine.json" in proc.stderr


def test_bad_profile_fails_before_building(tiny_fp16, tmp_path, monkeypatch):
    import trtsr.engines.builder as builder

    def no_backend(*args, **kwargs):  # a build must not even load the backend
        raise AssertionError("backend loaded before the profiles were checked")

    monkeypatch.setattr(builder, "load_backend", no_backend)
    with pytest.raises(TrtsrError, match="below the smallest output"):
        build_engine(tiny_fp16.onnx_path, tmp_path / "x.engine", BuildSettings(profiles=("32x32",)))
    assert list(tmp_path.iterdir()) == []


def test_missing_spec_and_changed_onnx(tiny_fp16, tmp_path):
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(tiny_fp16.onnx_path, lonely)
    with pytest.raises(TrtsrError, match="no export spec"):
        build_engine(lonely, tmp_path / "x.engine")
    shutil.copy(tiny_fp16.spec_path, tmp_path / "lonely.json")
    with open(lonely, "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(TrtsrError, match="does not match its export spec"):
        build_engine(lonely, tmp_path / "x.engine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lonely.json", "lonely.onnx"]


def test_corrupt_onnx_gets_a_parser_error(tiny_fp16, tmp_path):
    from trtsr.files import sha256_of
    from trtsr.spec import ExportSpec

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is no protobuf" * 10)
    spec = json.loads(tiny_fp16.spec_path.read_text())
    spec.update(onnx_file="bad.onnx", onnx_sha256=sha256_of(bad))
    ExportSpec.from_dict(spec).save(tmp_path / "bad.json")
    with pytest.raises(TrtsrError, match="cannot parse the ONNX graph") as err:
        build_engine(bad, tmp_path / "bad.engine", BuildSettings(backend="tensorrt-rtx"))
    assert "bad.onnx" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "bad.engine").exists()


def test_no_backend_says_which_pip_install(monkeypatch):
    import trtsr.engines.backend as backend

    monkeypatch.setattr(backend, "_import", lambda name: None)
    with pytest.raises(TrtsrError, match=r"pip install 'trtsr\[rtx\]'"):
        backend.load_backend("auto")
    with pytest.raises(TrtsrError, match=r"pip install 'trtsr\[trt\]'"):
        backend.load_backend("tensorrt")


def test_full_disk_leaves_no_partial_engine(tiny_fp16, tmp_path, monkeypatch):
    import pathlib

    real_write = pathlib.Path.write_bytes

    def full_disk(self, data):
        real_write(self, data[:1000])  # part of it lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk)
    settings = BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=FAST)
    with pytest.raises(TrtsrError, match="no space left") as err:
        build_engine(tiny_fp16.onnx_path, tmp_path / "full.engine", settings)
    assert "full.engine" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_no_padcfg_graph_needs_the_attention_fallback(exports, tmp_path):
    """Batch-1 tiny graphs hit an attention shape without a fused kernel in TensorRT-RTX 1.7."""
    graph = exports.get(precision="fp16", guidance=None)
    strict = BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=FAST,
                           attention_fallback=False)
    with pytest.raises(TrtsrError, match="failed to build"):
        build_engine(graph.onnx_path, tmp_path / "strict.engine", strict)
    assert not (tmp_path / "strict.engine").exists()
    relaxed = BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=FAST)
    assert build_engine(graph.onnx_path, tmp_path / "ok.engine", relaxed).metadata.engine_bytes > 0
