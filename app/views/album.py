"""The album page (`/album?id=<Spotify album id>`); see ``app/detail.py``."""

from app import detail

detail.render("album")
