"""Start-up of a cached engine up to the GPU check: the cache lookup and opening the session.

    python benchmarks/engine_startup.py --root DIR [--model gendr-pix] [--repeats 5] [--first-start] -o FILE.json
    python benchmarks/engine_startup.py --plot OUT.png RESULT.json ...

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


def plot(results: list[Path], output: Path) -> None:
    """A bar per result file: median seconds, and engine reads, in one PNG."""
    from PIL import Image, ImageDraw

    rows = [json.loads(path.read_text()) for path in results]
    width, bar_h, left = 1000, 40, 430
    image = Image.new("RGB", (width, 70 + len(rows) * (bar_h + 20)), "white")
    draw = ImageDraw.Draw(image)
    top = max(r["median_seconds"] for r in rows) or 1.0
    device = rows[0]["device"]["name"]
    draw.text((10, 10), f"cached {rows[0]['model']} engine ({rows[0]['engine_bytes'] / 1e9:.2f} GB): start-up up to "
                        f"the GPU check, median seconds ({device})", fill="black")
    for index, row in enumerate(rows):
        y = 50 + index * (bar_h + 20)
        draw.text((10, y + 12), row["label"][:68], fill="black")
        length = int((width - left - 150) * row["median_seconds"] / top)
        draw.rectangle((left, y, left + max(length, 1), y + bar_h), fill=(70, 110, 180))
        draw.text((left + length + 8, y + 12), f"{row['median_seconds']:.3f} s, {row['engine_reads']:g} reads",
                  fill="black")
    image.save(output)


def main() -> None:
    if sys.argv[1:2] == ["--plot"]:  # --plot OUT.png RESULT.json ...
        plot([Path(p) for p in sys.argv[3:]], Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="cache root (export and engine)")
    parser.add_argument("--model", default="gendr-pix")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--label", default="", help="what code this is (e.g. the commit)")
    parser.add_argument("--first-start", action="store_true",
                        help="remove the cache's record of the last check before each start (<key>.verified), so "
                             "each start is the first one after a build or a change")
    args = parser.parse_args()

    import trtsr
    from trtsr import defaults
    from trtsr.engines.builder import BuildSettings
    from trtsr.engines.cache import cached_engine
    from trtsr.errors import TrtsrError
    from trtsr.measure import environment
    from trtsr.pipeline.resolve import GraphRequest, cached_export
    from trtsr.sessions.engine_session import EngineSession
    from trtsr.source import resolve_source

    commit = subprocess.run(["git", "-C", str(Path(trtsr.__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # the code as it was loaded
    request = GraphRequest(scale=4, guidance=defaults.GUIDANCE, precision="fp16", io="uint8")
    onnx = cached_export(resolve_source(args.model), request, root=args.root, progress=print)
    settings = BuildSettings(backend="tensorrt-rtx")
    first = cached_engine(onnx, settings, root=args.root, progress=print)
    engine_bytes = first.metadata.engine_bytes
    opener = getattr(EngineSession, "open", None)

    starts = []
    for _ in range(args.repeats):
        if args.first_start:
            first.engine_path.with_suffix(".verified").unlink(missing_ok=True)
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

    result = {
        "what": "cached engine start-up up to the GPU check (cached_engine + opening the session)",
        "label": args.label, "code": str(Path(trtsr.__file__).parent), "commit": commit,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model, "engine_bytes": engine_bytes, "first_start": args.first_start,
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
