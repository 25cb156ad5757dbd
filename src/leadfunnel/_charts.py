"""Self-contained SVG charts for reports: a funnel, small multiples, a comparison.

The functions here draw what they are given (titles, tiles, bars) and know nothing of
funnels: :mod:`leadfunnel._reports` and :mod:`leadfunnel._comparison` decide what to
show. Every text is drawn in a colour that meets WCAG AA contrast (4.5:1) against the
shape behind it: a count inside a bar is white on a dark bar and ink on a light one
(:func:`text_colour`). Text from the data is stripped of control characters, of what
XML 1.0 cannot hold (U+FFFE, U+FFFF, lone surrogates) and of the bidi embeddings,
overrides and isolates that would reorder the rest of its line, and escaped (quotes too,
in attributes). No transforms are used, so every coordinate in the file is where it is
drawn.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape

from ._csv_out import printable

__all__ = [
    "INK",
    "SHADES",
    "Bar",
    "Callout",
    "Pair",
    "Panel",
    "Tile",
    "comparison_chart",
    "contrast",
    "funnel_chart",
    "small_multiples",
    "text_colour",
]

WHITE = "#ffffff"
INK = "#1f2933"
MUTED = "#52606d"
RULE = "#cbd2d9"
TILE = "#f0f4f8"
#: One shade per funnel step, dark to light, and a green for won.
SHADES = ("#0b3c5d", "#1d5c84", "#2f7caa", "#4a97c4", "#6cb0d6", "#93c7e4", "#1e6b3f")
PREVIOUS = "#bcccdc"  # the previous period's bars, behind the current ones
TONES = {
    "alert": ("#fdeceb", "#8a1c1c"),  # background, text
    "ok": ("#e6f4ea", "#1e5631"),
    "muted": (TILE, MUTED),
}
CHANGE_INK = {"up": "#1e6b3f", "down": "#b42318", "same": MUTED}
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
MAX_PANELS = 24

Tone = Literal["alert", "ok", "muted"]


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def _luminance(colour: str) -> float:
    hex_ = colour.lstrip("#")
    r, g, b = (int(hex_[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_colour(background: str) -> str:
    """White or ink, whichever reads better on ``background``."""
    return WHITE if contrast(WHITE, background) >= contrast(INK, background) else INK


#: Characters a chart drops from text besides the control characters: those XML 1.0
#: does not allow (lone surrogates, U+FFFE, U+FFFF: a file holding one opens in no
#: viewer, and no character reference can stand for them) and the bidi embeddings,
#: overrides and isolates (U+202A-U+202E, U+2066-U+2069), which a name would leave open
#: to reverse the rest of its line ("alex\u202e (40% sat), sam (10% sat)"). Right-to-left
#: names need none of them: the bidi algorithm orders their letters itself.
_UNDRAWN = re.compile("[\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]")


def _clean(text: str, *, attribute: bool = False) -> str:
    """``text`` as a chart writes it: on one line, without what XML cannot hold or a
    name could reorder, escaped (``"`` too in an ``attribute``)."""
    shown = _UNDRAWN.sub("", printable(text)).replace("\t", " ").replace("\n", " ")
    return escape(shown, {'"': "&quot;"}) if attribute else escape(shown)


def _ems(char: str) -> float:
    """How many ems ``char`` takes, about: a full-width character (CJK ideographs, kana,
    hangul, full-width forms) one, a capital 0.72, any other 0.6."""
    if unicodedata.east_asian_width(char) in "WF":
        return 1.0
    return 0.72 if char.isupper() else 0.6


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """A generous estimate of the width ``text`` takes, in pixels."""
    scale = size * (1.07 if bold else 1.0)
    if text.isascii():
        capitals = sum(map(str.isupper, text)) if not text.islower() else 0
        return (len(text) * 0.6 + capitals * 0.12) * scale
    return sum(map(_ems, text)) * scale


def _fitting(text: str, room: float, size: float, *, bold: bool = False) -> int:
    """How many of ``text``'s first characters fit ``room`` (at least 1): one pass over
    the characters, not a measure of every shorter prefix: linear in the text's
    length, not quadratic."""
    scale = size * (1.07 if bold else 1.0)
    used = 0.0
    keep = len(text)
    for index, char in enumerate(text):
        used += _ems(char) * scale
        if used > room:
            keep = index
            break
    keep = max(keep, 1)
    # text_width sums an ASCII text another way: settle a rounding tie its way.
    while keep > 1 and text_width(text[:keep], size, bold=bold) > room:
        keep -= 1
    return keep


def _fit(text: str, width: float, size: float, *, bold: bool = False) -> str:
    """``text``, cut with an ellipsis to fit ``width``."""
    if text_width(text, size, bold=bold) <= width:
        return text
    room = width - text_width("…", size, bold=bold)
    return text[: _fitting(text, room, size, bold=bold)] + "…"


def _fit_middle(text: str, width: float, size: float, *, bold: bool = False) -> str:
    """``text``, cut in the middle to fit ``width``: its start and (the larger part)
    its end, an ellipsis between, at word boundaries where one is near
    (``Spring…(UK), hall 3 - London``)."""
    if text_width(text, size, bold=bold) <= width:
        return text
    room = width - text_width("…", size, bold=bold)
    cut = len(text) - _fitting(text[::-1], room * 0.6, size, bold=bold)
    if text[cut - 1] != " ":  # from a word's start: the one cut, if short, else the next
        back = text.rfind(" ", max(cut - 6, 0), cut)
        ahead = text.find(" ", cut, cut + (len(text) - cut) // 3)
        if back >= 0 and text_width(text[back + 1 :], size, bold=bold) <= room * 0.75:
            cut = back + 1
        elif ahead >= 0:
            cut = ahead + 1
    tail = text[cut:].lstrip() or text[-1]
    head = text[: _fitting(text, room - text_width(tail, size, bold=bold), size, bold=bold)]
    space = head.rfind(" ", len(head) * 2 // 3)  # to a word's end, if one is near
    return (head[:space] if space > 0 else head).rstrip() + "…" + tail


def _common_start(a: str, b: str) -> int:
    """How many first characters ``a`` and ``b`` share."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _clashes(shown: Sequence[str]) -> dict[int, list[int]]:
    """For each index whose text is shown like another's (as drawn: control characters
    out), the indices it is confused with."""
    seen: dict[str, list[int]] = {}
    for index, text in enumerate(shown):
        seen.setdefault(_clean(text), []).append(index)
    return {i: [j for j in same if j != i] for same in seen.values() if len(same) > 1 for i in same}


def distinct_titles(names: Sequence[str], width: float, size: float) -> list[str]:
    """``names`` (bold) cut to fit ``width`` each, no two alike: cut at the end where
    that keeps them apart; else in the middle (names that differ at their end: "... hall
    3 - Birmingham", "... hall 3 - London"); else around where they differ (``…hall 3 -
    Birmingham…``); else numbered, ``(1)``, ``(2)``... (names that differ only in what is
    not drawn, such as a control character)."""
    shown = [_fit(name, width, size, bold=True) for name in names]
    for index in _clashes(shown):
        shown[index] = _fit_middle(names[index], width, size, bold=True)
    for index, peers in _clashes(shown).items():
        name = names[index]
        # From the start of a word a little before the first character it differs in.
        differs = max(_common_start(name, names[j]) for j in peers)
        space = name.rfind(" ", max(differs - 24, 0), max(differs - 8, 0))
        start = space + 1 if space >= 0 else max(differs - 8, 0)
        shown[index] = _fit(("…" if start else "") + name[start:], width, size, bold=True)
    # Numbered in one run over all those still alike: no two end alike.
    for number, index in enumerate(sorted(_clashes(shown)), start=1):
        suffix = f" ({number})"
        room = width - text_width(suffix, size, bold=True)
        shown[index] = _fit(names[index], room, size, bold=True) + suffix
    return shown


def _fit_size(text: str, width: float, size: float, smallest: float) -> float:
    """The font size, at most ``size`` and at least ``smallest``, that fits ``text``
    (bold) in ``width``: a headline figure is made smaller before it is cut."""
    needed = text_width(text, size, bold=True)
    return size if needed <= width else max(smallest, math.floor(size * width / needed * 10) / 10)


def _wrap(text: str, width: float, size: float) -> list[str]:
    """``text`` in lines that fit ``width``, broken between words, and inside a word
    longer than a line (a 200-character name) rather than let it run off the box."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while text_width(word, size) > width and len(word) > 1:
            room = width - (text_width(line + " ", size) if line else 0)
            cut = _fitting(word, room, size)
            if line and text_width(word[:cut], size) > room:  # no room left: next line
                lines.append(line)
                line = ""
                continue
            lines.append(f"{line} {word[:cut]}".strip())
            line, word = "", word[cut:]
        candidate = f"{line} {word}".strip()
        if line and text_width(candidate, size) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


@dataclass(frozen=True, slots=True)
class Tile:
    """A headline figure: ``label`` above, ``value`` large, ``note`` below."""

    label: str
    value: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    """One step: its ``label`` (``short`` in small panels), ``count`` and a ``note``
    drawn at the right (such as ``"95% of previous"``)."""

    label: str
    short: str
    count: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class Panel:
    """One small funnel: a ``name``, a one-line ``summary`` and its bars."""

    name: str
    summary: str
    bars: Sequence[Bar]


@dataclass(frozen=True, slots=True)
class Callout:
    """A box of lines under a ``heading``: alerts, or the all-clear."""

    heading: str
    lines: Sequence[str]
    tone: Tone = "alert"


@dataclass(frozen=True, slots=True)
class Pair:
    """One step of a comparison: this period's count over the previous one's, and the
    change (``tone`` says its colour: ``up``, ``down`` or ``same``)."""

    label: str
    current: int
    previous: int
    change: str
    tone: Literal["up", "down", "same"] = "same"


class _Svg:
    def __init__(self, width: float, label: str) -> None:
        self.width = width
        self.label = label
        self.parts: list[str] = []

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: str,
        *,
        rx: float = 0,
        stroke: str | None = None,
        title: str | None = None,
    ) -> None:
        edge = f' stroke="{stroke}"' if stroke else ""
        inner = f"<title>{_clean(title)}</title>" if title else ""
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
            f'fill="{fill}"{edge}>{inner}</rect>'
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 13,
        fill: str = INK,
        bold: bool = False,
        anchor: str = "start",
    ) -> None:
        weight = ' font-weight="bold"' if bold else ""
        align = f' text-anchor="{anchor}"' if anchor != "start" else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}"{weight}{align}>'
            f"{_clean(text)}</text>"
        )

    def render(self, height: float) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {self.width:.0f} {height:.0f}" '
            f'font-family="{FONT}" role="img" aria-label="{_clean(self.label, attribute=True)}">'
        )
        background = (
            f'<rect x="0" y="0" width="{self.width:.0f}" height="{height:.0f}" fill="{WHITE}"/>'
        )
        return (
            "\n".join(
                [head, f"<title>{_clean(self.label)}</title>", background, *self.parts, "</svg>"]
            )
            + "\n"
        )


def _header(svg: _Svg, title: str, period: str, note: str) -> float:
    """Title, period and note; returns the y below them."""
    svg.text(16, 32, _fit(title, svg.width - 32, 20, bold=True), size=20, bold=True)
    svg.text(16, 54, _fit(period, svg.width - 32, 14), size=14)
    y = 56.0
    for line in _wrap(note, svg.width - 32, 12):
        y += 17
        svg.text(16, y, line, size=12, fill=MUTED)
    return y + 12


def _tiles(svg: _Svg, y: float, tiles: Sequence[Tile]) -> float:
    if not tiles:
        return y
    gap = 12
    width = (svg.width - 32 - gap * (len(tiles) - 1)) / len(tiles)
    for i, tile in enumerate(tiles):
        x = 16 + i * (width + gap)
        svg.rect(x, y, width, 74, TILE, rx=6)
        svg.text(x + 12, y + 20, _fit(tile.label, width - 24, 12), size=12, fill=MUTED)
        size = _fit_size(tile.value, width - 24, 22, 14)
        svg.text(
            x + 12, y + 47, _fit(tile.value, width - 24, size, bold=True), size=size, bold=True
        )
        if tile.note:
            svg.text(x + 12, y + 65, _fit(tile.note, width - 24, 11.5), size=11.5, fill=MUTED)
    return y + 74 + 18


def _callout(svg: _Svg, y: float, callout: Callout | None) -> float:
    if callout is None:
        return y
    background, ink = TONES[callout.tone]
    lines = [wrapped for line in callout.lines for wrapped in _wrap(line, svg.width - 64, 12.5)]
    height = 38 + 19 * len(lines) if lines else 36
    svg.rect(16, y, svg.width - 32, height, background, rx=6)
    svg.text(28, y + 23, callout.heading, size=13.5, fill=ink, bold=True)
    for i, line in enumerate(lines):
        svg.text(28, y + 44 + 19 * i, line, size=12.5, fill=ink)
    return y + height + 16


def funnel_chart(
    *,
    title: str,
    period: str,
    note: str,
    tiles: Sequence[Tile],
    bars: Sequence[Bar],
    callout: Callout | None,
    width: float = 720,
) -> str:
    """One funnel: the header, headline tiles, a centred bar per step (widths to
    scale, the count inside when it fits) and a call-out box."""
    svg = _Svg(width, title + ", " + period)
    y = _tiles(svg, _header(svg, title, period, note), tiles)
    label_width, row = 150.0, 40.0
    # The notes' column (with the right margin and a gap from the bars) is as wide as
    # the widest note ("1,200.0% of previous" included), at most a third of the chart;
    # a note wider than that is cut to fit it: a note is never drawn over a bar.
    widest = max((text_width(bar.note, 12) for bar in bars if bar.note), default=0.0)
    note_room = min(max(104.0, widest), width / 3 - 26)
    space = width - 16 - label_width - (note_room + 26)
    centre = 16 + label_width + space / 2
    most = max((bar.count for bar in bars), default=0) or 1
    for index, bar in enumerate(bars):
        top = y + index * row
        fill = SHADES[index % len(SHADES)]
        length = space * bar.count / most if bar.count else 0.0
        baseline = top + row / 2 + 5
        svg.text(16, baseline, _fit(bar.label, label_width - 8, 13), size=13)
        if length:
            svg.rect(
                centre - length / 2,
                top + 5,
                max(length, 2.0),
                row - 10,
                fill,
                rx=3,
                title=f"{bar.label}: {bar.count}",
            )
        count = f"{bar.count:,}"
        if text_width(count, 13, bold=True) + 10 <= length:
            svg.text(
                centre, baseline, count, size=13, fill=text_colour(fill), bold=True, anchor="middle"
            )
        else:
            svg.text(centre + length / 2 + 6, baseline, count, size=13, bold=True)
        if bar.note:
            note = _fit(bar.note, note_room, 12)
            svg.text(width - 16, baseline, note, size=12, fill=MUTED, anchor="end")
    y += row * len(bars) + 14
    return svg.render(_callout(svg, y, callout))


def small_multiples(
    *,
    title: str,
    period: str,
    note: str,
    tiles: Sequence[Tile],
    panels: Sequence[Panel],
    callout: Callout | None,
    width: float | None = None,
) -> str:
    """One small funnel per panel, in a grid, every bar on one scale (the largest count
    of any panel is a full bar), so the panels compare at a glance.

    Raises ``ValueError`` beyond :data:`MAX_PANELS` panels: bars that small mislead.
    """
    if len(panels) > MAX_PANELS:
        raise ValueError(
            f"{len(panels)} groups are too many to draw side by side (at most {MAX_PANELS}); "
            "use the CSV or JSON output, or a shorter period"
        )
    columns = max(1, min(3, len(panels)))
    gap = 16.0
    width = width or max(720.0, 32 + columns * 290 + (columns - 1) * gap)
    panel_width = (width - 32 - (columns - 1) * gap) / columns
    svg = _Svg(width, title + ", " + period)
    y = _tiles(svg, _header(svg, title, period, note), tiles)
    most = max((bar.count for panel in panels for bar in panel.bars), default=0) or 1
    row, top_space = 22.0, 52.0
    panel_height = top_space + row * max((len(p.bars) for p in panels), default=0) + 10
    # The counts' column, right of the longest bar, is as wide as the widest count
    # ("1,250,000"), with a gap before it and a margin to the panel's edge: a count
    # never runs out of its panel into the next.
    widest = max(
        (text_width(f"{bar.count:,}", 11.5, bold=True) for p in panels for bar in p.bars),
        default=0.0,
    )
    label_width, count_space = 78.0, max(52.0, widest + 12)
    names = distinct_titles([panel.name for panel in panels], panel_width - 20, 14)
    for index, panel in enumerate(panels):
        x = 16 + (index % columns) * (panel_width + gap)
        top = y + (index // columns) * (panel_height + gap)
        svg.rect(x, top, panel_width, panel_height, WHITE, rx=6, stroke=RULE)
        svg.text(x + 10, top + 21, names[index], size=14, bold=True)
        svg.text(
            x + 10, top + 39, _fit(panel.summary, panel_width - 20, 11.5), size=11.5, fill=MUTED
        )
        space = panel_width - 10 - label_width - count_space
        for step, bar in enumerate(panel.bars):
            row_top = top + top_space + step * row
            baseline = row_top + row / 2 + 4
            svg.text(x + 10, baseline, bar.short, size=11.5)
            length = space * bar.count / most if bar.count else 0.0
            if length:
                svg.rect(
                    x + 10 + label_width,
                    row_top + 3,
                    max(length, 1.5),
                    row - 6,
                    SHADES[step % len(SHADES)],
                    rx=2,
                    title=f"{panel.name}, {bar.label}: {bar.count}",
                )
            svg.text(
                x + 10 + label_width + length + 5, baseline, f"{bar.count:,}", size=11.5, bold=True
            )
    rows = (len(panels) + columns - 1) // columns
    y += rows * (panel_height + gap) + 4
    return svg.render(_callout(svg, y, callout))


def comparison_chart(
    *,
    title: str,
    period: str,
    note: str,
    tiles: Sequence[Tile],
    pairs: Sequence[Pair],
    legend: tuple[str, str],
    callout: Callout | None = None,
    width: float = 760,
) -> str:
    """Two periods side by side: per step, this period's bar over the previous one's
    (one scale), both counts, and the change in its colour (green up, red down)."""
    svg = _Svg(width, title + ", " + period)
    y = _tiles(svg, _header(svg, title, period, note), tiles)
    # The legend: what the dark and the light bars are.
    for i, (fill, text) in enumerate(zip((SHADES[1], PREVIOUS), legend, strict=True)):
        svg.rect(16, y + i * 20, 14, 14, fill, rx=2)
        svg.text(38, y + 12 + i * 20, _fit(text, width - 60, 12.5), size=12.5)
    y += 50
    label_width, row = 150.0, 48.0
    # Room for the counts right of the bars and for the changes at the right edge, each
    # as wide as its widest text (the changes at most a third of the chart, cut beyond
    # that), so that a count never runs into a change however large either is.
    counts = max(
        (text_width(f"{n:,}", 12, bold=True) for p in pairs for n in (p.current, p.previous)),
        default=0.0,
    )
    changes = max((text_width(p.change, 13, bold=True) for p in pairs), default=0.0)
    change_width = min(max(150.0, changes + 12), width / 3)
    space = max(width - 16 - label_width - change_width - max(60.0, counts + 20), 40.0)
    most = max((max(p.current, p.previous) for p in pairs), default=0) or 1
    svg.text(width - 16, y - 8, "change", size=12, fill=MUTED, anchor="end")
    for index, pair in enumerate(pairs):
        top = y + index * row
        svg.text(16, top + row / 2 + 4, _fit(pair.label, label_width - 8, 13), size=13)
        left = 16 + label_width
        for offset, count, fill in ((4, pair.current, SHADES[1]), (24, pair.previous, PREVIOUS)):
            length = space * count / most if count else 0.0
            if length:
                svg.rect(left, top + offset, max(length, 1.5), 17, fill, rx=2)
            svg.text(left + length + 6, top + offset + 13, f"{count:,}", size=12, bold=offset == 4)
        svg.text(
            width - 16,
            top + row / 2 + 4,
            _fit(pair.change, change_width - 12, 13, bold=True),
            size=13,
            fill=CHANGE_INK[pair.tone],
            bold=True,
            anchor="end",
        )
        svg.rect(16, top + row - 1, width - 32, 1, RULE)
    y += row * len(pairs) + 14
    return svg.render(_callout(svg, y, callout))
