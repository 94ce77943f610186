#!/usr/bin/env python3
"""A tiny image folder for tests/gpu/pipeline.sh: CLASSES class folders of PER_CLASS 32×32 PNGs,
dark noise with a bright 7×7 square at a place of its class's (jittered). Usage:
make_images.py OUT [CLASSES PER_CLASS]"""
import os
import random
import sys

from PIL import Image


def main():
    out = sys.argv[1]
    classes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    per_class = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    size, rng = 32, random.Random(5)
    for c in range(classes):
        folder = os.path.join(out, f"class{c}")
        os.makedirs(folder, exist_ok=True)
        cx, cy = 4 + (c * 7) % (size - 11), 4 + (c * 11) % (size - 11)
        for k in range(per_class):
            img = Image.new("RGB", (size, size))
            img.putdata([tuple(rng.randrange(60) for _ in range(3)) for _ in range(size * size)])
            x = min(max(cx + rng.randint(-2, 2), 0), size - 7)
            y = min(max(cy + rng.randint(-2, 2), 0), size - 7)
            img.paste((230, 230, 230), (x, y, x + 7, y + 7))
            img.save(os.path.join(folder, f"img{k:03d}.png"))


if __name__ == "__main__":
    main()
