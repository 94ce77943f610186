#!/usr/bin/env python3
"""Compares two runs of tests/gpu/pipeline.sh stage by stage (the CPU's and a device's) and
prints each figure. Exit 1 when one is outside its tolerance. Usage: compare.py CPU_DIR DEV_DIR
[--tolerance exact|device|precision]: exact (the default: both on the CPU in float32), device
(another device in float32: other kernels and TF32 convolutions move every epoch a little), or
precision (--amp: another trajectory, so only the end is compared: the final model's accuracy and
its predictions)."""
import csv
import json
import os
import sys

failures = []


def check(what, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
    if not ok:
        failures.append(what)


def load(folder, name):
    with open(os.path.join(folder, name)) as f:
        return json.load(f)


def main():
    a_dir, b_dir = sys.argv[1], sys.argv[2]
    mode = sys.argv[sys.argv.index("--tolerance") + 1] if "--tolerance" in sys.argv else "exact"
    if mode not in ("exact", "device", "precision"):
        sys.exit(f"compare.py: --tolerance {mode}: expected exact, device or precision")
    loose = mode != "exact"
    loss_tol, acc_tol, agree_min = {"exact": (0.0, 0.0, 1.0), "device": (0.15, 0.15, 0.85),
                                    "precision": (None, 0.1, 0.85)}[mode]

    a, b = load(a_dir, "info.json"), load(b_dir, "info.json")
    check("stages", [(s["kind"], s["status"]) for s in a["stages"]] == [(s["kind"], s["status"]) for s in b["stages"]],
          ", ".join(f"{s['kind']} {s['status']}" for s in b["stages"]))
    epochs = list(zip(a["epochs"], b["epochs"]))
    if mode == "precision":
        for ea, eb in epochs[:-1]:
            print(f"     stage {ea['stage_id']} epoch {ea['epoch'] + 1}: train loss {ea['train_loss']:.4f} vs "
                  f"{eb['train_loss']:.4f}, eval accuracy {ea['eval_accuracy']:.4f} vs {eb['eval_accuracy']:.4f}")
        epochs = epochs[-1:]  # the last layer's: the model that is kept
        loss_tol = 1.0
    for ea, eb in epochs:
        for key in ("train_loss", "eval_accuracy"):
            tol = loss_tol * max(1.0, abs(ea[key])) if key == "train_loss" else acc_tol
            diff = abs(ea[key] - eb[key])
            check(f"stage {ea['stage_id']} epoch {ea['epoch'] + 1} {key}", diff <= tol,
                  f"{ea[key]:.5f} vs {eb[key]:.5f} (|Δ| {diff:.2e} ≤ {tol:.2e})")

    pa, pb = load(a_dir, "prototypes.json")["prototypes"], load(b_dir, "prototypes.json")["prototypes"]
    check("prototypes projected", len(pa) == len(pb), f"{len(pb)} of {len(pa)}")
    same = sum(1 for x, y in zip(pa, pb) if x["image"] == y["image"] and x["cell"] == y["cell"])
    after = max((p["distance_after"] for p in pb), default=0.0)
    check("prototype sources", same >= agree_min * len(pa) or loose, f"{same} of {len(pa)} on the same image and cell")
    check("re-encoded distance after projection", after <= 1e-3, f"largest {after:.2e}")

    def predictions(folder):
        with open(os.path.join(folder, "predictions.csv")) as f:
            return {row["path"]: int(row["predicted"]) for row in csv.DictReader(f)}

    qa, qb = predictions(a_dir), predictions(b_dir)
    agree = sum(qa[p] == qb.get(p) for p in qa) / max(1, len(qa))
    check("evaluate: predictions agree", agree >= agree_min, f"{agree:.3f} of {len(qa)} test images")

    xa, xb = load(a_dir, "explain.json"), load(b_dir, "explain.json")
    check("explain: images explained", xa.get("explained") == xb.get("explained"), f"{xb.get('explained')}")
    print("FAILED: " + ", ".join(failures) if failures else "all stages agree")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
