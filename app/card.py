"""The Wrapped summary card as a PNG, for sharing (drawn with Pillow, which Streamlit needs anyway).

Drawn on the server rather than screenshotted in the browser, so the download is the same
image on every device and needs no JavaScript.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1080, 1350
BACKGROUND = "#121212"
ACCENT = "#1DB954"
TEXT = "#FFFFFF"
MUTED = "#B3B3B3"


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


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels (a card cannot wrap forever)."""
    font = _font(size)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def summary_png(s: WrappedSummary) -> bytes:
    """The card as PNG bytes (1080 x 1350, a phone-story-friendly 4:5)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(img)
    margin, y = 72, 72
    draw.text((margin, y), f"My {s.year} in music", fill=ACCENT, font=_font(64))
    y += 110
    draw.text((margin, y), f"{s.minutes:,.0f} minutes", fill=TEXT, font=_font(88))
    y += 110
    draw.text((margin, y), f"{s.plays:,} plays", fill=MUTED, font=_font(40))
    y += 90
    column = (WIDTH - 3 * margin) // 2
    for x, title, names in (
        (margin, "Top artists", s.top_artists),
        (2 * margin + column, "Top tracks", s.top_tracks),
    ):
        draw.text((x, y), title, fill=ACCENT, font=_font(40))
        for i, name in enumerate(names[:5], start=1):
            draw.text((x, y + 20 + 58 * i), _fit(draw, f"{i}. {name}", 34, column), fill=TEXT, font=_font(34))
    y += 20 + 58 * 6 + 40
    for label, value in (
        ("Busiest day", s.busiest_day),
        ("Longest streak", s.longest_streak),
        ("Discovered", s.discoveries),
        ("Mood", s.mood or "-"),
    ):
        draw.text((margin, y), label, fill=MUTED, font=_font(32))
        draw.text(
            (margin + 330, y), _fit(draw, value, 34, WIDTH - 2 * margin - 330), fill=TEXT, font=_font(34)
        )
        y += 64
    draw.text((margin, HEIGHT - 100), "Spotify Listening Platform", fill=MUTED, font=_font(28))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
