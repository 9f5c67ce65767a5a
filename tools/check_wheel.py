"""Check a built cnnfast wheel: its size, and the newest glibc symbol version each shared object
in it needs (the extension and the libgomp auditwheel vendors), against a manylinux target.

    python tools/check_wheel.py dist/cnnfast-*.whl [--max-bytes 1500000] [--max-glibc 2.28]

Prints one line per shared object and a summary; exits 1 when the wheel is larger than
--max-bytes or an object needs a glibc newer than --max-glibc. Needs pyelftools (an auditwheel
dependency).
"""
from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile


def glibc_versions(data: bytes) -> set[tuple[int, ...]]:
    """The GLIBC_x.y[.z] versions an ELF object's undefined symbols require (.gnu.version_r)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    found = set()
    elf = ELFFile(io.BytesIO(data))
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    m = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", aux.name)
                    if m:
                        found.add(tuple(int(p) for p in m.group(1).split(".")))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel")
    parser.add_argument("--max-bytes", type=int, default=1_500_000)
    parser.add_argument("--max-glibc", default="2.28", help="newest glibc version allowed (manylinux_2_28: 2.28)")
    args = parser.parse_args(argv)
    limit = tuple(int(p) for p in args.max_glibc.split("."))
    problems = []
    with open(args.wheel, "rb") as f:
        size = len(f.read())
    with zipfile.ZipFile(args.wheel) as wheel:
        objects = [n for n in wheel.namelist() if re.search(r"\.so(\.\d+)*$", n)]
        if not objects:
            problems.append("no shared object in the wheel")
        for name in objects:
            info = wheel.getinfo(name)
            versions = glibc_versions(wheel.read(name))
            newest = max(versions) if versions else ()
            shown = "GLIBC_" + ".".join(map(str, newest)) if newest else "no glibc symbol versions"
            print(f"  {name}: {info.file_size} bytes, needs {shown}")
            if newest > limit:
                problems.append(f"{name} needs {shown} > GLIBC_{args.max_glibc}")
    print(f"wheel {args.wheel.rsplit('/', 1)[-1]}: {size} bytes ({size / 1e6:.2f} MB; limit {args.max_bytes / 1e6:.2f} MB)")
    if size > args.max_bytes:
        problems.append(f"wheel is {size} bytes > {args.max_bytes}")
    for p in problems:
        print("check_wheel: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
