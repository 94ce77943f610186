#!/usr/bin/env python3
"""Loads what `ppnet export` wrote into a ProtoPNet of the reference implementation's structure
(tests/oracle/reference/) with load_state_dict(strict=True), and saves its logits and minimum
distances on a fixed input: the independent check that an exported model is the same model in
Python.

Usage: load_export.py MODEL(.pth|.safetensors) INPUT.pth OUT.pth   (MODEL's JSON is beside it)
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import features  # noqa: E402
import model  # noqa: E402

path, input_path, out = sys.argv[1:4]
info = json.load(open(os.path.splitext(path)[0] + ".json"))
assert info["names"] == "reference", info["names"]

if path.endswith(".pth"):
    state = torch.load(path)
    assert type(state).__name__ == "OrderedDict", type(state)
else:  # safetensors, read by hand: Debian has no python3-safetensors
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    state = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        state[name] = torch.from_numpy(np.frombuffer(blob[8 + n + b:8 + n + end], dtype=dtypes[e["dtype"]]).copy()).reshape(e["shape"])

feats, channels = features.make_features(info["arch"])
net = model.PPNet(feats, info["img_size"], tuple(info["prototype_shape"]), None, info["num_classes"], channels,
                  prototype_activation_function=info["prototype_activation_function"],
                  add_on_layers_type=info["add_on_layers_type"])
net.load_state_dict(state, strict=True)
assert net.prototype_class_identity.argmax(1).tolist() == info["prototype_classes"]
net.eval()
with torch.no_grad():
    logits, min_distances = net(torch.load(input_path)["x"])
torch.save({"logits": logits, "min_distances": min_distances}, out)
