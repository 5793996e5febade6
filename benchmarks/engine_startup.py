"""Start-up of a cached engine up to the GPU check: the cache lookup and opening the session.

    python benchmarks/engine_startup.py --root /tmp/startup [--model gendr-pix] [--repeats 5] -o FILE.json

The first call exports the model (fp16, uint8 I/O, PadCFG) and builds its engine into the cache
under --root with the installed TensorRT backend (the full-size model: about 1.7 GB of engine).
Every timed start then does what a run does before the GPU is needed: `cached_engine` finds the
entry and checks it, and the engine session opens it; on a machine without a GPU the session
stops at its GPU check, which ends the timed part. Bytes read are the process's `rchar` (all
file reads, from the page cache or the disk) over that span. Run it against two source trees
(PYTHONPATH=OLD/src, then the new one) to compare; the JSON names the code, device and versions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="cache root (export and engine)")
    parser.add_argument("--model", default="gendr-pix")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--label", default="", help="what code this is (e.g. the commit)")
    args = parser.parse_args()

    import trtsr
    from trtsr import defaults
    from trtsr.engines.builder import BuildSettings
    from trtsr.engines.cache import cached_engine
    from trtsr.errors import TrtsrError
    from trtsr.measure import environment
    from trtsr.pipeline.resolve import GraphRequest, cached_export
    from trtsr.runtime.sessions import EngineSession

    request = GraphRequest(scale=4, guidance=defaults.GUIDANCE, precision="fp16", io="uint8")
    onnx = cached_export(args.model, request, root=args.root, progress=print)
    settings = BuildSettings(backend="tensorrt-rtx")
    first = cached_engine(onnx, settings, root=args.root, progress=print)
    engine_bytes = first.metadata.engine_bytes
    opener = getattr(EngineSession, "open", None)

    starts = []
    for _ in range(args.repeats):
        read_before, started = _rchar(), time.perf_counter()
        cached = cached_engine(onnx, settings, root=args.root)
        try:
            if opener is not None:
                opener(getattr(cached, "loaded", None) or cached.engine_path)
            else:
                EngineSession(cached.engine_path)
            stopped = "opened"
        except TrtsrError as exc:
            stopped = exc.reason
        seconds = time.perf_counter() - started
        starts.append({"seconds": round(seconds, 3), "bytes_read": _rchar() - read_before, "ended": stopped})

    commit = subprocess.run(["git", "-C", str(Path(trtsr.__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {
        "what": "cached engine start-up up to the GPU check (cached_engine + opening the session)",
        "label": args.label, "code": str(Path(trtsr.__file__).parent), "commit": commit,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model, "engine_bytes": engine_bytes,
        "median_seconds": statistics.median(s["seconds"] for s in starts),
        "median_bytes_read": statistics.median(s["bytes_read"] for s in starts),
        "engine_reads": round(statistics.median(s["bytes_read"] for s in starts) / engine_bytes, 2),
        "starts": starts, **environment(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("label", "median_seconds", "engine_reads")}))


if __name__ == "__main__":
    main()
