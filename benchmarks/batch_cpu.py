"""Throughput of `trtsr batch` (Ray Data) with 1 and 2 actors against plain `trtsr run`, on this machine's CPU.

    python benchmarks/batch_cpu.py [--images 24] [--side 96] [-o benchmarks/results] [--name batch-cpu]

The inputs are crops (side x side pixels) of the photographs in tests/data, cycled to
`--images` files. Each configuration runs on the same folder into a fresh output folder:

- `trtsr run` as a subprocess (wall time: start-up, model load and all images);
- `trtsr.distributed.upscale_dataset` on a local Ray cluster, 1 actor with 2 ONNX Runtime threads
  and 2 actors with 1 thread each; the job's own time (from the first read to the last write)
  and the wall time including the cluster's start are both recorded.

Writes NAME.json (device, versions, command, every figure) and NAME.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def make_inputs(folder: Path, count: int, side: int) -> list[Path]:
    sources = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))
    folder.mkdir(parents=True)
    files = []
    for index in range(count):
        with Image.open(sources[index % len(sources)]) as img:
            rgb = img.convert("RGB")
            x = (index * 37) % max(1, rgb.width - side)
            y = (index * 23) % max(1, rgb.height - side)
            target = folder / f"crop-{index:03d}.png"
            rgb.crop((x, y, x + side, y + side)).save(target)
            files.append(target)
    return files


def time_run(inputs: Path, out: Path) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "trtsr", "run", str(inputs), "-o", str(out)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return {"config": "trtsr run (one process)", "wall_seconds": round(wall, 3)}


def time_batch(inputs: Path, out: Path, actors: int, threads: int) -> dict:
    import ray

    from trtsr.distributed import BatchSettings, upscale_dataset

    started = time.perf_counter()
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        report = upscale_dataset([str(inputs)], str(out), BatchSettings(actors=actors, threads=threads))
    finally:
        ray.shutdown()
    wall = time.perf_counter() - started
    if report.failed:
        raise SystemExit(f"{report.failed} failed: {report.failures}")
    return {"config": f"trtsr batch, {actors} actor(s) x {threads} thread(s)", "wall_seconds": round(wall, 3),
            "job_seconds": report.seconds, "backend": report.backend}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="batch-cpu")
    args = parser.parse_args()

    from trtsr.measure import environment

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        files = make_inputs(inputs, args.images, args.side)
        out_pixels = sum((Image.open(f).size[0] * 4) * (Image.open(f).size[1] * 4) for f in files)
        rows = [time_run(inputs, Path(tmp) / "run")]
        for actors, threads in ((1, 2), (2, 1)):
            rows.append(time_batch(inputs, Path(tmp) / f"batch-{actors}", actors, threads))
    for row in rows:
        for key in ("wall_seconds", "job_seconds"):
            if key in row:
                row[key.replace("seconds", "images_per_second")] = round(len(files) / row[key], 3)
                row[key.replace("seconds", "output_mp_per_second")] = round(out_pixels / 1e6 / row[key], 3)
    import pyarrow
    import ray

    env = environment()
    env["versions"].update(ray=ray.__version__, pyarrow=pyarrow.__version__)
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "images": len(files), "input_side": args.side, "scale": 4, "model": "default",
        "output_megapixels": round(out_pixels / 1e6, 3),
        **env,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / f"{args.name}.png")
    print(json.dumps(rows, indent=2))


def plot(report: dict, path: Path) -> None:
    rows = report["results"]
    width, left, row_h = 1000, 330, 26
    img = Image.new("RGB", (width, 80 + row_h * 2 * len(rows)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), f"trtsr batch vs trtsr run: {report['images']} images {report['input_side']}px -> x4, "
                       f"{report['device']['name']}", fill="black")
    draw.text((10, 28), "output MP/s; dark: wall time incl. start-up; light: the Ray job alone", fill="gray")
    top = max(max(r.get("wall_output_mp_per_second", 0), r.get("job_output_mp_per_second", 0)) for r in rows)
    y = 55
    for row in rows:
        for key, colour in (("wall_output_mp_per_second", (21, 101, 192)), ("job_output_mp_per_second",
                                                                            (144, 202, 249))):
            if key not in row:
                continue
            bar = int((width - left - 80) * row[key] / top)
            draw.text((10, y + 6), row["config"][:48], fill="black")
            draw.rectangle([left, y + 4, left + max(bar, 1), y + row_h - 4], fill=colour)
            draw.text((left + bar + 6, y + 6), f"{row[key]:.3f}", fill="black")
            y += row_h
    img.save(path)


if __name__ == "__main__":
    main()
