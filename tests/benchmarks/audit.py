#!/usr/bin/env python3
"""Throughput of the audit commands against the bare forward pass, on a CUB-layout set with part
annotations (examples/parts_cub.py) and an untrained ProtoPNet (timing only needs the shapes):
`evaluate` without metrics (loader + forward: the bare pass), `evaluate --metrics` with the part
metrics (one forward; stability adds a second, noisy one), `analyze` and `prune --dry-run`.
Not part of `make test`: run `make bench-audit` and read the figures.

Usage: audit.py [BUILD=build] [ARCH=vgg16] [IMG=224] [PER_CLASS=40] [THREADS=2]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

build, arch, img, per_class, threads = (sys.argv[1:] + ["build", "vgg16", "224", "40", "2"][len(sys.argv[1:]):])[:5]
ppnet = os.path.abspath(os.path.join(build, "cli", "ppnet"))
here = os.path.dirname(os.path.abspath(__file__))
generator = os.path.join(here, "..", "..", "examples", "parts_cub.py")


def run(args, quiet=True):
    start = time.time()
    out = subprocess.run([ppnet] + args + ["--threads", threads], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL if quiet else None).stdout
    return time.time() - start, out


with tempfile.TemporaryDirectory() as tmp:
    src, data, run_dir = (os.path.join(tmp, n) for n in ("src", "data", "run"))
    subprocess.run([sys.executable, generator, src, "4", per_class, str(int(img) - 8), "24"], check=True,
                   stdout=subprocess.DEVNULL)
    run(["prepare", "--cub", src, "--out", data, "--copies", "0"])
    run(["train", "--stage", "warm", "--epochs", "0", "--data", data, "--run", run_dir, "--arch", arch,
         "--img-size", img, "--prototypes-per-class", "10"])
    seconds, _ = run(["project", "--data", data, "--run", run_dir])
    test_images, push_images = int(per_class) // 4 * 4, (int(per_class) - int(per_class) // 4) * 4
    rows = [("project (push search + pictures)", push_images, seconds)]
    for name, args in [("evaluate (bare forward pass)", []),
                       ("evaluate --metrics consistency,pointing,purity", ["--metrics", "consistency,pointing,purity"]),
                       ("evaluate --metrics all (+ noisy pass)", ["--metrics", "all"])]:
        seconds, _ = run(["evaluate", "--data", data, "--run", run_dir] + args)
        rows.append((name, test_images, seconds))
    seconds, _ = run(["analyze", "--data", data, "--run", run_dir, "--split", "test", "--k", "5"])
    rows.append(("analyze --split test --k 5", test_images, seconds))
    seconds, _ = run(["prune", "--data", data, "--run", run_dir, "--dry-run", "--duplicates"])
    rows.append(("prune --dry-run --duplicates (push)", push_images, seconds))
    print(f"{arch} at {img} px, 40 prototypes, {threads} threads; whole commands (start-up and model load included)")
    print(f"{'command':50s} {'images':>7s} {'seconds':>8s} {'images/s':>9s} {'vs bare':>8s}")
    bare = rows[1][1] / rows[1][2]
    for name, n, s in rows:
        print(f"{name:50s} {n:7d} {s:8.1f} {n / s:9.2f} {n / s / bare:8.2f}")
