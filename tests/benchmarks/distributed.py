#!/usr/bin/env python3
"""Data-parallel scaling on this machine: one joint epoch of the demo's model (small backbone,
28 px, 10 prototypes per class of 64 channels, batch 64) on the prepared Fashion-MNIST, as
1 process × T threads against R ranks × T/R threads (ranks started as torchrun starts them).
Prints the epoch's training images/s (from the run's epoch row: the whole batch over all ranks)
and wall time. Not part of `make test`: `make bench-distributed`.

Usage: distributed.py [BUILD=build] [DATA=data/fashion-mnist] [THREADS=2] [RANKS=2] [EPOCHS=1]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

build, data, threads, ranks, epochs = (sys.argv[1:] + ["build", "data/fashion-mnist", "2", "2", "1"][len(sys.argv[1:]):])[:5]
threads, ranks = int(threads), int(ranks)
ppnet = os.path.join(build, "cli", "ppnet")
if not os.path.exists(os.path.join(data, "manifest.json")):
    sys.exit(f"{data}: not prepared (make -f Makefile.data fashion-mnist)")


def args(run, per_rank_threads):
    return [ppnet, "train", "--stage", "joint", "--data", data, "--run", run, "--arch", "small", "--img-size", "28",
            "--prototypes-per-class", "10", "--prototype-dim", "64", "--batch-size", "64", "--epochs", epochs,
            "--threads", str(per_rank_threads), "--json"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run, world):
    env = dict(os.environ)
    procs = []
    if world > 1:
        env.update(WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    start = time.time()
    for r in range(world):
        if world > 1:
            env["RANK"] = str(r)
        procs.append(subprocess.Popen(args(run, max(1, threads // world)), env=dict(env), stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(f"{world} rank(s) failed")
    report = json.loads(outs[0])
    return report["epochs"][-1]["images_per_second"], time.time() - start


with tempfile.TemporaryDirectory() as tmp:
    rows = [(f"1 process × {threads} threads", *launch(os.path.join(tmp, "one"), 1)),
            (f"{ranks} ranks × {max(1, threads // ranks)} thread(s)", *launch(os.path.join(tmp, "ranks"), ranks))]
print(f"joint epoch, demo model, {data}")
print(f"{'configuration':<28} {'train images/s':>15} {'wall s':>8}")
for name, rate, wall in rows:
    print(f"{name:<28} {rate:>15.1f} {wall:>8.1f}")
print(f"ranks / process: {rows[1][1] / rows[0][1]:.2f}")
