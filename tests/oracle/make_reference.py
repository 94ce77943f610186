#!/usr/bin/env python3
"""Writes ProtoPNets of the reference implementation's structure (tests/oracle/reference/) for
ppnet's import and export tests, computed with Debian's python3-torch (never with ppnet).

Usage: make_reference.py OUTDIR

For vgg11 (regular add-on, zip), resnet18 (bottleneck add-on, legacy format) and densenet121
(regular, zip, linear activation): the whole model as torch.save(ppnet) writes it (pickled as
model.PPNet), its state dict, a fixed input and the model's logits and minimum distances on it.
Plus 64x64 PNG images in class folders (train/ and test/) for the command-line test, and
models to refuse: a module class ppnet does not know, an activation function of the user's
own, a last layer of the wrong shape.
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
import features  # noqa: E402
import model  # noqa: E402

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
STAMP = os.path.join(OUT, "stamp")
sources = b"".join(open(os.path.join(d, f), "rb").read()
                   for d, f in [(HERE, "make_reference.py"), (HERE, "reference/features.py"), (HERE, "reference/model.py")])
digest = hashlib.sha256(sources + torch.__version__.encode()).hexdigest()
if os.path.exists(STAMP) and open(STAMP).read() == digest:
    sys.exit(0)

torch.set_num_threads(2)
IMG, CLASSES, PER_CLASS, DIM = 64, 3, 2, 16
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CASES = [("vgg11", "regular", "log", True), ("resnet18", "bottleneck", "log", False),
         ("densenet121", "regular", "linear", True)]


def build(arch, add_on, activation):
    torch.manual_seed(len(arch))
    feats, channels = features.make_features(arch)
    net = model.PPNet(feats, IMG, (CLASSES * PER_CLASS, DIM, 1, 1), [IMG, 32, 100, 16.0], CLASSES, channels,
                      prototype_activation_function=activation, add_on_layers_type=add_on)
    with torch.no_grad():
        for m in net.features.modules():
            if isinstance(m, nn.Conv2d):  # a signal that reaches the last layer
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):  # statistics that matter in eval mode
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
        for m in net.add_on_layers.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 1.0 / m.weight.shape[1] ** 0.5)
                nn.init.uniform_(m.bias, -0.1, 0.1)
        identity = net.prototype_class_identity.t()
        net.last_layer.weight.copy_(identity - 0.5 * (1 - identity) + 0.1 * torch.randn_like(identity))
    return net.eval()


x = torch.rand(2, 3, IMG, IMG) * 2 - 1
torch.save({"x": x}, os.path.join(OUT, "input.pth"))

# Images for the command line: noise, class folders, train/ and test/.
rng = np.random.default_rng(5)
images = {}
for split in ("train", "test"):
    for c in range(CLASSES):
        os.makedirs(os.path.join(OUT, "images", split, f"class{c}"), exist_ok=True)
        for k in range(2):
            path = os.path.join(OUT, "images", split, f"class{c}", f"img{k}.png")
            Image.fromarray(rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8)).save(path)

for arch, add_on, activation, zip_format in CASES:
    net = build(arch, add_on, activation)
    with torch.no_grad():
        logits, min_distances = net(x)
    torch.save({"logits": logits, "min_distances": min_distances}, os.path.join(OUT, f"{arch}_out.pth"))
    torch.save(net, os.path.join(OUT, f"{arch}_whole.pth"), _use_new_zipfile_serialization=zip_format)
    torch.save(net.state_dict(), os.path.join(OUT, f"{arch}_state.pth"))

# Files to refuse, on a one-convolution VGG_features (the refusal comes before the backbone matters).
class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def tiny():
    torch.manual_seed(1)
    return model.PPNet(features.VGG_features([8, "M"]), IMG, (6, 4, 1, 1), [IMG, 2, 2, 1.0], CLASSES, 8)


net = tiny()
net.add_on_layers[1] = Swish()
torch.save(net, os.path.join(OUT, "unknown_module.pth"))
net = tiny()
net.prototype_activation_function = torch.sigmoid
torch.save(net, os.path.join(OUT, "function_activation.pth"))
net = tiny()
net.last_layer.weight = nn.Parameter(torch.zeros(3, 5))
torch.save(net, os.path.join(OUT, "wrong_last_layer.pth"))

with open(STAMP, "w") as f:
    f.write(digest)
