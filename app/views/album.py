"""The album page (`/album?id=<Spotify album id>`, or `?key=<artist>|<album>` without one); see ``app/detail.py``."""

from app import detail

detail.render("album")
