"""The household: the listeners this installation polls (registry and ``spotify-assets users``)."""

from spotify_assets.users.registry import User, UserError, UserRegistry

__all__ = ["User", "UserError", "UserRegistry"]
