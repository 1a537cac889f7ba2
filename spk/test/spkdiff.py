"""Shows where two .spk files differ: the top-level members, package.tgz's listing, and the binaries
(sizes, how many bytes differ and where the first difference is, paths of this machine found in them).

Usage: python3 spk/test/spkdiff.py A.spk B.spk   (used by spk/test/run.sh when two builds differ)
"""

import difflib
import gzip
import hashlib
import io
import re
import sys
import tarfile

# Absolute paths that a reproducible binary must not carry.
MACHINE_PATHS = re.compile(rb"/(?:work|root|tmp|home)/[\x21-\x7e]{3,}")


def members(raw):
    """name -> (mode, size, sha256, bytes) of a tar's files."""
    tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:*")
    out = {}
    for m in tar.getmembers():
        data = tar.extractfile(m).read() if m.isfile() else b""
        out[m.name] = (m.mode, m.size, hashlib.sha256(data).hexdigest()[:16], data)
    return out


def listing(entries):
    return [f"{mode:o} {size:>10} {digest} {name}" for name, (mode, size, digest, _) in
            sorted(entries.items())]


def compare_binaries(name, a, b):
    print(f"  {name}: {len(a)} and {len(b)} bytes")
    differing = sum(1 for x, y in zip(a, b) if x != y) + abs(len(a) - len(b))
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    print(f"    {differing} bytes differ; the first at offset {first:#x}")
    for label, data in (("first", a), ("second", b)):
        found = sorted(set(MACHINE_PATHS.findall(data)))
        if found:
            shown = ", ".join(p.decode("ascii", "replace")[:100] for p in found[:8])
            print(f"    paths in the {label}: {len(found)}, e.g. {shown}")


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    raws = []
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            raws.append(f.read())
    outer = [members(raw) for raw in raws]
    print("== .spk members (mode, size, sha256 prefix, name)")
    for line in difflib.unified_diff(listing(outer[0]), listing(outer[1]), sys.argv[1], sys.argv[2],
                                     lineterm="", n=0):
        print("  " + line)
    if "package.tgz" in outer[0] and "package.tgz" in outer[1]:
        inner = [members(gzip.decompress(o["package.tgz"][3])) for o in outer]
        print("== package.tgz members")
        for line in difflib.unified_diff(listing(inner[0]), listing(inner[1]), "first", "second",
                                         lineterm="", n=0):
            print("  " + line)
        for name in sorted(set(inner[0]) & set(inner[1])):
            a, b = inner[0][name][3], inner[1][name][3]
            if a != b and name.startswith("bin/"):
                compare_binaries(name, a, b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
