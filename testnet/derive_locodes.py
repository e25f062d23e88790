#!/usr/bin/env python3
"""Derive the compact UN/LOCODE place table kept in ledger/data/ from the
reference CSV (run by a maintainer when the source changes; nothing at build
or run time reads the source):

    python3 testnet/derive_locodes.py /path/to/unlocode_geoapify_2024.csv

The input is the UN/LOCODE 2024 code list with coordinates as merged from
geoapify/un-locode @ 2d18b0928396713dfa30b096cbeabcda36de9ae3 (MIT; UN/LOCODE
content from UNECE; rows marked geocoded=true were geocoded from
OpenStreetMap data). Writes ledger/data/locodes.tsv and prints its size,
row count and sha256.

A location is kept when it has usable coordinates and its function
classifier (UN/LOCODE manual, column "Function") marks a transport role a
declaration can name as place of loading or unloading: 1 port, 2 rail
terminal, 3 road terminal, 4 airport, 6 multimodal function (ICDs etc.) or B
border crossing. Postal exchange offices (5) and fixed transport functions
(7, e.g. oil platforms) alone do not qualify, nor does 0 (function not
known).

Output columns, tab separated, sorted by code:
    LOCODE  latitude (micro-degrees)  longitude (micro-degrees)  function
The function keeps the classifier's non-dash characters in order ("12345---"
becomes "12345"): each classifier position holds one fixed symbol, so
nothing is lost. Place names are left out to keep the table small (about
3 MB instead of about 4.5 MB); the source has them.
"""
import csv, hashlib, math, os, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = sys.argv[1]
out = os.path.join(root, "ledger", "data", "locodes.tsv")

# Classifier position -> the symbol that marks the function there.
WANTED = {0: "1", 1: "2", 2: "3", 3: "4", 5: "6", 7: "B"}


def micro(text, limit):
    """Decimal degrees as text -> integer micro-degrees, or None."""
    try:
        v = float(text)
    except ValueError:
        return None
    if not math.isfinite(v) or abs(v) > limit:
        return None
    # Round half away from zero on the decimal string's value.
    m = int(abs(v) * 1_000_000 + 0.5)
    return -m if v < 0 else m


src_hash = hashlib.sha256(open(src, "rb").read()).hexdigest()
places = {}
skipped = {"coordinates": 0, "function": 0, "duplicate": 0, "malformed": 0}
with open(src, newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    header = next(rows)
    assert header[:7] == ["country", "location", "name", "nameWoDiacritics",
                          "subdivision", "status", "function"], header
    for row in rows:
        # 1,040 rows carry a name with a comma that was quoted badly
        # ('"""Aikawa"," Nagasaki"""'): the csv module splits each name in
        # two, and the row has no status or IATA column, so the function
        # moves to index 7 and the coordinates to 8 and 9.
        if row[2].startswith('"'):
            func, lat, lon = row[7], row[8], row[9]
        else:
            func, lat, lon = row[6], row[8], row[9]
        code = (row[0] + row[1]).upper()
        if len(code) != 5 or not code.isalnum() or len(func) != 8:
            skipped["malformed"] += 1
            continue
        if not any(func[i] == ch for i, ch in WANTED.items()):
            skipped["function"] += 1
            continue
        la, lo = micro(lat, 90), micro(lon, 180)
        if la is None or lo is None:
            skipped["coordinates"] += 1
            continue
        if code in places:
            # A few codes are listed twice under alternative names; the
            # first row in file order wins.
            skipped["duplicate"] += 1
            continue
        places[code] = (la, lo, func.replace("-", ""))

with open(out, "w", newline="\n") as f:
    f.write("# UN/LOCODE 2024 transport locations with coordinates: LOCODE, latitude and longitude in\n")
    f.write("# micro-degrees, function classifier (1 port, 2 rail, 3 road, 4 airport, 5 postal, 6 multimodal,\n")
    f.write("# 7 fixed installation, B border crossing). Source: geoapify/un-locode @\n")
    f.write("# 2d18b0928396713dfa30b096cbeabcda36de9ae3 (MIT, LICENSE.un-locode; UN/LOCODE content from UNECE;\n")
    f.write("# geocoded rows from OpenStreetMap data), merged file unlocode_geoapify_2024.csv sha256\n")
    f.write(f"# {src_hash}. Derived by testnet/derive_locodes.py.\n")
    for code in sorted(places):
        la, lo, func = places[code]
        f.write(f"{code}\t{la}\t{lo}\t{func}\n")

data = open(out, "rb").read()
print(f"locodes.tsv: {len(places)} places, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
print("skipped:", ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
