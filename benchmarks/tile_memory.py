"""How close the probed cost (`trtsr.cost`) comes to what ONNX Runtime really takes on the CPU.

    python benchmarks/tile_memory.py -o benchmarks/results/tile-memory [--models ...] [--sizes 128 256 512]

For each model and square input side, a fresh process opens the model's graph in ONNX Runtime (the session
`trtsr run` uses), runs one warm-up at 32 px, resets the kernel's high-water mark (Linux: /proc/self/clear_refs)
and runs the picture once: the rise of the peak resident memory over the memory before the run is what the
run took. Beside it, the graph's probed activation bytes and the planning estimate (probed bytes x
ONNXRUNTIME_MEMORY_FACTOR), which must stay above the measured rise for the tile plan to hold its budget.
Writes NAME.json (device, versions, command, every figure) and NAME.png.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SIZES = {"realesr-animevideov3": (128, 256, 512), "realesrgan-x4plus": (128, 256),
                 "realesrgan-x4plus-anime": (128, 256, 384), "default": (128, 192, 256)}


def _status(field: str) -> int:
    """A VmRSS/VmHWM figure of this process, in bytes."""
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+)", fh.read()).group(1)) * 1024


def measure_one(model: str, side: int) -> dict:
    """In this process: the model's session, one run at `side`, the peak rise and the estimates."""
    import numpy as np

    from trtsr import Upscaler

    with Upscaler(model, backend="onnxruntime", tile=side) as up:
        session = up._session
        session.infer(np.zeros((32, 32, 3), session.io_dtype), up.guidance)
        picture = np.random.default_rng(0).uniform(0, 255, (side, side, 3)).astype(session.io_dtype)
        before = _status("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        started = time.perf_counter()
        session.infer(picture, up.guidance)
        seconds = time.perf_counter() - started
        measured = _status("VmHWM") - before
        cost, factor = session.cost, session.memory_factor
        probed = cost.peak_bytes(side * side)
        return {"model": model, "input": side, "measured_mib": round(measured / 2**20, 1),
                "probed_mib": round(probed / 2**20, 1), "planned_mib": round(factor * probed / 2**20, 1),
                "measured_over_probed": round(measured / probed, 3), "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="NAME: writes NAME.json and NAME.png")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--sizes", nargs="+", type=int, help="input sides (default: per model, see DEFAULT_SIZES)")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: one measurement, printed as JSON
        print(json.dumps(measure_one(args.one[0], int(args.one[1]))))
        return
    if args.output is None:
        parser.error("-o NAME is required")

    sys.path.insert(0, str(Path(__file__).parent))
    from cpu_vs_ncnn import save_report

    from trtsr.cost import ONNXRUNTIME_MEMORY_FACTOR
    from trtsr.measure import environment

    rows = []
    for model in args.models:
        for side in args.sizes or DEFAULT_SIZES.get(model, (128, 256)):
            done = subprocess.run([sys.executable, __file__, "--one", model, str(side)], capture_output=True,
                                  text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{model} {side}px: measured {row['measured_mib']} MiB, probed {row['probed_mib']}, "
                  f"planned {row['planned_mib']} ({row['measured_over_probed']}x probed)", file=sys.stderr,
                  flush=True)
    report = {**environment(), "command": " ".join(["python", *sys.argv]), "memory_factor": ONNXRUNTIME_MEMORY_FACTOR,
              "what": "ONNX Runtime CPU: peak resident memory a run adds (MiB) against the probed activation bytes "
                      "and the planning estimate (probed x memory_factor)", "rows": rows}
    save_report(args.output, report, plot)


def plot(report: dict, path: Path) -> None:
    from cpu_vs_ncnn import OTHER, TRTSR, bar_chart

    bars = [(f"{r['model']}  {r['input']}px  ({r['measured_over_probed']}x probed)",
             [(r["measured_mib"], TRTSR, f"{r['measured_mib']:.0f}"),
              (r["planned_mib"], OTHER, f"{r['planned_mib']:.0f}")]) for r in report["rows"]]
    bar_chart(report, path, "ONNX Runtime CPU memory per run, MiB: measured (blue) vs planned (grey, probed x "
              f"{report['memory_factor']})", bars, left=330, row_h=34)


if __name__ == "__main__":
    main()
