"""Errors of the Spotify client. Messages say what to do next and never carry tokens or secrets."""

from __future__ import annotations


class SpotifyError(RuntimeError):
    """Base class for every failure talking to Spotify (or the sandbox)."""


class SpotifyAPIError(SpotifyError):
    """The API answered with an error, or with something that is not valid JSON."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class SpotifyServerError(SpotifyAPIError):
    """5xx, timeouts or connection failures that outlasted every retry."""


class SpotifyRateLimited(SpotifyAPIError):
    """429 with a Retry-After longer than we are willing to wait (or too many 429s in a row)."""

    def __init__(self, message: str, *, retry_after_s: float, endpoint: str | None = None) -> None:
        super().__init__(message, status=429, endpoint=endpoint)
        self.retry_after_s = retry_after_s


class SpotifyAuthError(SpotifyError):
    """Credentials were rejected: bad client id/secret, or a refresh token that is revoked or rotated away."""


class AudioFeaturesUnavailable(SpotifyAPIError):
    """Spotify answered 403 for /v1/audio-features (apps created after Nov 2024 lose access)."""


class SpotifyWaitPastDeadline(SpotifyError):
    """A wait (a Retry-After, the app's shared wait, a retry's backoff) would end after the deadline
    the caller set (``client.waits_until``): not waited, and the call not made. The caller tries
    again later (a sensor tick leaves the listener for the next tick)."""

    def __init__(self, message: str, *, wait_s: float, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.wait_s = wait_s
        self.endpoint = endpoint
