#!/usr/bin/env python3
"""The levers against background prototypes, before and after, on the planted-part set
(examples/parts_cub.py: 5 classes that differ only by a small coloured square, object masks
around it): the same `small` 48 px model trained from scratch with the reference's settings,
with fine annotation (all images; 20 % of images), with projection onto the object, and with
both; for each: test accuracy, consistency, pointing, purity, precision, background prototypes
and the training time. Not part of `make test`: run `make bench-levers`.

Usage: levers.py [BUILD=build] [THREADS=2] [FINE_ANNOTATION=0.001]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

build, threads, coefficient = (sys.argv[1:] + ["build", "2", "0.001"][len(sys.argv[1:]):])[:3]
ppnet = os.path.abspath(os.path.join(build, "cli", "ppnet"))
generator = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "parts_cub.py")


def run(args):
    start = time.time()
    out = subprocess.run([ppnet] + args + ["--threads", threads], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout
    return time.time() - start, out


VARIANTS = [("reference settings", [], "all"),
            (f"fine annotation {coefficient}, all images", ["--fine-annotation", coefficient], "all"),
            (f"fine annotation {coefficient}, 20 % of images", ["--fine-annotation", coefficient, "--annotated-fraction", "0.2"], "all"),
            ("projection onto the object", [], "object"),
            ("both", ["--fine-annotation", coefficient], "object")]

with tempfile.TemporaryDirectory() as tmp:
    src, data = os.path.join(tmp, "src"), os.path.join(tmp, "data")
    subprocess.run([sys.executable, generator, src, "5", "80"], check=True, stdout=subprocess.DEVNULL)
    run(["prepare", "--cub", src, "--out", data, "--copies", "0"])
    print(f"planted-part set: 5 classes, small at 48 px from scratch, 2 prototypes per class, {threads} threads")
    print(f"{'variant':40s} {'accuracy':>8s} {'consist.':>8s} {'pointing':>8s} {'purity':>7s} {'precision':>9s} "
          f"{'backgr.':>7s} {'train s':>7s}")
    for name, train_options, region in VARIANTS:
        run_dir = os.path.join(tmp, "run-" + str(VARIANTS.index((name, train_options, region))))
        common = ["--data", data, "--run", run_dir]
        seconds, _ = run(["train", "--stage", "joint"] + common + ["--arch", "small", "--img-size", "48",
                                                                   "--prototypes-per-class", "2", "--prototype-dim", "32",
                                                                   "--batch-size", "10"] + train_options)
        run(["project"] + common + ["--push-region", region, "--no-images"])
        run(["last-layer"] + common)
        _, out = run(["evaluate"] + common + ["--metrics", "consistency,pointing,purity,precision", "--json"])
        r = json.loads(out)
        m = r["metrics"]
        print(f"{name:40s} {r['accuracy']:8.4f} {m['consistency']['value']:8.3f} {m['pointing']['value']:8.3f} "
              f"{m['purity']['value']:7.3f} {m['precision']['value']:9.3f} {m['precision']['background_share']:7.2f} "
              f"{seconds:7.1f}")
