"""The Wrapped summary card as a PNG, for sharing (drawn with Pillow, which Streamlit needs anyway).

Drawn on the server rather than screenshotted in the browser, so the download is the same
image on every device and needs no JavaScript.

Text is laid out first (``layout``) and drawn second: every text gets a box, wraps onto as
many lines as the box allows and shrinks to a smaller size before anything is cut, so a
name of any length is shown whole (a cut "All The Gardens - The G…" was the defect). Only a
text too long for its box at the smallest size ends in an ellipsis. The cover of the year's
top track sits in the top corner; without one (none known, not an image Pillow reads, not
reachable) a drawn placeholder takes its place.
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

WIDTH, HEIGHT = 1080, 1350
BACKGROUND = "#121212"
ACCENT = "#1DB954"
TEXT = "#FFFFFF"
MUTED = "#B3B3B3"
PLACEHOLDER = "#2A2A2A"
MARGIN = 72
COVER = 300
#: The smallest size text shrinks to before it wraps further or ends in an ellipsis.
MIN_SIZE = 22
#: Covers larger than this are not read (a card needs 300 px; a CDN cover is about 60 KB).
MAX_COVER_BYTES = 5_000_000
#: A cover that does not arrive in this time leaves the placeholder (the download must not hang).
COVER_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class WrappedSummary:
    """What the card shows; the page fills it from the same queries it displays."""

    year: int
    minutes: float
    plays: int
    top_artists: list[str] = field(default_factory=list)
    top_tracks: list[str] = field(default_factory=list)
    busiest_day: str = "-"
    longest_streak: str = "-"
    discoveries: str = "-"
    mood: str = ""
    #: The cover to show (any format Pillow reads), ``None`` for the drawn placeholder.
    cover: bytes | None = None
    #: The first day of the year the plays cover, when the history starts after 1 January.
    starts: date | None = None
    #: The year is not over yet (this year's card).
    so_far: bool = False

    @property
    def heading(self) -> str:
        """ "My 2024 in music", saying when the year is partial ("from March", "so far"): a
        card of six weeks must not read as a whole year's once it is shared without the page."""
        since = (
            f" from {self.starts:%B}"
            if self.starts is not None and self.starts > date(self.year, 1, 1)
            else ""
        )
        return f"My {self.year} in music{since}{' so far' if self.so_far else ''}"


@dataclass(frozen=True)
class Placed:
    """One text on the card: its lines, font size, colour and box (left, top, right, bottom)."""

    text: str
    lines: tuple[str, ...]
    size: int
    fill: str
    box: tuple[int, int, int, int]

    @property
    def shown(self) -> str:
        """The text as the lines show it (words joined again), to compare with ``text``."""
        return " ".join(self.lines)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _line_height(size: int) -> int:
    return round(size * 1.22)


def _width(text: str, size: int) -> float:
    return float(_font(size).getlength(text))


def _wrap(text: str, size: int, width: int) -> list[str]:
    """Words onto lines of at most ``width`` px; a word wider than a line is split by characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if _width(candidate, size) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        while _width(word, size) > width:  # one long word ("Aaaaaaah…"): break it where it must
            cut = len(word)
            while cut > 1 and _width(word[:cut], size) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [""]


def fit(text: str, size: int, width: int, max_lines: int, min_size: int = MIN_SIZE) -> tuple[int, list[str]]:
    """The largest size from ``size`` down to ``min_size`` at which ``text`` wraps into
    ``max_lines`` lines of ``width`` px, and those lines. Beyond that (a text of hundreds of
    characters) the smallest size's last line ends in an ellipsis."""
    for s in range(size, min_size - 1, -2):
        lines = _wrap(text, s, width)
        if len(lines) <= max_lines:
            return s, lines
    lines = _wrap(text, min_size, width)[:max_lines]
    last = lines[-1]
    while last and _width(last + "…", min_size) > width:
        last = last[:-1]
    lines[-1] = last.rstrip() + "…"
    return min_size, lines


def _place(
    out: list[Placed], text: str, x: int, y: int, width: int, size: int, fill: str, max_lines: int
) -> int:
    """Lay ``text`` out at (x, y); returns the y below it."""
    s, lines = fit(text, size, width, max_lines)
    bottom = y + _line_height(s) * len(lines)
    out.append(Placed(text, tuple(lines), s, fill, (x, y, x + width, bottom)))
    return bottom


#: Where the cover goes: the top right corner.
COVER_BOX = (WIDTH - MARGIN - COVER, MARGIN, WIDTH - MARGIN, MARGIN + COVER)
#: The footer's top: nothing else may reach below it.
FOOTER_Y = HEIGHT - 100


def layout(s: WrappedSummary) -> list[Placed]:
    """Every text of the card in its box (see the module docstring), top to bottom: at the
    largest scale whose lists and figures end above the footer (long names take more lines)."""
    for scale in (1.0, 0.9, 0.8, 0.7, 0.6):
        placed = _layout(s, scale)
        if max(p.box[3] for p in placed[:-1]) <= FOOTER_Y:
            break
    return placed


def _layout(s: WrappedSummary, scale: float) -> list[Placed]:
    out: list[Placed] = []

    def size(px: int) -> int:
        return max(MIN_SIZE, round(px * scale))

    head = COVER_BOX[0] - MARGIN - 40  # the text beside the cover
    y = _place(out, s.heading, MARGIN, MARGIN, head, size(64), ACCENT, 2) + 16
    y = _place(out, f"{s.minutes:,.0f} minutes", MARGIN, y, head, size(88), TEXT, 2) + 8
    y = _place(out, f"{s.plays:,} plays", MARGIN, y, head, size(40), MUTED, 1)
    y = max(y, COVER_BOX[3]) + 48
    column = (WIDTH - 3 * MARGIN) // 2
    bottoms = []
    for x, title, names in (
        (MARGIN, "Top artists", s.top_artists),
        (2 * MARGIN + column, "Top tracks", s.top_tracks),
    ):
        row = _place(out, title, x, y, column, size(40), ACCENT, 1) + 12
        for i, name in enumerate(names[:5], start=1):
            row = _place(out, f"{i}. {name}", x, row, column, size(34), TEXT, 3) + 10
        bottoms.append(row)
    y = max(bottoms) + 30
    label_w = 300
    value_x = MARGIN + label_w + 30
    for label, value in (
        ("Busiest day", s.busiest_day),
        ("Longest streak", s.longest_streak),
        ("Discovered", s.discoveries),
        ("Mood", s.mood or "-"),
    ):
        _place(out, label, MARGIN, y + 2, label_w, size(32), MUTED, 1)
        y = _place(out, value, value_x, y, WIDTH - MARGIN - value_x, size(34), TEXT, 2) + 14
    _place(out, "Spotify Listening Platform", MARGIN, FOOTER_Y, WIDTH - 2 * MARGIN, 28, MUTED, 1)
    return out


def _cover_image(data: bytes | None) -> Image.Image | None:
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB").resize((COVER, COVER))
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # SVG (Pillow reads no vector images), a truncated download...


def _placeholder(draw: ImageDraw.ImageDraw) -> None:
    """A grey square with a note, as the dashboard's own placeholder."""
    left, top, right, bottom = COVER_BOX
    draw.rounded_rectangle(COVER_BOX, radius=16, fill=PLACEHOLDER)
    cx, cy, r = (left + right) // 2, (top + bottom) // 2, COVER // 10
    draw.ellipse((cx - 2 * r, cy, cx, cy + 2 * r), fill=MUTED)
    draw.rectangle((cx - 6, cy - 3 * r, cx, cy + r), fill=MUTED)
    draw.polygon(
        [(cx, cy - 3 * r), (cx + 2 * r, cy - 2 * r), (cx + 2 * r, cy - r), (cx, cy - 2 * r)], fill=MUTED
    )


def summary_png(s: WrappedSummary) -> bytes:
    """The card as PNG bytes (1080 x 1350, a phone-story-friendly 4:5)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(img)
    cover = _cover_image(s.cover)
    if cover is None:
        _placeholder(draw)
    else:
        img.paste(cover, COVER_BOX[:2])
    for placed in layout(s):
        x, y = placed.box[:2]
        for i, line in enumerate(placed.lines):
            draw.text((x, y + i * _line_height(placed.size)), line, fill=placed.fill, font=_font(placed.size))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@lru_cache(maxsize=64)
def cover_bytes(url: str | None) -> bytes | None:
    """The bytes of a cover URL: a base64 ``data:`` image, or an http(s) download (Spotify's CDN);
    ``None`` when there is none or it cannot be had in ``COVER_TIMEOUT_S`` (offline: the placeholder).

    Cached per URL: a cover never changes under its URL, and the page reruns on every click.
    """
    if not url:
        return None
    if url.startswith("data:image/"):
        head, _, payload = url.partition(",")
        if not head.endswith(";base64"):
            return None
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
    if not url.startswith(("https://", "http://")):
        return None
    try:
        with urllib.request.urlopen(url, timeout=COVER_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            data: bytes = response.read(MAX_COVER_BYTES + 1)
    except (OSError, ValueError):
        return None
    return data if len(data) <= MAX_COVER_BYTES else None
