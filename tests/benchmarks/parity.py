#!/usr/bin/env python3
"""`make bench-parity`: the same work in Python torch (Debian's python3-torch, the same LibTorch
1.13 kernels) and in ppnet (build/benchmarks/ppnet_bench_parity), alternating, each side in a
fresh process per round, the minimum of three rounds: seconds per batch of the bare backbone's
forward and forward+backward, a joint step, an evaluation batch and a push batch. Prints the
ratios Python/ppnet (above 1: ppnet is faster), how far apart each side's rounds were (the
largest max/min − 1 of the two sides), and each side's joint step against its own bare
forward+backward. Figures only, never assertions.

Usage: parity.py BUILD [arch=vgg16] [img_size=224] [batch=8] [threads=2] [iterations=3]
       parity.py --python arch img_size batch threads iterations   (one round of the Python side)
"""
import subprocess
import sys
import time

MEASURES = ["bare_forward", "bare_forward_backward", "joint_step", "evaluation", "push"]


def python_side(arch, img, batch, threads, iterations):
    """A minimal ProtoPNet (the reference's maths, ppnet's defaults: 200 classes × 10 prototypes of
    128 channels, the regular add-on, log activation, last layer frozen in joint) timed like
    benchmarks/parity.cpp."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    classes, per_class, dim = 200, 10, 128
    protos = classes * per_class

    def fastest(step):
        step()
        best = float("inf")
        for _ in range(iterations):
            t0 = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - t0)
        return best

    x = torch.randn(batch, 3, img, img)
    y = torch.randint(0, classes, (batch,))
    backbone = getattr(torchvision.models, arch)(weights=None).features

    backbone.eval()

    def bare_forward():
        with torch.no_grad():
            backbone(x)

    def bare_backward():
        backbone.zero_grad()
        backbone(x).sum().backward()

    t_forward = fastest(bare_forward)
    backbone.train()
    t_backward = fastest(bare_backward)

    class ProtoPNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = getattr(torchvision.models, arch)(weights=None).features
            channels = [m for m in self.features.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
            self.add_on = nn.Sequential(nn.Conv2d(channels, dim, 1), nn.ReLU(), nn.Conv2d(dim, dim, 1), nn.Sigmoid())
            self.prototypes = nn.Parameter(torch.rand(protos, dim, 1, 1))
            self.last = nn.Linear(protos, classes, bias=False)
            self.register_buffer("identity", F.one_hot(torch.arange(protos) // per_class, classes).float())
            self.last.weight.data = self.identity.t() - 0.5 * (1 - self.identity.t())
            self.register_buffer("ones", torch.ones(protos, dim, 1, 1))

        def distances(self, x):
            z = self.add_on(self.features(x))
            x2 = F.conv2d(z**2, self.ones)
            p2 = (self.prototypes**2).sum(dim=(1, 2, 3)).view(-1, 1, 1)
            return F.relu(x2 - 2 * F.conv2d(z, self.prototypes) + p2)

        def forward(self, x):
            d = self.distances(x)
            min_d = -F.max_pool2d(-d, kernel_size=d.shape[2:]).flatten(1)
            return self.last(torch.log((min_d + 1) / (min_d + 1e-4))), min_d

    net = ProtoPNet()
    net.last.weight.requires_grad_(False)
    adam = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    max_dist = float(dim)
    own = net.identity[:, y].t()  # B×P

    def joint_step():
        adam.zero_grad()
        logits, min_d = net(x)
        ce = F.cross_entropy(logits, y)
        cluster = (max_dist - ((max_dist - min_d) * own).max(1).values).mean()
        separation = (max_dist - ((max_dist - min_d) * (1 - own)).max(1).values).mean()
        l1 = (net.last.weight * (1 - net.identity.t())).norm(p=1)
        (ce + 0.8 * cluster - 0.08 * separation + 1e-4 * l1).backward()
        adam.step()

    net.train()
    t_joint = fastest(joint_step)
    net.eval()

    def evaluation():
        with torch.no_grad():
            net(x)[0].argmax(1)

    def push():
        with torch.no_grad():
            value = net.distances(x).flatten(2).min(2).values
            value.masked_fill(own == 0, float("inf")).min(0)

    t_eval = fastest(evaluation)
    t_push = fastest(push)
    for name, t in zip(MEASURES, [t_forward, t_backward, t_joint, t_eval, t_push]):
        print(f"{name} {t:.6f}")


def parse(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in MEASURES:
            out[parts[0]] = float(parts[1])
    missing = [m for m in MEASURES if m not in out]
    if missing:
        sys.exit(f"parity: no figure for {', '.join(missing)} in:\n{text}")
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--python":
        arch, img, batch, threads, iterations = sys.argv[2], *map(int, sys.argv[3:7])
        python_side(arch, img, batch, threads, iterations)
        return
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    args = (sys.argv[2:7] + ["vgg16", "224", "8", "2", "3"][len(sys.argv[2:7]):])
    sides = {
        "ppnet": [f"{build}/benchmarks/ppnet_bench_parity", *args],
        "python": [sys.executable, __file__, "--python", *args],
    }
    rounds = {side: {m: [] for m in MEASURES} for side in sides}
    for round_ in range(3):
        for side, command in sides.items():
            t0 = time.perf_counter()
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"parity: {' '.join(command)} failed ({run.returncode}):\n{run.stderr}")
            for m, t in parse(run.stdout).items():
                rounds[side][m].append(t)
            print(f"round {round_ + 1}: {side} {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    best = {side: {m: min(ts) for m, ts in by_measure.items()} for side, by_measure in rounds.items()}
    # How far apart a side's three rounds are: a ratio closer to 1 than this is not resolved.
    spread = {m: max(max(rounds[side][m]) / min(rounds[side][m]) - 1 for side in sides) for m in MEASURES}
    arch, img, batch, threads, _ = args
    print(f"{arch} at {img} px, batch {batch}, {threads} threads; seconds per batch, the minimum of 3 rounds "
          "(alternating)")
    print(f"{'measure':24} {'Python':>10} {'ppnet':>10} {'Python/ppnet':>13} {'round spread':>13}")
    for m in MEASURES:
        print(f"{m:24} {best['python'][m]:10.4f} {best['ppnet'][m]:10.4f} {best['python'][m] / best['ppnet'][m]:13.3f}"
              f" {100 * spread[m]:12.1f}%")
    for side in sides:
        b = best[side]
        print(f"{side}: joint step at {b['bare_forward_backward'] / b['joint_step']:.3f} of its bare forward+backward, "
              f"evaluation at {b['bare_forward'] / b['evaluation']:.3f} and push at "
              f"{b['bare_forward'] / b['push']:.3f} of its bare forward")


if __name__ == "__main__":
    main()
