"""What `trtsr run`'s host threads gain over a folder: decode ahead and encode behind, against one file at a time.

    python benchmarks/folder_overlap.py IMAGES_FOLDER -o benchmarks/results/folder-overlap-cpu.json [--repeats 3]

Both loops upscale the same pictures with the same Upscaler (the default model through ONNX Runtime
unless -m / -b say otherwise) and write PNGs into a temporary folder: `threaded` is `trtsr run`'s own
loop (`trtsr.pipeline.jobs.run_jobs`: the next file is decoded and the last ones encoded in threads while the
current one runs); `serial` reads, upscales and writes each file in turn. The runs alternate, and
the JSON keeps every time with the device, versions and command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("-m", "--model", default="default")
    parser.add_argument("-b", "--backend", default="onnxruntime")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format", default="png")
    args = parser.parse_args()

    from trtsr.measure import environment
    from trtsr.outputs import plan_run
    from trtsr.pipeline import RunRequest, Upscaler
    from trtsr.pipeline.jobs import run_jobs, sort_jobs
    from trtsr.runtime.images import read_image, write_image

    times: dict[str, list[float]] = {"threaded": [], "serial": []}
    with Upscaler.from_request(RunRequest(model=args.model, backend=args.backend)) as upscaler, \
            tempfile.TemporaryDirectory() as tmp:
        plan = plan_run([str(args.images)], f"{tmp}/out/", suffix="_x4", fmt=args.format)
        jobs = plan.jobs
        pixels = 0
        for repeat in range(args.repeats + 1):  # the first round warms up and is not kept
            for loop in ("threaded", "serial"):
                for _, dst in jobs:
                    dst.unlink(missing_ok=True)
                started = time.perf_counter()
                if loop == "threaded":
                    summary = run_jobs(upscaler, sort_jobs(jobs, overwrite=True), overwrite=True)
                    assert not summary.failed, summary.failed[0].line
                else:
                    for src, dst in jobs:
                        picture = upscaler.upscale_picture(read_image(src))
                        write_image(picture, dst, args.format)
                seconds = time.perf_counter() - started
                if repeat:
                    times[loop].append(round(seconds, 3))
        pixels = sum(read_image(dst).size[0] * read_image(dst).size[1] for _, dst in jobs)
        backend = upscaler.backend_name
    result = {
        "what": "trtsr run's loop (decode ahead, encode behind in host threads) against one file at a time",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model, "backend": backend, "files": len(jobs), "output_megapixels": round(pixels / 1e6, 3),
        "seconds": times, "median_seconds": {k: statistics.median(v) for k, v in times.items()},
        "threaded_over_serial": round(statistics.median(times["threaded"]) / statistics.median(times["serial"]), 3),
        **environment(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("files", "median_seconds", "threaded_over_serial")}))


if __name__ == "__main__":
    main()
