"""The artist page (`/artist?id=<Spotify artist id>`, or `?key=<artist>` without one); see ``app/detail.py``."""

from app import detail

detail.render("artist")
