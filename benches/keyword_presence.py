#!/usr/bin/env python3
"""Share of each locale's marketplace keywords that a searcher finds in the visible text of the
demo's pages (not in the head: titles, descriptions and JSON-LD are left out).

    edgeseo demo &                      # serves http://127.0.0.1:8080
    python3 benches/keyword_presence.py [http://127.0.0.1:8080]

Prints, for id, vi and th, the keyword rows of rules/demo-supplier/keywords/<locale>.csv found in
the body text of the 15 pages at that locale, by count and by search volume.
"""
import csv
import sys
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

RULES = Path(__file__).resolve().parent.parent / "rules" / "demo-supplier"
HIDDEN = {"script", "style", "noscript", "template"}


class BodyText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.in_body, self.hidden, self.parts = False, 0, []

    def handle_starttag(self, tag, attrs):
        self.in_body |= tag == "body"
        self.hidden += tag in HIDDEN

    def handle_endtag(self, tag):
        if tag in HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data):
        if self.in_body and not self.hidden:
            self.parts.append(data)


def main():
    base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080").rstrip("/")
    with open(RULES / "products.csv", newline="") as f:
        products = [row["path"] for row in csv.DictReader(f)]
    paths = ["/", "/products", "/about", "/contact", "/faq"] + products
    for locale in ["id", "vi", "th"]:
        text = ""
        for path in paths:
            with urllib.request.urlopen(f"{base}/{locale}{path}", timeout=10) as r:
                parser = BodyText()
                parser.feed(r.read().decode())
                text += " ".join(parser.parts).lower() + "\n"
        with open(RULES / "keywords" / f"{locale}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        found = [r for r in rows if r["keyword"].lower() in text]
        volume = sum(int(r["volume"]) for r in rows)
        found_volume = sum(int(r["volume"]) for r in found)
        print(
            f"{locale}: {len(found)}/{len(rows)} keyword rows in the visible text "
            f"({100 * len(found) / len(rows):.0f} %), {100 * found_volume / volume:.0f} % of the search volume"
        )


if __name__ == "__main__":
    main()
