"""The track page (`/track?id=<Spotify track id>`, or `?key=<artist>|<track>` without one); see ``app/detail.py``."""

from app import detail

detail.render("track")
