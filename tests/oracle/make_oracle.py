#!/usr/bin/env python3
"""Writes the independent-oracle fixtures for ppnet's tests, computed with Debian's
python3-torch and python3-torchvision (never with ppnet).

Usage: make_oracle.py OUTDIR

For vgg16, resnet34, resnet50 and densenet121 (seeded random weights, BatchNorm statistics
randomised so they matter): the weights in both file formats, in the variants the importer must
accept, and the cut backbone's output on a fixed input. For the ProtoPNet head (regular and
bottleneck add-on layers): parameters, inputs and every output of the formulas in
docs/design.md §2. Plus a legacy-format file and one the importer must refuse.
"""
import collections
import hashlib
import json
import os
import re
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
STAMP = os.path.join(OUT, "stamp")
digest = hashlib.sha256(open(__file__, "rb").read() + torch.__version__.encode()).hexdigest()
if os.path.exists(STAMP) and open(STAMP).read() == digest:
    sys.exit(0)  # fixtures from this very script are already there

torch.manual_seed(0)
torch.set_num_threads(2)
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def save_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def randomise_batchnorm(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)


def cut(arch, m):
    """The backbone as the reference ProtoPNet cuts it."""
    if arch.startswith("vgg"):
        return m.features
    if arch.startswith("resnet"):
        return nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
    return lambda x: F.relu(m.features(x))


x = torch.rand(2, 3, 64, 64) * 2 - 1
save_safetensors({"x": x}, os.path.join(OUT, "input.safetensors"))

for arch in ["vgg16", "resnet34", "resnet50", "densenet121"]:
    m = getattr(torchvision.models, arch)(weights=None)
    randomise_batchnorm(m)
    m.eval()
    with torch.no_grad():
        y = cut(arch, m)(x)
    save_safetensors({"y": y}, os.path.join(OUT, f"{arch}_out.safetensors"))
    sd = m.state_dict()  # an OrderedDict, as users save it
    if arch == "vgg16":  # the 400 MB classifier is of no use to anybody here
        sd = collections.OrderedDict((k, v) for k, v in sd.items() if k.startswith("features."))
    if arch == "resnet34":
        # A training checkpoint of a DataParallel model: wrapper dict and "module." prefix.
        torch.save({"epoch": 3, "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())},
                   os.path.join(OUT, f"{arch}.pth"))
    elif arch == "densenet121":
        # Keys as torchvision's pre-0.3 DenseNet files have them ("norm.1" for "norm1").
        old = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        torch.save(collections.OrderedDict((old.sub(r"\1.\2", k), v) for k, v in sd.items()),
                   os.path.join(OUT, f"{arch}.pth"))
    else:
        torch.save(sd, os.path.join(OUT, f"{arch}.pth"))
    st = dict(sd)
    if arch == "resnet50":  # timm-style export without num_batches_tracked
        st = {k: v for k, v in st.items() if not k.endswith("num_batches_tracked")}
    save_safetensors(st, os.path.join(OUT, f"{arch}.safetensors"))

# ---------------------------------------------------------------- ProtoPNet head, docs/design.md §2


def add_on_layers(kind, c, d):
    if kind == "regular":
        return nn.Sequential(nn.Conv2d(c, d, 1), nn.ReLU(), nn.Conv2d(d, d, 1), nn.Sigmoid())
    layers, cin = [], c
    while cin > d or not layers:
        cout = max(d, cin // 2)
        layers += [nn.Conv2d(cin, cout, 1), nn.ReLU(), nn.Conv2d(cout, cout, 1)]
        layers.append(nn.ReLU() if cout > d else nn.Sigmoid())
        cin //= 2
    return nn.Sequential(*layers)


def head_case(kind, dim, classes=3, per_class=2, batch=5, channels=128, grid=4):
    p_count = classes * per_class
    feats = torch.rand(batch, channels, grid, grid) * 3
    labels = torch.randint(0, classes, (batch,))
    add_on = add_on_layers(kind, channels, dim)
    for mod in add_on.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.normal_(mod.weight, 0, 0.1)
            nn.init.uniform_(mod.bias, -0.1, 0.1)
    protos = torch.rand(p_count, dim, 1, 1)
    identity = torch.zeros(p_count, classes)
    for j in range(p_count):
        identity[j, j // per_class] = 1
    weight = identity.t() * 1.0 + (1 - identity.t()) * -0.5 + torch.randn(classes, p_count) * 0.1

    with torch.no_grad():
        z = add_on(feats)
        x2 = F.conv2d(z ** 2, torch.ones_like(protos))
        p2 = torch.sum(protos ** 2, dim=(1, 2, 3)).view(-1, 1, 1)
        xp = F.conv2d(z, protos)
        dist = F.relu(x2 + (-2 * xp + p2))
        min_d = -F.max_pool2d(-dist, kernel_size=(grid, grid)).view(-1, p_count)
        sim = torch.log((min_d + 1) / (min_d + 1e-4))
        logits = F.linear(sim, weight)
        ce = F.cross_entropy(logits, labels)
        max_dist = dim
        own = torch.t(identity[:, labels])
        inverted, _ = torch.max((max_dist - min_d) * own, dim=1)
        cluster = torch.mean(max_dist - inverted)
        other = 1 - own
        inverted_other, _ = torch.max((max_dist - min_d) * other, dim=1)
        separation = torch.mean(max_dist - inverted_other)
        avg_sep = torch.mean(torch.sum(min_d * other, dim=1) / torch.sum(other, dim=1))
        l1 = (weight * (1 - torch.t(identity))).norm(p=1)
        total = ce + 0.8 * cluster - 0.08 * separation + 1e-4 * l1
        flat = protos.view(p_count, -1).double()
        pairwise = torch.mean(torch.sum((flat.unsqueeze(2) - flat.t().unsqueeze(0)) ** 2, dim=1)).float()

    tensors = {"features": feats, "labels": labels, "prototype_vectors": protos, "last_layer.weight": weight}
    for name, t in add_on.state_dict().items():
        tensors["add_on_layers." + name] = t
    outputs = {"distances": dist, "min_distances": min_d, "similarities": sim, "logits": logits,
               "cross_entropy": ce, "cluster": cluster, "separation": separation,
               "avg_separation": avg_sep, "l1": l1, "total": total, "pairwise": pairwise}
    tensors.update({"out." + k: v for k, v in outputs.items()})
    save_safetensors(tensors, os.path.join(OUT, f"head_{kind}.safetensors"))


head_case("regular", dim=32)
head_case("bottleneck", dim=16)

# ---------------------------------------------------------------- the last layer's convex problem
# F(W) = mean CE(S Wᵀ, y) + λ Σ_off |W|, solved here by this script's own full-batch proximal
# gradient (FISTA, fixed step 1/L with L the bound ½‖S‖₂²/N on the Hessian, restarts), run to
# a residual far below ppnet's tolerance.
def last_layer_case(name, lam, n=240, classes=3, per_class=4):
    g = torch.Generator().manual_seed(11)
    p = classes * per_class
    identity = torch.zeros(p, classes, dtype=torch.float64)
    identity[torch.arange(p), torch.arange(p) // per_class] = 1
    labels = torch.randint(0, classes, (n,), generator=g)
    # Distances as a trained model's: own-class prototypes nearer, with much overlap.
    d = torch.rand(n, p, generator=g, dtype=torch.float64) * 6
    d -= 2.5 * identity[:, labels].t() * torch.rand(n, p, generator=g, dtype=torch.float64)
    s = torch.log((d.clamp_min(0) + 1) / (d.clamp_min(0) + 1e-4))
    off = 1 - identity.t()
    w0 = identity.t() - 0.5 * off
    onehot = F.one_hot(labels, classes).double()
    lip = 0.5 * torch.linalg.matrix_norm(s, 2).item() ** 2 / n

    def grad(w):
        return (torch.softmax(s @ w.t(), 1) - onehot).t() @ s / n

    def objective(w):
        return F.cross_entropy(s @ w.t(), labels).item() + lam * (w * off).abs().sum().item()

    def prox(v, tau):
        return torch.where(off > 0, torch.sign(v) * (v.abs() - tau).clamp_min(0), v)

    x, y, t, fx = w0.clone(), w0.clone(), 1.0, objective(w0)
    for _ in range(20000):
        z = prox(y - grad(y) / lip, lam / lip)
        fz = objective(z)
        if fz > fx:
            y, t = x.clone(), 1.0
            continue
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = z + (t - 1) / t_next * (z - x)
        x, t, fx = z, t_next, fz
    save_safetensors({"similarities": s.float(), "labels": labels, "identity": identity.float(),
                      "initial_weight": w0.float(), "weight": x, "lambda": torch.tensor([lam], dtype=torch.float64),
                      "objective": torch.tensor([fx], dtype=torch.float64),
                      "initial_objective": torch.tensor([objective(w0)], dtype=torch.float64)},
                     os.path.join(OUT, f"last_layer_{name}.safetensors"))


last_layer_case("reference_l1", 1e-4)
last_layer_case("sparse", 6e-3)


# ---------------------------------------------------------------- the legacy format; a file to refuse
torch.save({"w": torch.arange(6.0).reshape(2, 3)[:, 1:], "n": torch.tensor([1, 2])}, os.path.join(OUT, "legacy.pth"),
           _use_new_zipfile_serialization=False)
torch.save(collections.Counter(a=1), os.path.join(OUT, "counter.pth"))

with open(STAMP, "w") as f:
    f.write(digest)
