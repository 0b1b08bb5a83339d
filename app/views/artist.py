"""The artist page (`/artist?id=<Spotify artist id>`); see ``app/detail.py``."""

from app import detail

detail.render("artist")
