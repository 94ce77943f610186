#!/usr/bin/env python3
"""The same ProtoPNet forward as benchmarks/forward.cpp, in Python torch (Debian's
python3-torch/torchvision): vgg-style backbone, regular add-on, 200 classes × 10 prototypes.
Usage: forward.py [arch] [img_size] [batch] [threads] [iterations]"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

arch = sys.argv[1] if len(sys.argv) > 1 else "vgg16"
img, batch, threads, iters = (int(a) for a in (sys.argv[2:6] + ["224", "8", "2", "5"][len(sys.argv[2:6]):]))
torch.set_num_threads(threads)


class ProtoPNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = getattr(torchvision.models, arch)(weights=None).features
        self.add_on = nn.Sequential(nn.Conv2d(512, 128, 1), nn.ReLU(), nn.Conv2d(128, 128, 1), nn.Sigmoid())
        self.prototypes = nn.Parameter(torch.rand(2000, 128, 1, 1))
        self.last = nn.Linear(2000, 200, bias=False)
        self.ones = torch.ones(2000, 128, 1, 1)

    def forward(self, x):
        z = self.add_on(self.features(x))
        x2 = F.conv2d(z ** 2, self.ones)
        p2 = (self.prototypes ** 2).sum(dim=(1, 2, 3)).view(-1, 1, 1)
        d = F.relu(x2 - 2 * F.conv2d(z, self.prototypes) + p2)
        min_d = -F.max_pool2d(-d, kernel_size=d.shape[2:]).flatten(1)
        return self.last(torch.log((min_d + 1) / (min_d + 1e-4))), min_d


net = ProtoPNet().eval()
x = torch.randn(batch, 3, img, img)
with torch.no_grad():
    net(x)
    t0 = time.perf_counter()
    for _ in range(iters):
        net(x)
    s = time.perf_counter() - t0
print(f"Python torch {torch.__version__} {arch} {img}px batch {batch} threads {threads}: "
      f"{batch * iters / s:.2f} images/s (forward, no grad, {iters} batches)")
