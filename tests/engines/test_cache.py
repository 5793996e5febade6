"""The engine cache: reuse, rebuild on change, one build under concurrency, no corrupt entries."""

from __future__ import annotations

import json
import multiprocessing
import shutil

import pytest

from trtsr.engines import BuildSettings, cached_engine
from trtsr.export.onnx_export import ExportSettings, export_onnx
from trtsr.source import resolve_source

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

FAST = ("sm86",)  # one ahead-of-time target keeps CPU builds short

SETTINGS = BuildSettings(profiles=("720p", "1080p"), backend="tensorrt-rtx", compute_capabilities=FAST)


def test_second_call_reuses_the_engine(tiny_fp16, tmp_path):
    first = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    mtime = first.engine_path.stat().st_mtime_ns
    second = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    assert first.built and not second.built
    assert second.engine_path == first.engine_path and second.engine_path.stat().st_mtime_ns == mtime
    assert second.metadata == first.metadata
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 1


def test_other_settings_get_another_engine(tiny_fp16, tmp_path):
    a = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    b = cached_engine(tiny_fp16.onnx_path, BuildSettings(profiles=("720p",), backend="tensorrt-rtx",
                                                         compute_capabilities=FAST), root=tmp_path)
    assert a.engine_path != b.engine_path and b.built


def test_changed_onnx_rebuilds(tmp_path):
    onnx = tmp_path / "m.onnx"
    export_onnx(resolve_source("tiny"), onnx, ExportSettings(precision="fp16", guidance=None))
    first = cached_engine(onnx, SETTINGS, root=tmp_path / "cache")
    export_onnx(resolve_source("tiny"), onnx, ExportSettings(precision="fp16", guidance=1.5))  # same path, new graph
    second = cached_engine(onnx, SETTINGS, root=tmp_path / "cache")
    assert second.built and second.engine_path != first.engine_path
    assert second.metadata.guidance == 1.5 and first.metadata.guidance is None


def test_corrupt_entry_is_rebuilt(tiny_fp16, tmp_path):
    first = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    first.engine_path.write_bytes(first.engine_path.read_bytes()[:-100])  # a truncated engine
    again = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    assert again.built and again.engine_path.stat().st_size == first.metadata.engine_bytes


def _build_in_process(args):
    onnx, root = args
    return cached_engine(onnx, SETTINGS, root=root).built


def test_concurrent_builds_of_one_key_build_once(tiny_fp16, tmp_path):
    onnx = tmp_path / "m.onnx"
    shutil.copy(tiny_fp16.onnx_path, onnx)
    shutil.copy(tiny_fp16.spec_path, tmp_path / "m.json")
    root = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        built = pool.map(_build_in_process, [(onnx, root), (onnx, root)])
    assert sorted(built) == [False, True]
    entries = sorted(p.name for p in (root / "engines").iterdir())
    assert len([e for e in entries if e.endswith(".engine")]) == 1
    assert not [e for e in entries if e.startswith(".")], f"temporary files left: {entries}"


def _fake_entry(folder, name, size, used):
    """An entry's files with a given size and last-use time (eviction only reads sizes and times)."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    engine = folder / f"{name}.engine"
    engine.write_bytes(b"\0" * size)
    (folder / f"{name}.engine.json").write_text("{}")
    lock = folder / f"{name}.lock"
    lock.touch()
    os.utime(lock, (used, used))
    return engine


def test_eviction_removes_the_least_recently_used_first(tmp_path):
    from trtsr.engines.cache import evict

    old = _fake_entry(tmp_path, "old", 4000, used=1_000)
    mid = _fake_entry(tmp_path, "mid", 4000, used=2_000)
    new = _fake_entry(tmp_path, "new", 4000, used=3_000)
    removed = evict(tmp_path, limit_bytes=9_000)
    assert removed == [old]
    assert not old.exists() and not (tmp_path / "old.engine.json").exists()
    assert mid.exists() and new.exists()
    # the entry being used now is kept even when it is the oldest
    assert evict(tmp_path, limit_bytes=1, keep=mid) == [new] and mid.exists()
    assert evict(tmp_path, limit_bytes=None) == []


def _hold_lock(path, ready, release):
    from trtsr.files import file_lock

    with file_lock(path):
        ready.set()
        release.wait(60)


def test_eviction_skips_an_entry_another_process_holds(tmp_path):
    from trtsr.engines.cache import evict

    busy = _fake_entry(tmp_path, "busy", 4000, used=1_000)
    idle = _fake_entry(tmp_path, "idle", 4000, used=2_000)
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path / "busy.lock", ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        assert evict(tmp_path, limit_bytes=5_000) == [idle]
        assert busy.exists()
    finally:
        release.set()
        holder.join(60)


def test_the_cap_comes_from_the_argument_the_environment_or_the_default(monkeypatch):
    from trtsr.defaults import ENGINE_CACHE_MAX_GB
    from trtsr.engines.cache import cache_limit_bytes
    from trtsr.errors import TrtsrError

    monkeypatch.delenv("TRTSR_CACHE_MAX_GB", raising=False)
    assert cache_limit_bytes() == int(ENGINE_CACHE_MAX_GB * 1e9)
    monkeypatch.setenv("TRTSR_CACHE_MAX_GB", "0.5")
    assert cache_limit_bytes() == 500_000_000
    assert cache_limit_bytes(2) == 2_000_000_000
    monkeypatch.setenv("TRTSR_CACHE_MAX_GB", "0")
    assert cache_limit_bytes() is None
    monkeypatch.setenv("TRTSR_CACHE_MAX_GB", "lots")
    with pytest.raises(TrtsrError, match="TRTSR_CACHE_MAX_GB must be a number"):
        cache_limit_bytes()


def test_a_build_over_the_cap_evicts_the_older_engine(tiny_fp16, tmp_path):
    first = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    size = first.metadata.engine_bytes
    other = BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=FAST)
    second = cached_engine(tiny_fp16.onnx_path, other, root=tmp_path, max_gb=1.5 * size / 1e9)
    assert second.built and second.engine_path.is_file()
    assert not first.engine_path.exists()  # least recently used, and the two do not fit together


class _TimingCache:
    """Stands in for TensorRT's ITimingCache (entries, combine, serialize): full TensorRT cannot be installed
    here and TensorRT-RTX's timing-cache calls are no-ops, so no real cache can hold an entry in CI."""

    def __init__(self, data: bytes) -> None:
        self.entries = dict(json.loads(data)) if data else {}

    def combine(self, other, ignore_mismatch):
        self.entries.update({k: v for k, v in other.entries.items() if k not in self.entries})
        return True

    def serialize(self) -> bytes:
        return json.dumps(sorted(self.entries.items())).encode()


class _Config:
    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(data)


def test_the_timing_cache_is_merged_not_overwritten(tmp_path):
    """Two builds that started from the same file save one after the other: both builds' entries stay."""
    from trtsr.engines.backend import load_backend
    from trtsr.paths import lock_path_for

    backend = load_backend("tensorrt-rtx")
    path = tmp_path / "timing.cache"
    first, second = _TimingCache(b""), _TimingCache(b"")
    first.entries["conv1 tactic"] = 1.5
    second.entries["conv2 tactic"] = 2.5
    backend.save_timing_cache(_Config(), first, path)
    backend.save_timing_cache(_Config(), second, path)
    assert _TimingCache(path.read_bytes()).entries == {"conv1 tactic": 1.5, "conv2 tactic": 2.5}
    assert lock_path_for(path).exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def _bytes_read() -> int:
    """Bytes this process has read from files so far (Linux: rchar of /proc/self/io)."""
    from pathlib import Path

    return next(int(line.split()[1]) for line in Path("/proc/self/io").read_text().splitlines()
                if line.startswith("rchar:"))


def test_a_start_from_the_cache_reads_and_hashes_the_engine_once(tiny_fp16, tmp_path, monkeypatch):
    """Finding a cached engine and opening its session reads the file once and hashes it once (the session
    takes the bytes the cache checked), up to the GPU check on a machine without one."""
    import hashlib
    from pathlib import Path

    import trtsr.gpu as gpu
    from trtsr.errors import TrtsrError
    from trtsr.sessions.engine_session import EngineSession

    if not Path("/proc/self/io").is_file():
        pytest.skip("counts bytes read through /proc/self/io (Linux)")
    monkeypatch.setattr(gpu, "detect_gpu", lambda: None)  # the start up to the GPU check, on any machine
    built = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    size = built.metadata.engine_bytes
    hashed = [0]  # bytes fed to sha256, at once or in pieces
    real_sha256 = hashlib.sha256

    class CountingSha256:
        def __init__(self, data=b"", **kwargs):
            self._hash = real_sha256(**kwargs)
            self.update(data)

        def update(self, data):
            hashed[0] += len(data)
            self._hash.update(data)

        def hexdigest(self):
            return self._hash.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", CountingSha256)
    before = _bytes_read()
    cached = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    with pytest.raises(TrtsrError, match="none is visible"):
        EngineSession.open(cached.loaded)
    read = _bytes_read() - before
    assert not cached.built
    assert size <= read < 1.5 * size, f"read {read / size:.2f} times the engine's {size} bytes"
    assert size <= hashed[0] < 1.5 * size, f"hashed {hashed[0] / size:.2f} times the engine's bytes"

    # the next start trusts the hash it recorded while the file is unchanged: no hashing, and no read before
    # the GPU check (a GPU's session reads the bytes once, when it deserialises them)
    hashed[0], before = 0, _bytes_read()
    again = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    with pytest.raises(TrtsrError, match="none is visible"):
        EngineSession.open(again.loaded)
    assert not again.built and hashed[0] < size and _bytes_read() - before < 0.5 * size
    assert again.loaded.data == again.engine_path.read_bytes()  # read when needed

    # a file rewritten since (a flipped byte, same size) is hashed again, found corrupt and rebuilt
    data = bytearray(again.engine_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    again.engine_path.write_bytes(bytes(data))
    rebuilt = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    assert rebuilt.built and rebuilt.engine_path.read_bytes() != bytes(data)
