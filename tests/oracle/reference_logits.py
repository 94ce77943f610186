#!/usr/bin/env python3
"""The logits a reference-structured ProtoPNet (tests/oracle/reference/) saved whole gives on the
images of a prepared data folder's split, read with PIL as the reference's transforms do
(ToTensor, Normalize with ImageNet's mean and std; the images are already of the model's size).

Usage: reference_logits.py MODEL.pth DATA SPLIT OUT.csv   (writes path,predicted,logit,...all logits)
"""
import csv
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import model  # noqa: E402,F401  (torch.load finds model.PPNet here)

path, data, split, out = sys.argv[1:5]
net = torch.load(path, map_location="cpu").eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
rows = []
with open(os.path.join(data, "lists", f"{split}.tsv")) as f:
    for line in f:
        rel = line.split("\t")[0]
        if not rel or rel.startswith("#"):
            continue
        pixels = np.asarray(Image.open(os.path.join(data, rel)).convert("RGB"), dtype=np.float32) / 255
        x = (torch.from_numpy(pixels).permute(2, 0, 1) - mean) / std
        with torch.no_grad():
            logits = net(x.unsqueeze(0))[0][0]
        rows.append([rel, int(logits.argmax())] + [f"{v:.8g}" for v in logits.tolist()])
with open(out, "w", newline="") as f:
    csv.writer(f).writerows(rows)
