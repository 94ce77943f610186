#!/usr/bin/env python3
"""Real handwritten digits as a folder of class folders, for trying ppnet on a second small
data set trained from scratch: the 1,797 8×8 digits (UCI optdigits) that Debian's python3-sklearn
ships as digits.csv.gz, upscaled to 28×28 PNGs (bicubic). Reads the CSV itself: no sklearn
import, no download.

Usage: digits.py OUT [CSV=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz]
Then:  ppnet prepare --folder OUT --out data/digits --copies 0 --test-fraction 0.2
"""
import csv
import gzip
import os
import sys

from PIL import Image

out = sys.argv[1]
source = sys.argv[2] if len(sys.argv) > 2 else "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
if not os.path.exists(source):
    sys.exit(f"digits.py: {source} missing: apt-get install python3-sklearn")
with gzip.open(source, "rt") as f:
    for n, row in enumerate(csv.reader(f)):
        if len(row) != 65:
            sys.exit(f"digits.py: {source}, line {n + 1}: expected 65 values, found {len(row)}")
        pixels = bytes(min(255, int(float(v)) * 16) for v in row[:64])
        label = int(float(row[64]))
        folder = os.path.join(out, str(label))
        os.makedirs(folder, exist_ok=True)
        Image.frombytes("L", (8, 8), pixels).resize((28, 28), Image.BICUBIC).save(os.path.join(folder, f"{n:04d}.png"))
print(f"{n + 1} digits in {out}")
