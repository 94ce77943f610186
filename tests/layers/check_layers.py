#!/usr/bin/env python3
"""Checks docs/architecture.md's rules on the source tree: every project include points to a
folder the including folder may use, and the folders without LibTorch include no LibTorch
header. Prints each violation as FILE:LINE and exits 1 if there is any.
Usage: check_layers.py SOURCE_DIR"""
import pathlib
import re
import sys

# folder -> the folders (or single headers) it may include (itself always allowed); model/names.h
# holds no LibTorch, so the run's configuration can use the model's names
ALLOWED = {
    "base": set(),
    "db": {"base"},
    "model": set(),
    "pipeline/data": {"base"},
    "pipeline/run": {"pipeline/data", "db", "base", "model/names.h"},
    "pipeline/render": {"pipeline/run", "pipeline/data", "db", "base", "model/names.h"},
    "pipeline/runtime": {"model", "base"},
    "pipeline/formats": {"pipeline/runtime", "model", "base"},
    "pipeline/parallel": {"base"},
    "pipeline/stages": {"pipeline/parallel", "pipeline/formats", "pipeline/runtime", "pipeline/render",
                        "pipeline/run", "pipeline/data", "model", "db", "base"},
    "cli": {"pipeline/data", "pipeline/run", "pipeline/render", "pipeline/formats", "pipeline/runtime",
            "pipeline/stages", "base", "model/names.h"},
}
NO_TORCH = {"base", "db", "pipeline/data", "pipeline/run", "pipeline/render"}
# cli/ may include only the headers that declare commands (and the runtime options), never the
# LibTorch-heavy ones.
CLI_HEADERS = re.compile(r"pipeline/(data/prepare|data/resize|run/info|run/concepts|render/report|formats/weights|runtime/runtime_config|"
                         r"runtime/build_info|stages/(train|project|last_layer|evaluate|analyze|prune|explain|import_model|export_model|"
                         r"epoch_summary|stage_names|part_metrics|attribution))\.h$")
TORCH = re.compile(r"#include <(torch|ATen|c10|caffe2)/")
PROJECT = re.compile(r'#include "([^"]+)"')


def folder_of(rel):
    for f in sorted(ALLOWED, key=len, reverse=True):
        if rel.startswith(f + "/"):
            return f
    return None


def main(root):
    root = pathlib.Path(root)
    bad = []
    checked = 0
    for path in sorted(root.glob("**/*")):
        if path.suffix not in (".h", ".cpp") or "build" in path.relative_to(root).parts[:1]:
            continue
        rel = path.relative_to(root).as_posix()
        here = folder_of(rel)
        if here is None:
            continue
        checked += 1
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = PROJECT.match(line)
            if m:
                target = m.group(1)
                there = folder_of(target)
                if there is None and target.startswith(("cli/", "pipeline/", "model/", "db/", "base/")):
                    bad.append(f"{rel}:{n}: {target} is in no known folder")
                elif there not in (None, here) and there not in ALLOWED[here] and target not in ALLOWED[here]:
                    bad.append(f"{rel}:{n}: {here}/ may not include {target}")
                elif here == "cli" and there not in (None, "cli", "base") and target not in ALLOWED["cli"] \
                        and not CLI_HEADERS.search(target):
                    bad.append(f"{rel}:{n}: cli/ may include only command headers, not {target}")
            if here in NO_TORCH and TORCH.match(line):
                bad.append(f"{rel}:{n}: {here}/ links no LibTorch: {line.strip()}")
    for b in bad:
        print(b)
    print(f"{checked} files checked, {len(bad)} violations")
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
