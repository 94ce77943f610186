#!/usr/bin/env python3
"""Where prototypes look, measured with each attribution method (upsample, saliency, smoothgrad),
and what each costs. Not part of `make test`: run `make bench-attribution` and read the figures.

1. A planted-part set (examples/parts_cub.py: 5 classes that differ only by a small coloured
   square, object masks around it): train `small` at 48 px from scratch, project, fit the last
   layer, then `evaluate --metrics consistency,stability,pointing,purity,precision` with each
   attribution.
2. The demo's model (runs/fashion-mnist from `make demo`, data prepared with
   --foreground-threshold): precision and background prototypes with each attribution.
3. `explain` per image with each attribution on vgg16 at 224 px (an untrained model: the cost
   depends on the shapes only) beside the bare vgg16 forward+backward of the same batch
   (build/benchmarks/ppnet_bench_train) in the same run.

Usage: attribution.py [BUILD=build] [THREADS=2] [DEMO_RUN=runs/fashion-mnist] [DEMO_DATA=data/fashion-mnist]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

build, threads, demo_run, demo_data = (sys.argv[1:] + ["build", "2", "runs/fashion-mnist", "data/fashion-mnist"][len(sys.argv[1:]):])[:4]
ppnet = os.path.abspath(os.path.join(build, "cli", "ppnet"))
here = os.path.dirname(os.path.abspath(__file__))
generator = os.path.join(here, "..", "..", "examples", "parts_cub.py")
METHODS = ["upsample", "saliency", "smoothgrad"]


def run(args):
    start = time.time()
    out = subprocess.run([ppnet] + args + ["--threads", threads], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout
    return time.time() - start, out


def metrics_table(title, data, run_dir, metrics, extra=()):
    print(title)
    print(f"{'attribution':12s} {'consistency':>11s} {'stability':>9s} {'pointing':>8s} {'purity':>7s} {'precision':>9s} "
          f"{'background':>10s} {'seconds':>8s}")
    for method in METHODS:
        seconds, out = run(["evaluate", "--data", data, "--run", run_dir, "--metrics", metrics, "--attribution", method,
                            "--json"] + list(extra))
        m = json.loads(out)["metrics"]
        value = lambda k: f"{m[k]['value']:.3f}" if k in m else "–"
        background = f"{m['precision']['background_share']:.2f}" if "precision" in m else "–"
        print(f"{method:12s} {value('consistency'):>11s} {value('stability'):>9s} {value('pointing'):>8s} "
              f"{value('purity'):>7s} {value('precision'):>9s} {background:>10s} {seconds:8.1f}")
    print()


with tempfile.TemporaryDirectory() as tmp:
    # 1. The planted-part set.
    src, data, run_dir = (os.path.join(tmp, n) for n in ("src", "data", "run"))
    subprocess.run([sys.executable, generator, src, "5", "80"], check=True, stdout=subprocess.DEVNULL)
    run(["prepare", "--cub", src, "--out", data, "--copies", "0"])
    common = ["--data", data, "--run", run_dir]
    run(["train", "--stage", "warm"] + common + ["--arch", "small", "--img-size", "48", "--prototypes-per-class", "2",
                                                 "--prototype-dim", "32", "--batch-size", "10"])
    run(["train", "--stage", "joint"] + common + ["--batch-size", "10"])
    run(["project"] + common)
    run(["last-layer"] + common)
    _, out = run(["evaluate"] + common + ["--json"])
    accuracy = json.loads(out)["accuracy"]
    metrics_table(f"planted-part set (5 classes, small at 48 px, 2 prototypes per class): test accuracy {accuracy:.4f}",
                  data, run_dir, "consistency,stability,pointing,purity,precision", ["--samples", "16"])

    # 2. The demo's model.
    if os.path.exists(os.path.join(demo_run, "run.sqlite")) and os.path.isdir(os.path.join(demo_data, "masks")):
        metrics_table(f"demo model ({demo_run}), Fashion-MNIST test split, masks from --foreground-threshold",
                      demo_data, demo_run, "precision")
    else:
        print(f"demo model: skipped ({demo_run} or {demo_data}/masks missing: run `make demo` first)\n")

    # 3. explain's cost on vgg16 at 224 px.
    vsrc, vdata, vrun, images = (os.path.join(tmp, n) for n in ("vsrc", "vdata", "vrun", "images"))
    subprocess.run([sys.executable, generator, vsrc, "2", "8", "216", "24"], check=True, stdout=subprocess.DEVNULL)
    run(["prepare", "--cub", vsrc, "--out", vdata, "--copies", "0"])
    run(["train", "--stage", "warm", "--epochs", "0", "--data", vdata, "--run", vrun, "--arch", "vgg16",
         "--img-size", "224", "--prototypes-per-class", "10"])
    run(["project", "--data", vdata, "--run", vrun, "--no-images"])
    n_images = sum(len(f) for _, _, f in os.walk(os.path.join(vdata, "test")))
    bench = os.path.join(build, "benchmarks", "ppnet_bench_train")
    out = subprocess.run([bench, "vgg16", "224", str(n_images), threads, "2"], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    bare = re.search(r"forward\+backward[^\n]*?([0-9.]+) images/s", out)
    bare_ips = float(bare.group(1)) if bare else float("nan")
    print(f"explain on vgg16 at 224 px, {n_images} images in one batch, top 10 prototypes each, {threads} threads; "
          f"bare vgg16 forward+backward of the same batch: {bare_ips:.2f} images/s")
    print(f"{'attribution':12s} {'s/image':>8s} {'× bare fwd+bwd':>15s}")
    for method in METHODS:
        seconds, _ = run(["explain", "--run", vrun, "--dir", os.path.join(vdata, "test"), "--out",
                          os.path.join(tmp, "explained-" + method), "--batch-size", str(n_images), "--attribution", method])
        per_image = seconds / n_images
        print(f"{method:12s} {per_image:8.2f} {per_image * bare_ips:15.1f}")
