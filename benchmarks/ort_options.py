"""ONNX Runtime session options on the CPU, side by side on one model's cached graph.

    python benchmarks/ort_options.py -o benchmarks/results/ort-options [--models realesr-animevideov3] [--size 512]

Each option set opens its own session of the graph `trtsr run` uses (ONNX Runtime, fp32); after one warm-up
each, the sessions run the same picture in interleaved rounds; the median of `--repeats`. `trtsr` is the
session trtsr opens; the others change one thing from ONNX Runtime's own defaults. A model with attention over the
whole picture (the default) runs in tiles, not whole: give it a tile-sized `--size`. Writes NAME.json (device,
versions, command, every time) and NAME.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def option_sets(ort) -> dict[str, dict]:
    """Name -> (attribute or config entry -> value); `trtsr` is filled in from the session trtsr opens."""
    return {
        "onnxruntime defaults": {},
        "trtsr": None,
        "graph optimisation: extended (no layout pass)": {
            "graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED},
        "subnormals flushed to zero": {"config:session.set_denormal_as_zero": "1"},
        "no spinning threads": {"config:session.intra_op.allow_spinning": "0"},
        "no memory arena": {"enable_cpu_mem_arena": False},
        "1 thread": {"intra_op_num_threads": 1},
    }


def open_session(ort, graph: str, changes: dict):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    for key, value in changes.items():
        if key.startswith("config:"):
            options.add_session_config_entry(key[len("config:"):], value)
        else:
            setattr(options, key, value)
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="NAME: writes NAME.json and NAME.png")
    parser.add_argument("--models", nargs="+", default=["realesr-animevideov3"])
    parser.add_argument("--size", type=int, default=512, help="input side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort

    sys.path.insert(0, str(Path(__file__).parent))
    from cpu_vs_ncnn import photo, save_report

    from trtsr import Upscaler
    from trtsr.measure import environment

    rows = []
    for model in args.models:
        with Upscaler(model, backend="onnxruntime") as up:
            trtsr_session = up._session
            graph = str(trtsr_session.path)
            picture = photo(args.size).astype(np.float32)
            feed = {trtsr_session.spec.input_name: picture}
            if trtsr_session.guidance_input:
                feed[trtsr_session.guidance_input] = np.array([up.guidance], np.float32)
            sessions = {name: trtsr_session._session if changes is None else open_session(ort, graph, changes)
                        for name, changes in option_sets(ort).items()}
            for session in sessions.values():
                session.run(None, feed)
            times: dict[str, list[float]] = {name: [] for name in sessions}
            for _ in range(args.repeats):
                for name, session in sessions.items():
                    started = time.perf_counter()
                    session.run(None, feed)
                    times[name].append(time.perf_counter() - started)
            base = statistics.median(times["onnxruntime defaults"])
            for name, measured in times.items():
                median = statistics.median(measured)
                rows.append({"model": model, "input": args.size, "options": name, "seconds": measured,
                             "median_s": round(median, 3), "vs_defaults": round(median / base, 3)})
                print(f"{model} {args.size}px {name}: {median:.3f} s ({median / base:.3f} of defaults)",
                      file=sys.stderr, flush=True)
    report = {**environment(), "command": " ".join(["python", *sys.argv]), "repeats": args.repeats,
              "what": "ONNX Runtime CPU session options: seconds per run of the graph, median, interleaved; "
                      "vs_defaults = median / ONNX Runtime's defaults' median", "rows": rows}
    save_report(args.output, report, plot)


def plot(report: dict, path: Path) -> None:
    from cpu_vs_ncnn import OTHER, TRTSR, bar_chart

    bars = [(f"{r['model']}  {r['input']}px  {r['options']}",
             [(r["vs_defaults"], TRTSR if r["options"] == "trtsr" else OTHER,
               f"{r['vs_defaults']:.3f} ({r['median_s']:.2f} s)")]) for r in report["rows"]]
    bar_chart(report, path, "ONNX Runtime CPU options, time relative to its defaults (lower is better)", bars,
              left=520)


if __name__ == "__main__":
    main()
