#!/usr/bin/env python3
"""Archives for archive_test.cpp, written by Python's tarfile and zipfile (not by ppnet's
library), into the folder given as the only argument.

good.<fmt>: the same members in every format — a folder, a file with a 120-character name
(pax or GNU long-name records), an empty file, and in tars a hard link to the long file
(a copy once extracted) and a symbolic link inside the archive (skipped).
unsafe_*: one member each that would land outside the destination.
truncated.tar.gz: good.tar.gz cut in the middle of its data.
"""
import io
import os
import sys
import tarfile
import zipfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
LONG = "CUB/images/" + "x" * 120 + ".bin"
PAYLOAD = bytes(range(256)) * 40
FILES = {"CUB/images.txt": b"1 a.jpg\n", LONG: PAYLOAD, "CUB/empty.txt": b""}


def add_file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar, name, target, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def good_tar(path, mode, fmt):
    with tarfile.open(path, mode, format=fmt) as tar:
        d = tarfile.TarInfo("CUB")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        tar.addfile(d)
        for name, data in FILES.items():
            add_file(tar, name, data)
        add_link(tar, "CUB/copy.bin", LONG, tarfile.LNKTYPE)
        add_link(tar, "CUB/inner_link", "images", tarfile.SYMTYPE)


good_tar(os.path.join(out, "good.tar.gz"), "w:gz", tarfile.PAX_FORMAT)
good_tar(os.path.join(out, "good.tar.bz2"), "w:bz2", tarfile.PAX_FORMAT)
good_tar(os.path.join(out, "good.tar.xz"), "w:xz", tarfile.PAX_FORMAT)
good_tar(os.path.join(out, "good.tar"), "w", tarfile.GNU_FORMAT)
with zipfile.ZipFile(os.path.join(out, "good.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("CUB/", b"")
    for name, data in FILES.items():
        z.writestr(name, data)

UNSAFE_TARS = {
    "unsafe_absolute.tar": lambda t: add_file(t, "/tmp/ppnet-archive-test-evil", b"x"),
    "unsafe_dotdot.tar": lambda t: add_file(t, "../evil", b"x"),
    "unsafe_nested_dotdot.tar": lambda t: add_file(t, "CUB/../../evil", b"x"),
    "unsafe_symlink_up.tar": lambda t: add_link(t, "CUB/link", "../../evil", tarfile.SYMTYPE),
    "unsafe_symlink_absolute.tar": lambda t: add_link(t, "CUB/link", "/etc/passwd", tarfile.SYMTYPE),
    "unsafe_hardlink_up.tar": lambda t: add_link(t, "CUB/link", "../evil", tarfile.LNKTYPE),
}
for name, add in UNSAFE_TARS.items():
    with tarfile.open(os.path.join(out, name), "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "CUB/first.txt", b"written before the unsafe member")
        add(tar)
with zipfile.ZipFile(os.path.join(out, "unsafe_dotdot.zip"), "w") as z:
    z.writestr("CUB/first.txt", b"written before the unsafe member")
    z.writestr(zipfile.ZipInfo("../evil"), b"x")

with open(os.path.join(out, "good.tar.gz"), "rb") as f:
    whole = f.read()
with open(os.path.join(out, "truncated.tar.gz"), "wb") as f:
    f.write(whole[: len(whole) // 2])
