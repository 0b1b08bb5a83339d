"""The track page (`/track?id=<Spotify track id>`); see ``app/detail.py``."""

from app import detail

detail.render("track")
