"""``bench/dashboard_render.py``'s synthetic warehouse reaches nothing off this machine (issue 25).

Its plays carried Spotify CDN cover addresses (``i.scdn.co``): every page it renders and the
Wrapped card it draws would then ask the internet for covers, and offline the card waited out
its download timeout. They are the sandbox's inline covers now, as the pipeline stores them.
"""

from __future__ import annotations

import io

from PIL import Image

from app import card
from bench.dashboard_render import synthetic_plays
from spotify_assets_tests.fixtures.dashboard import off_loopback


def test_the_bench_plays_carry_inline_covers_one_per_album():
    plays = synthetic_plays(3_000)
    urls = plays["album_image_url"].astype(str)
    assert [u for u in urls.unique() if off_loopback(u) or not u.startswith("data:image/png;base64,")] == []
    per_album = plays.groupby("album_id")["album_image_url"].nunique()
    assert (per_album == 1).all() and urls.nunique() == len(per_album) > 1  # albums tell apart by cover
    cover = card.cover_bytes(urls.iloc[0])
    assert cover is not None
    with Image.open(io.BytesIO(cover)) as img:
        assert img.size == (640, 640)  # the largest rendition, as the pipeline keeps it
