#!/usr/bin/env python3
"""Derive the compact duty and VAT tables kept in ledger/data/ from the
reference files (run by a maintainer when the sources change; nothing at
build or run time reads the sources):

    testnet/derive_tables.py REFERENCE_DIR

REFERENCE_DIR holds eu_cet2020_ukgt2021_global-uk-tariff.csv (uktrade/
global-uk-tariff @ ab1e602, Crown copyright, OGL v3 / MIT) and
eu_vat_rates_ibericode.json (ibericode/vat-rates @ 5abb1e1, MIT). Writes
ledger/data/tariff-cet2020.tsv (tariff code, EU third-country duty as
published), ledger/data/cn-descriptions.tsv (tariff code, goods description) and ledger/data/vat-rates.tsv (member state, effective from,
standard rate, reduced rates), and prints their sha256."""
import csv, hashlib, json, os, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = sys.argv[1]
out = os.path.join(root, "ledger", "data")

rows = []
texts = []
with open(os.path.join(src, "eu_cet2020_ukgt2021_global-uk-tariff.csv"), newline="") as f:
    for r in csv.DictReader(f):
        code = r["commodity"].strip()
        rate = " ".join(r["cet_duty_rate"].replace("\u00a0", " ").replace("\u20ac", " EUR ").split())
        if code.isdigit() and rate:
            rows.append((code, rate))
        text = " ".join(r["description"].split())
        if code.isdigit() and text:
            texts.append((code, text))


def write_tsv(name, header, records):
    """ledger/data/NAME: '# ' header lines, then one tab-separated line per record."""
    with open(os.path.join(out, name), "w") as f:
        for line in header:
            f.write(f"# {line}\n")
        for rec in records:
            f.write("\t".join(rec) + "\n")


write_tsv("cn-descriptions.tsv", [
    "Goods descriptions of CN8/CN10 tariff lines (2020 code list), extra texts for the HS classifier.",
    "Source: uktrade/global-uk-tariff @ ab1e6029071ee8262289f44a4928dc0cf52f90cd, column description.",
], sorted(texts))
write_tsv("tariff-cet2020.tsv", [
    "EU Common Customs Tariff 2020, third-country duty by CN8/CN10 code (2020 code list).",
    "Source: uktrade/global-uk-tariff @ ab1e6029071ee8262289f44a4928dc0cf52f90cd, column cet_duty_rate.",
], sorted(rows))

vat = json.load(open(os.path.join(src, "eu_vat_rates_ibericode.json")))
lines = []
for cc, periods in sorted(vat["items"].items()):
    for p in periods:
        rates = p["rates"]
        reduced = sorted(v for k, v in rates.items() if k != "standard")
        lines.append((cc, p["effective_from"], str(rates["standard"]), ",".join(str(x) for x in reduced)))
write_tsv("vat-rates.tsv", [
    "VAT rates of EU member states (and GB) with the date each set took effect.",
    "Source: ibericode/vat-rates @ 5abb1e1be91faa42d21c743c603a0aec9b5bab70 (MIT).",
], lines)

for name in ("tariff-cet2020.tsv", "vat-rates.tsv", "cn-descriptions.tsv"):
    data = open(os.path.join(out, name), "rb").read()
    print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
