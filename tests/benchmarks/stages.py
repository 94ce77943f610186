#!/usr/bin/env python3
"""Throughput and peak memory of every pipeline stage on a fixed synthetic workload, as a table,
with the bare backbone's forward and forward+backward beside them. Not part of `make test`:
run `make bench-stages` (or this script with the build folder) and read the figures.

Usage: stages.py [BUILD=build] [ARCH=small] [IMG=64] [IMAGES_PER_CLASS=60] [THREADS=2]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

build, arch, img, per_class, threads = (sys.argv[1:] + ["build", "small", "64", "60", "2"][len(sys.argv[1:]):])[:5]
img, per_class = int(img), int(per_class)
ppnet = os.path.join(build, "cli", "ppnet")
rows = []


def stage(name, args, images):
    """Runs one ppnet command; returns its --json report and records images/s and peak RSS."""
    start = time.time()
    p = subprocess.Popen([ppnet] + args + ["--threads", threads], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{name} failed: {' '.join(args)}")
    seconds = time.time() - start
    rows.append((name, images / seconds, seconds, usage.ru_maxrss / 1024))
    try:
        return json.loads(out)
    except ValueError:
        return {}


with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(7)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    for c, colour in enumerate(colours):
        os.makedirs(f"{tmp}/images/class{c}")
        for k in range(per_class):
            g = rng.integers(90, 130, (img, img)).astype(np.uint8)
            a = np.stack([g, g, g], -1)
            x, y = rng.integers(0, img - img // 6, 2)
            a[y:y + img // 6, x:x + img // 6] = colour
            Image.fromarray(a).save(f"{tmp}/images/class{c}/img{k:03d}.png")
    n = 4 * per_class
    d = ["--data", f"{tmp}/data", "--run", f"{tmp}/run"]
    stage("prepare (copies 2)", ["prepare", "--folder", f"{tmp}/images", "--out", f"{tmp}/data", "--copies", "2",
                                 "--test-fraction", "0.25", "--json"], n)
    train_images = 3 * per_class * 3 * 2
    common = ["--epochs", "1", "--batch-size", "16", "--json"]
    stage("train warm", ["train", "--stage", "warm"] + d + ["--arch", arch, "--img-size", str(img),
                                                            "--prototypes-per-class", "5", "--prototype-dim", "64"] + common,
          train_images)
    stage("train joint", ["train", "--stage", "joint"] + d + common, train_images)
    stage("project", ["project"] + d + ["--json"], 3 * per_class)
    stage("last-layer (5 epochs)", ["last-layer"] + d + ["--epochs", "5", "--json"], train_images)
    stage("evaluate", ["evaluate"] + d + ["--json"], per_class)
    stage("explain (top-k 10)", ["explain", "--run", f"{tmp}/run", "--dir", f"{tmp}/data/test", "--out", f"{tmp}/explained",
                                 "--json"], per_class)

bare = subprocess.run([os.path.join(build, "benchmarks", "ppnet_bench_train"), arch, str(img), "16", threads, "5"],
                      capture_output=True, text=True).stdout.splitlines()
print(f"{arch} at {img} px, {threads} threads, {n} synthetic images")
print(f"{'stage':24s} {'images/s':>10s} {'seconds':>9s} {'peak RSS MiB':>13s}")
for name, rate, seconds, rss in rows:
    print(f"{name:24s} {rate:10.1f} {seconds:9.2f} {rss:13.0f}")
for line in bare[1:4]:
    print(line.strip())
