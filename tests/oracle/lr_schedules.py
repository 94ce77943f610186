#!/usr/bin/env python3
"""The learning rate PyTorch's own schedulers give each epoch, as the tests' oracle for ppnet's
joint schedules. Prints JSON: {"step": [...], "step_reference": [...], "cosine": [...]}, one
rate per epoch: StepLR stepped after each epoch (the documented use), StepLR stepped before each
epoch (what the reference's main.py does), and CosineAnnealingLR over every batch of the stage
stepped after each batch (the rate of each epoch's last batch).
Usage: lr_schedules.py BASE_LR EPOCHS BATCHES_PER_EPOCH STEP GAMMA"""
import json
import sys
import warnings

import torch

warnings.filterwarnings("ignore")  # the reference's order (scheduler before optimizer) warns


def optimizer(base):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)


def step_lr(base, epochs, step, gamma, before):
    opt = optimizer(base)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=gamma)
    rates = []
    for _ in range(epochs):
        if before:
            sched.step()
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if not before:
            sched.step()
    return rates


def cosine(base, epochs, batches):
    opt = optimizer(base)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * batches)
    rates = []
    for _ in range(epochs):
        for _ in range(batches):
            last = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
        rates.append(last)
    return rates


def main():
    base, epochs, batches, step, gamma = (float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                          float(sys.argv[5]))
    print(json.dumps({"step": step_lr(base, epochs, step, gamma, False),
                      "step_reference": step_lr(base, epochs, step, gamma, True),
                      "cosine": cosine(base, epochs, batches)}))


if __name__ == "__main__":
    main()
