#!/usr/bin/env python3
"""Throughput and peak memory of every pipeline stage on a fixed synthetic workload, as a table:
on a fresh model (initialised, one warm epoch) and on a trained one whose weights hold denormal
floats (ppnet_bench_denormals: 4.2 % of every weight tensor, as a model trained without flushing
had), the latter also with --keep-denormals to show what flushing saves. The bare backbone's
forward and forward+backward are printed beside them. Not part of `make test`: run
`make bench-stages` (or this script with the build folder) and read the figures.

Usage: stages.py [BUILD=build] [ARCH=small] [IMG=64] [IMAGES_PER_CLASS=250] [THREADS=2]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

build, arch, img, per_class, threads = (sys.argv[1:] + ["build", "small", "64", "250", "2"][len(sys.argv[1:]):])[:5]
img, per_class = int(img), int(per_class)
ppnet = os.path.join(build, "cli", "ppnet")
figures = {}  # (stage, column) -> (images/s, seconds, peak RSS MiB)


def stage(name, column, args, images):
    """Runs one ppnet command and records its images/s and peak RSS under (name, column)."""
    start = time.time()
    p = subprocess.Popen([ppnet] + args + ["--threads", threads], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{name} failed: {' '.join(args)}")
    seconds = time.time() - start
    figures[(name, column)] = (images / seconds, seconds, usage.ru_maxrss / 1024)
    try:
        return json.loads(out)
    except ValueError:
        return {}


def make_denormal(run):
    out = subprocess.run([os.path.join(build, "benchmarks", "ppnet_bench_denormals"), run],
                         capture_output=True, text=True, check=True).stdout.strip()
    return out.split(": ", 1)[1]


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
    test_images = n // 4
    push_images = n - test_images
    train_images = push_images * 3 * 2
    run = f"{tmp}/run"
    d = ["--data", f"{tmp}/data", "--run", run]
    stage("prepare (copies 2)", "fresh", ["prepare", "--folder", f"{tmp}/images", "--out", f"{tmp}/data",
                                          "--copies", "2", "--test-fraction", "0.25", "--json"], n)
    common = ["--epochs", "1", "--batch-size", "16", "--json"]
    stage("train warm", "fresh", ["train", "--stage", "warm"] + d + ["--arch", arch, "--img-size", str(img),
                                                                     "--prototypes-per-class", "5",
                                                                     "--prototype-dim", "64"] + common,
          train_images)

    def stages(column, extra):
        if column != "fresh":
            figures[("denormal parameters", column)] = make_denormal(run)
        stage("evaluate (forward)", column, ["evaluate"] + d + ["--json"] + extra, test_images)
        stage("project", column, ["project"] + d + ["--json"] + extra, push_images)
        stage("last-layer (prox)", column, ["last-layer"] + d + ["--json"] + extra, train_images)
        stage("explain (top-k 10)", column, ["explain", "--run", run, "--dir", f"{tmp}/data/test", "--out",
                                             f"{tmp}/explained-{column}", "--json"] + extra, test_images)
        stage("train joint", column, ["train", "--stage", "joint"] + d + common + extra, train_images)

    stages("fresh", [])
    stages("trained", [])
    stages("trained, kept", ["--keep-denormals"])

bare = subprocess.run([os.path.join(build, "benchmarks", "ppnet_bench_train"), arch, str(img), "16", threads, "5"],
                      capture_output=True, text=True).stdout.splitlines()
print(f"{arch} at {img} px, {threads} threads, {n} synthetic images; trained = {figures[('denormal parameters', 'trained')]}")
print("images/s per stage; 'kept' = trained with --keep-denormals (no flushing)")
print(f"{'stage':22s} {'fresh':>9s} {'trained':>9s} {'tr/fresh':>9s} {'kept':>9s} {'peak RSS MiB':>13s}")
for name in ["prepare (copies 2)", "train warm", "train joint", "evaluate (forward)", "project", "last-layer (prox)",
             "explain (top-k 10)"]:
    fresh = figures.get((name, "fresh"))
    trained = figures.get((name, "trained"))
    kept = figures.get((name, "trained, kept"))
    cells = [f"{fresh[0]:9.1f}"]
    cells.append(f"{trained[0]:9.1f}" if trained else f"{'':9s}")
    cells.append(f"{trained[0] / fresh[0]:9.2f}" if trained else f"{'':9s}")
    cells.append(f"{kept[0]:9.1f}" if kept else f"{'':9s}")
    rss = max(v[2] for k, v in figures.items() if k[0] == name)
    print(f"{name:22s} {' '.join(cells)} {rss:13.0f}")
for line in bare[1:4]:
    print(line.strip())
