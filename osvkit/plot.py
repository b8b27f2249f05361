"""Boot-phase timelines as pictures: SVG or PNG, written by hand (no plotting library).

:func:`plot_timeline` draws one horizontal bar per boot (an image booted with one VMM), cut
into its boot phases, on a shared millisecond axis, with a legend naming each phase::

    rows = [TimelineRow("hello.img (qemu)", [Phase("disk read (real mode)", 0.0, 58.6), ...])]
    plot_timeline(rows, "boot.svg")      # or "boot.png"

PNG output is an 8-bit RGB image (zlib-compressed scanlines, filter 0) drawn with a built-in
5x7 bitmap font (text in capitals); SVG output is plain XML text.  Both are deterministic.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .errors import UsageError
from .fileio import write_atomic
from .structs.png import COLOR_TYPE_RGB, PNG_SIGNATURE, PngChunk, PngIhdr

#: phase colours (RGB), used in order
PALETTE = [
    (0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B), (0xE1, 0x57, 0x59), (0x76, 0xB7, 0xB2),
    (0x59, 0xA1, 0x4F), (0xED, 0xC9, 0x48), (0xB0, 0x7A, 0xA1), (0xFF, 0x9D, 0xA7),
    (0x9C, 0x75, 0x5F), (0xBA, 0xB0, 0xAC), (0x1F, 0x77, 0xB4), (0x2C, 0xA0, 0x2C),
    (0xD6, 0x27, 0x28), (0x94, 0x67, 0xBD), (0x8C, 0x56, 0x4B), (0x17, 0xBE, 0xCF),
]


@dataclass
class Phase:
    """One boot phase from ``start`` to ``end`` milliseconds."""
    name: str
    start: float
    end: float


@dataclass
class TimelineRow:
    """One bar: a label and its phases (in time order)."""
    label: str
    phases: list[Phase] = field(default_factory=list)
    note: str = ""


def _colours(rows: list[TimelineRow]) -> dict[str, tuple[int, int, int]]:
    names: dict[str, tuple[int, int, int]] = {}
    for row in rows:
        for ph in row.phases:
            if ph.name not in names:
                names[ph.name] = PALETTE[len(names) % len(PALETTE)]
    return names


def _nice_step(span: float) -> float:
    raw = span / 8 if span > 0 else 1
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for mult in (1, 2, 5, 10):
        if raw <= mult * mag:
            return mult * mag
    return 10 * mag


def _fmt_ms(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


@dataclass
class _Geometry:
    width: int
    height: int
    left: int
    plot_w: int
    top: int
    bar_h: int
    gap: int
    span: float
    step: float
    legend_top: int
    legend_cols: int
    legend_col_w: int

    def x(self, ms: float) -> int:
        return self.left + int(round(ms / self.span * self.plot_w)) if self.span else self.left


def _geometry(rows: list[TimelineRow], names: list[str], char_w: int, line_h: int,
              title_h: int) -> _Geometry:
    span = max([ph.end for r in rows for ph in r.phases] + [0.0])
    step = _nice_step(span)
    span = (int(span / step) + 1) * step if span else 1.0
    label_chars = max([len(r.label) for r in rows] + [8])
    left = 10 + min(label_chars, 48) * char_w + 10
    plot_w = 640
    note_chars = max([len(r.note) for r in rows] + [0])
    width = left + plot_w + 30 + note_chars * char_w
    bar_h, gap = 2 * line_h, line_h
    top = title_h + 10
    axis_bottom = top + len(rows) * (bar_h + gap) + 3 * line_h
    legend_col_w = max([len(n) for n in names] + [10]) * char_w + 3 * char_w + 20
    cols = max(1, (width - 20) // legend_col_w)
    legend_rows = (len(names) + cols - 1) // cols
    height = axis_bottom + 10 + legend_rows * (line_h + 6) + 10
    return _Geometry(width, height, left, plot_w, top, bar_h, gap, span, step, axis_bottom + 10,
                     cols, legend_col_w)


# ----------------------------------------------------------------------------------------
# SVG
# ----------------------------------------------------------------------------------------

def render_svg(rows: list[TimelineRow], title: str = "osvkit boot timeline") -> str:
    colours = _colours(rows)
    names = list(colours)
    char_w, line_h = 7, 14
    g = _geometry(rows, names, char_w, line_h, 24)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{g.width}" height="{g.height}" '
           f'viewBox="0 0 {g.width} {g.height}" font-family="monospace" font-size="12">',
           f'<rect x="0" y="0" width="{g.width}" height="{g.height}" fill="#ffffff"/>',
           f'<text x="10" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    axis_y = g.top + len(rows) * (g.bar_h + g.gap)
    t = 0.0
    while t <= g.span + 1e-9:
        x = g.x(t)
        out.append(f'<line x1="{x}" y1="{g.top - 4}" x2="{x}" y2="{axis_y}" stroke="#dddddd"/>')
        out.append(f'<text x="{x}" y="{axis_y + 14}" text-anchor="middle">{_fmt_ms(t)}</text>')
        t += g.step
    out.append(f'<text x="{g.left + g.plot_w // 2}" y="{axis_y + 30}" text-anchor="middle">'
               'time (ms)</text>')
    for i, row in enumerate(rows):
        y = g.top + i * (g.bar_h + g.gap)
        out.append(f'<text x="{g.left - 8}" y="{y + g.bar_h // 2 + 4}" text-anchor="end">'
                   f'{escape(row.label)}</text>')
        for ph in row.phases:
            x0, x1 = g.x(ph.start), g.x(ph.end)
            r, gg, b = colours[ph.name]
            out.append(f'<rect x="{x0}" y="{y}" width="{max(x1 - x0, 1)}" height="{g.bar_h}" '
                       f'fill="#{r:02x}{gg:02x}{b:02x}"><title>{escape(ph.name)}: '
                       f'{ph.start:.2f}-{ph.end:.2f} ms</title></rect>')
        if row.note:
            end = max([ph.end for ph in row.phases] + [0.0])
            out.append(f'<text x="{g.x(end) + 4}" y="{y + g.bar_h // 2 + 4}">'
                       f'{escape(row.note)}</text>')
    for j, name in enumerate(names):
        cx = 10 + (j % g.legend_cols) * g.legend_col_w
        cy = g.legend_top + (j // g.legend_cols) * (line_h + 6)
        r, gg, b = colours[name]
        out.append(f'<rect x="{cx}" y="{cy}" width="12" height="12" '
                   f'fill="#{r:02x}{gg:02x}{b:02x}"/>')
        out.append(f'<text x="{cx + 18}" y="{cy + 11}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------------------

# A 5x7 bitmap font: each glyph is 7 rows of 5 bits (MSB = leftmost column).
_FONT_ROWS = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    "/": "00000 00001 00010 00100 01000 10000 00000",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    "[": "01110 01000 01000 01000 01000 01000 01110",
    "]": "01110 00010 00010 00010 00010 00010 01110",
    "#": "01010 01010 11111 01010 11111 01010 01010",
    "?": "01110 10001 00001 00010 00100 00000 00100",
    "!": "00100 00100 00100 00100 00100 00000 00100",
    "'": "00100 00100 01000 00000 00000 00000 00000",
    '"': "01010 01010 00000 00000 00000 00000 00000",
    "<": "00010 00100 01000 10000 01000 00100 00010",
    ">": "01000 00100 00010 00001 00010 00100 01000",
    "*": "00000 00100 10101 01110 10101 00100 00000",
    "@": "01110 10001 10111 10101 10111 10000 01110",
    "&": "01100 10010 10100 01000 10101 10010 01101",
}
FONT = {ch: [int(r, 2) for r in rows.split()] for ch, rows in _FONT_ROWS.items()}
GLYPH_W, GLYPH_H, SCALE = 5, 7, 2
CHAR_ADVANCE = (GLYPH_W + 1) * SCALE


class Canvas:
    """An RGB raster with rectangles, lines and 5x7 text, encoded as PNG."""

    def __init__(self, width: int, height: int, background=(255, 255, 255)):
        self.width, self.height = width, height
        self.rows = [bytearray(bytes(background) * width) for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        if x1 <= x0:
            return
        span = bytes(colour) * (x1 - x0)
        for y in range(y0, y1):
            self.rows[y][3 * x0:3 * x1] = span

    def text(self, x: int, y: int, text: str, colour=(0, 0, 0), anchor: str = "start") -> None:
        text = text.upper()
        if anchor == "end":
            x -= len(text) * CHAR_ADVANCE
        elif anchor == "middle":
            x -= len(text) * CHAR_ADVANCE // 2
        for ch in text:
            glyph = FONT.get(ch, FONT["?"])
            for gy, bits in enumerate(glyph):
                for gx in range(GLYPH_W):
                    if bits & (1 << (GLYPH_W - 1 - gx)):
                        self.rect(x + gx * SCALE, y + gy * SCALE, x + (gx + 1) * SCALE,
                                  y + (gy + 1) * SCALE, colour)
            x += CHAR_ADVANCE

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(r) for r in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return PngChunk.build(dict(type=kind, data=data))

        ihdr = PngIhdr.build(dict(width=self.width, height=self.height, bit_depth=8,
                                  color_type=COLOR_TYPE_RGB, interlace=0))
        return (PNG_SIGNATURE + chunk(b"IHDR", ihdr)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def render_png(rows: list[TimelineRow], title: str = "osvkit boot timeline") -> bytes:
    colours = _colours(rows)
    names = list(colours)
    line_h = GLYPH_H * SCALE + 4
    g = _geometry(rows, names, CHAR_ADVANCE, line_h, 30)
    c = Canvas(g.width, g.height)
    c.text(10, 8, title)
    axis_y = g.top + len(rows) * (g.bar_h + g.gap)
    t = 0.0
    while t <= g.span + 1e-9:
        x = g.x(t)
        c.rect(x, g.top - 4, x + 1, axis_y, (0xDD, 0xDD, 0xDD))
        c.text(x, axis_y + 4, _fmt_ms(t), anchor="middle")
        t += g.step
    c.text(g.left + g.plot_w // 2, axis_y + 4 + line_h, "time (ms)",
           anchor="middle")
    for i, row in enumerate(rows):
        y = g.top + i * (g.bar_h + g.gap)
        c.text(g.left - 8, y + (g.bar_h - GLYPH_H * SCALE) // 2, row.label, anchor="end")
        for ph in row.phases:
            x0, x1 = g.x(ph.start), g.x(ph.end)
            c.rect(x0, y, max(x1, x0 + 1), y + g.bar_h, colours[ph.name])
        if row.note:
            end = max([ph.end for ph in row.phases] + [0.0])
            c.text(g.x(end) + 4, y + (g.bar_h - GLYPH_H * SCALE) // 2, row.note)
    for j, name in enumerate(names):
        cx = 10 + (j % g.legend_cols) * g.legend_col_w
        cy = g.legend_top + (j // g.legend_cols) * (line_h + 6)
        c.rect(cx, cy, cx + 14, cy + 14, colours[name])
        c.text(cx + 20, cy, name)
    return c.png()


def plot_timeline(rows: list[TimelineRow], path: str | os.PathLike,
                  title: str = "osvkit boot timeline") -> str:
    """Write the timeline to ``path``: SVG for ``.svg``, PNG for ``.png``.  Returns the format."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".svg":
        write_atomic(path, render_svg(rows, title).encode("utf-8"))
        return "svg"
    if ext == ".png":
        write_atomic(path, render_png(rows, title))
        return "png"
    raise UsageError(f"cannot tell the picture format of {os.fspath(path)!r}",
                     expected="a file name ending in .png or .svg")
