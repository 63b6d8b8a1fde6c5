#!/usr/bin/env python3
"""Writes advances.txt: the advance width of each character a title or description may hold, in
thousandths of an em, read from the fonts search results are drawn with (Arial's metrics, as
Liberation Sans has them, for Latin and Vietnamese; Noto Sans Thai for Thai).

    apt-get install fonts-liberation2 fonts-noto-core && pip install fonttools
    python3 src/seo/advances.py > src/seo/advances.txt

The widths are measurements of the fonts (both SIL Open Font License 1.1); no glyph is copied.
"""
from fontTools.ttLib import TTFont

LATIN = "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf"
THAI = "/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf"
RANGES = [
    (LATIN, 0x0020, 0x024F),  # Basic Latin to Latin Extended-B
    (LATIN, 0x0300, 0x036F),  # combining diacritics (decomposed Vietnamese)
    (THAI, 0x0E00, 0x0E7F),
    (LATIN, 0x1E00, 0x1EFF),  # Latin Extended Additional (precomposed Vietnamese)
    (LATIN, 0x2000, 0x206F),  # general punctuation: dashes, quotes, ellipsis
    (LATIN, 0x20A0, 0x20BF),  # currency signs (₫, €)
    (LATIN, 0x2100, 0x2122),  # letterlike symbols (№, ™)
]


def main():
    fonts = {}
    print("# Advance widths in thousandths of an em, by code point: the first hex field is the code")
    print("# point of the first width of the line; `-` where the font has no glyph. Written by")
    print("# src/seo/advances.py from Liberation Sans 2 Regular (Arial's metrics) and Noto Sans Thai")
    print("# Regular, both under the SIL Open Font License 1.1.")
    for path, first, last in RANGES:
        if path not in fonts:
            font = TTFont(path)
            fonts[path] = (font.getBestCmap(), font["hmtx"].metrics, font["head"].unitsPerEm)
        cmap, metrics, upm = fonts[path]
        for start in range(first, last + 1, 16):
            widths = []
            for cp in range(start, min(start + 16, last + 1)):
                glyph = cmap.get(cp)
                widths.append("-" if glyph is None else str(round(metrics[glyph][0] * 1000 / upm)))
            print(f"{start:04X} {' '.join(widths)}")


if __name__ == "__main__":
    main()
