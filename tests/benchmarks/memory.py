#!/usr/bin/env python3
"""Peak resident memory and time of the stages that compute features, under memory budgets: a
vgg16 run at 224 px (from scratch; the warm stage skipped, as without --weights) on 100
synthetic images in 4 classes, then `evaluate`, `project` and `last-layer` with
--eval-batch-size/--batch-size 100 and each of the budgets. Not part of `make test`: run
`make bench-memory` (or this script with the build folder) and read the figures.

Usage: memory.py [BUILD=build] [ARCH=vgg16] [IMG=224] [IMAGES=100] [THREADS=2] [BUDGETS=default,2G,1G,512M]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

build, arch, img, images, threads, budgets = (sys.argv[1:] + ["build", "vgg16", "224", "100", "2",
                                                               "default,2G,1G,512M"][len(sys.argv[1:]):])[:6]
img, images = int(img), int(images)
ppnet = os.path.join(build, "cli", "ppnet")


def peak_of(args):
    """Runs one ppnet command in a fresh Python parent, so that its peak RSS is that command's alone;
    returns seconds, peak RSS MiB, the batch it said it took (None: as asked), whether it kept float16."""
    code = ("import resource, subprocess, sys, time; t = time.time(); "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(p.returncode, time.time() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.stderr.write(p.stderr)")
    p = subprocess.run([sys.executable, "-c", code, ppnet] + args + ["--threads", threads], capture_output=True, text=True)
    rc, seconds, kib = p.stdout.split()
    if rc != "0":
        sys.exit(f"failed: {' '.join(args)}\n{p.stderr}")
    batch = re.search(r"batches of (\d+) images instead", p.stderr)
    half = "float16" in p.stderr
    return float(seconds), int(kib) / 1024, int(batch.group(1)) if batch else None, half


with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(3)
    for c in range(4):
        os.makedirs(f"{tmp}/images/class{c}")
        for k in range(images // 4):
            a = rng.integers(0, 255, (img, img, 3)).astype(np.uint8)
            a[: img // 4, : img // 4] = [60 * c, 255 - 60 * c, 128]
            Image.fromarray(a).save(f"{tmp}/images/class{c}/img{k:03d}.png")
    # Every image in train, push and test alike: the passes each see all of them.
    subprocess.run([ppnet, "prepare", "--folder", f"{tmp}/images", "--out", f"{tmp}/data", "--copies", "1",
                    "--test-fraction", "0.5", "--quiet"], check=True)
    d = ["--data", f"{tmp}/data", "--run", f"{tmp}/run"]
    subprocess.run([ppnet, "train", "--stage", "warm"] + d + ["--arch", arch, "--img-size", str(img), "--quiet",
                                                              "--threads", threads], check=True)
    counts = json.load(open(f"{tmp}/data/manifest.json"))["counts"]
    n = {split: sum(v) for split, v in counts.items()}
    rows = []
    for budget in budgets.split(","):
        extra = [] if budget == "default" else ["--memory-budget", budget]
        for name, args in [("evaluate", ["evaluate"] + d + ["--batch-size", "100"]),
                           ("project", ["project"] + d + ["--batch-size", "100"]),
                           ("last-layer", ["last-layer"] + d + ["--eval-batch-size", "100"])]:
            seconds, mib, batch, half = peak_of(args + extra)
            rows.append((budget, name, batch or 100, "float16" if half else "", mib, seconds))
    print(f"{arch} at {img} px, {threads} threads; images: {n}; batch asked: 100")
    print(f"{'budget':>8s} {'stage':12s} {'batch':>6s} {'cache':>8s} {'peak RSS MiB':>13s} {'seconds':>8s}")
    for budget, name, batch, cache, mib, seconds in rows:
        print(f"{budget:>8s} {name:12s} {batch:6d} {cache:>8s} {mib:13.0f} {seconds:8.1f}")
