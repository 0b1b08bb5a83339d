"""The names of the sources a play can be seen in: the one home of ``plays.sources``' vocabulary.

Its own module, importing nothing, because every layer needs the names: the scrobble readers
(``scrobbles/listen.py`` re-exports them), the plays table's SQL (``tables/plays.py``) and the
Spotify dedupe (``resources/dedupe.py``), which the scrobbles package sits above.
"""

SPOTIFY = "spotify"
#: A Last.fm CSV and a Last.fm JSON page are the same scrobbles, so they share a name.
LASTFM = "lastfm"
LISTENBRAINZ = "listenbrainz"
#: Listens submitted to this installation's own door (``scrobble-server``).
SCROBBLE_SERVER = "scrobble_server"
#: The scrobblers: a play only they recorded has one of these as its ``source`` (Spotify's rows
#: say api, extended_export or account_export).
SCROBBLE_SOURCES = (LASTFM, LISTENBRAINZ, SCROBBLE_SERVER)
