"""Listens from other sources than Spotify: Last.fm and ListenBrainz exports, and a
ListenBrainz-compatible door (``scrobble-server``) that scrobblers submit to.

Each module holds one thing: ``listen`` the typed record every reader yields, ``lastfm`` and
``listenbrainz`` the readers, ``detect`` which source a path is, ``names`` and ``matching``
the rules that count a listen once across sources, ``submission``, ``inbox``, ``now_playing``,
``server`` and ``command`` the door (its tokens are the listeners': ``users/scrobble_tokens.py``). Nothing here writes the warehouse: the door lands listens in the lake's
inbox, and merging them into ``plays`` is the import's and the pipeline's job.
"""
