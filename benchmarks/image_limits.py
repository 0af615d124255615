"""Seconds and peak memory to read the largest images the server accepts, by image mode.

Each image is a mostly blank page with one pen stroke, at MAX_PIXELS (the JPEG at 81 MP:
it is decoded at a fraction of its size), written to a file first; each is then read
by images.load_digit in a fresh process that measures its own peak RSS around the call.
Targets (the reliability issue): under 1 s and under 200 MB extra for any accepted image.

Usage: python benchmarks/image_limits.py
"""

import math
import subprocess
import sys
import tempfile
from pathlib import Path

import record
from PIL import Image, ImageDraw

from mnistlab.images import MAX_PIXELS

# Extra memory: the peak RSS during the call (VmHWM, reset just before it through
# clear_refs) less the RSS before it. Not ru_maxrss: Linux carries that over from the
# parent process, which held the large test image when it started this one.
READ = """
import re, sys, time
from mnistlab import images

def status(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

images.load_digit(sys.argv[2])  # warm: imports, caches
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak RSS starts again from the current RSS
before = status("VmRSS")
start = time.perf_counter()
images.load_digit(sys.argv[1])
seconds = time.perf_counter() - start
print(seconds, (status("VmHWM") - before) / 1024)
"""
CASES = [("L", "png"), ("1", "png"), ("P", "png"), ("RGB", "png"), ("RGBA", "png"),
         ("I;16", "png"), ("CMYK", "tiff"), ("RGB", "jpg")]  # fmt: skip


def page(side: int, mode: str) -> Image.Image:
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(side * 2 // 5, side // 4), (side // 2, side * 3 // 4)], fill=0, width=side // 30)
    if mode == "I;16":
        return image.convert("I").point(lambda v: v * 257).convert("I;16")
    return image.convert(mode)


def main() -> None:
    side = math.isqrt(MAX_PIXELS)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder, "small.png")
        page(64, "L").save(small)
        print(f"{'image':>28}  {'file':>9}  {'seconds':>7}  {'peak MiB':>8}  time/1s  memory/200MB")
        for mode, suffix in CASES:
            size = 9000 if suffix == "jpg" else side  # under Pillow's own 89 MP bomb limit
            path = Path(folder, f"page.{suffix}")
            page(size, mode).save(path)
            out = subprocess.run([sys.executable, "-c", READ, str(path), str(small)],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            seconds, mib = map(float, out.split())
            name = f"{size}x{size} {mode} {suffix.upper()}"
            print(f"{name:>28}  {path.stat().st_size / 1e3:>7.0f}KB  {seconds:>7.2f}  {mib:>8.0f}"
                  f"  {seconds / 1.0:>7.2f}  {mib / 200:>12.2f}")  # fmt: skip
            rows.append(
                [name, f"{path.stat().st_size / 1e3:.0f} KB", f"{seconds:.2f}", f"{mib:.0f}"]
            )
    worst_s, worst_mib = max(float(r[2]) for r in rows), max(float(r[3]) for r in rows)
    record.write(
        "image_limits",
        [{"title": "The largest accepted images: seconds and extra peak memory to read one",
          "columns": ["image", "file", "seconds", "peak MiB"], "rows": rows}],
        [{"target": "any accepted image under 1 s", "measured": f"at most {worst_s:.2f} s",
          "met": worst_s < 1},
         {"target": "any accepted image under 200 MiB", "measured": f"at most {worst_mib:.0f} MiB",
          "met": worst_mib < 200}],
    )  # fmt: skip


if __name__ == "__main__":
    main()
