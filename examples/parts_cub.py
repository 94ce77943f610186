#!/usr/bin/env python3
"""Writes a small data set in CUB-200-2011's layout, with part annotations, where only an
annotated part tells the classes apart: grey noise, and a square of the class's colour at a
random place. What `ppnet evaluate --metrics`, `analyze` and `prune` can be tried on without
CUB itself (the tests' generator, tests/common/fixtures.h, makes the same kind of set).

parts/parts.txt names three parts: 1 "planted square" (the square's centre), 2 "grey spot" (a
random background point away from the square), 3 "hidden tail" (never visible). Every fourth
image of a class is a test image. Images are (size + 2·margin)² with the bounding box
(margin, margin, size, size). segmentations/ holds CUB-format object masks (grey PNGs, object at
≥ 50 %): the "object" is the square grown by 3 px on each side, which `ppnet prepare --cub`
finds by itself and `ppnet evaluate --metrics precision` measures against.

Usage: parts_cub.py OUT [CLASSES=5] [PER_CLASS=80] [SIZE=48] [PART=8] [SEED=11]
"""
import os
import random
import struct
import sys
import zlib

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0),
           (128, 0, 255)]


def write_png(path, rows):
    """rows: a list of rows, each a list of (r, g, b): an 8-bit RGB PNG, standard library only."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in rows)
    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_grey_png(path, rows):
    """rows: a list of rows of grey levels: an 8-bit grey PNG."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
    classes, per_class, size, part, seed = [int(a) for a in (sys.argv[2:] + ["5", "80", "48", "8", "11"][len(sys.argv[2:]):])[:5]]
    if classes > len(COLOURS):
        sys.exit(f"at most {len(COLOURS)} classes")
    margin = 4
    rng = random.Random(seed)
    lines = {name: [] for name in ("classes", "images", "labels", "split", "boxes", "locs")}
    image_id = 1
    for c in range(classes):
        name = f"{c + 1:03d}.Bird_{chr(ord('A') + c)}"
        lines["classes"].append(f"{c + 1} {name}")
        os.makedirs(os.path.join(out, "images", name), exist_ok=True)
        os.makedirs(os.path.join(out, "segmentations", name), exist_ok=True)
        for k in range(per_class):
            full = size + 2 * margin
            rows = [[(g, g, g) for g in (rng.randrange(90, 130) for _ in range(full))] for _ in range(full)]
            x, y = rng.randrange(0, size - part + 1), rng.randrange(0, size - part + 1)
            for yy in range(margin + y, margin + y + part):
                rows[yy][margin + x:margin + x + part] = [COLOURS[c]] * part
            cx, cy = x + part / 2, y + part / 2
            while True:
                sx, sy = rng.randrange(0, size) + 0.5, rng.randrange(0, size) + 0.5
                if abs(sx - cx) >= part or abs(sy - cy) >= part:
                    break
            rel = f"{name}/Bird_{image_id}.png"
            write_png(os.path.join(out, "images", rel), rows)
            grow = 3
            x0, y0 = max(0, margin + x - grow), max(0, margin + y - grow)
            x1, y1 = min(full, margin + x + part + grow), min(full, margin + y + part + grow)
            mask = [[255 if x0 <= xx < x1 and y0 <= yy < y1 else 0 for xx in range(full)] for yy in range(full)]
            write_grey_png(os.path.join(out, "segmentations", rel), mask)
            lines["images"].append(f"{image_id} {rel}")
            lines["labels"].append(f"{image_id} {c + 1}")
            lines["split"].append(f"{image_id} {0 if k % 4 == 3 else 1}")
            lines["boxes"].append(f"{image_id} {margin} {margin} {size} {size}")
            lines["locs"] += [f"{image_id} 1 {cx + margin} {cy + margin} 1", f"{image_id} 2 {sx + margin} {sy + margin} 1",
                              f"{image_id} 3 0 0 0"]
            image_id += 1
    files = {"classes": "classes.txt", "images": "images.txt", "labels": "image_class_labels.txt",
             "split": "train_test_split.txt", "boxes": "bounding_boxes.txt", "locs": "parts/part_locs.txt"}
    os.makedirs(os.path.join(out, "parts"), exist_ok=True)
    for key, file in files.items():
        with open(os.path.join(out, file), "w") as f:
            f.write("\n".join(lines[key]) + "\n")
    with open(os.path.join(out, "parts", "parts.txt"), "w") as f:
        f.write("1 planted square\n2 grey spot\n3 hidden tail\n")
    print(f"{out}: {classes} classes × {per_class} images, {size} px, parts in parts/, object masks in segmentations/")


if __name__ == "__main__":
    main()
