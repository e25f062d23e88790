#!/usr/bin/env python3
"""Derive ledger/data/hs6-trade-counts.tsv, the HS classifier's trade prior,
from the labelled import declarations kept in testdata/declarations/
(Institute for Basic Science & Korea Customs Service, MIT; synthetic
declarations generated from Korea Customs Service data, 2020):

    testnet/derive_trade_prior.py

Counts how many declarations name each 6-digit code (train.csv and
valid.csv together) and writes one `code<TAB>count` line per code, code
ascending. Run by a maintainer when the source changes; nothing at build
or run time reads the declarations for this. Prints the table's sha256."""
import collections, csv, hashlib, os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = os.path.join(root, "testdata", "declarations")
counts = collections.Counter()
for name in ("train.csv", "valid.csv"):
    with open(os.path.join(src, name), newline="") as f:
        for r in csv.DictReader(f):
            code = r["HS6 Code"].strip().zfill(6)
            if len(code) == 6 and code.isdigit():
                counts[code] += 1
out = os.path.join(root, "ledger", "data", "hs6-trade-counts.tsv")
with open(out, "w") as f:
    f.write(f"# Declarations per 6-digit HS code in {sum(counts.values()):,} import declarations (2020), "
            "the HS classifier's trade prior.\n")
    f.write("# Source: testdata/declarations/train.csv and valid.csv (Institute for Basic Science & Korea Customs Service, MIT).\n")
    for code in sorted(counts):
        f.write(f"{code}\t{counts[code]}\n")
data = open(out, "rb").read()
print(f"hs6-trade-counts.tsv: {len(counts)} codes, {sum(counts.values())} declarations, "
      f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
