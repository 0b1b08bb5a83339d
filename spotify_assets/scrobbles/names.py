"""How names are compared across sources: the normalisation rules, exactly.

Spotify, Last.fm and ListenBrainz spell the same track differently: letter case, spacing,
typographic quotes, and version suffixes that one source keeps and another drops (Spotify
writes "Help! - Remastered 2009", Last.fm's corrections often "Help!"). Names are compared,
never stored, in this form: the plays keep what each source wrote.

Rules, in order, for every name:

1. Unicode NFKC (full-width letters, ligatures, non-breaking spaces become plain ones).
2. Typographic quotes and dashes become ASCII: U+2018, U+2019, U+201B, U+2032 -> ``'``;
   U+201C, U+201D, U+201E, U+2033 -> ``"``; U+2010 to U+2015 (hyphens, en and em dashes) -> ``-``.
3. Case folding (``str.casefold``: ``ß`` equals ``ss``, more than ``lower``).
4. Every run of whitespace becomes one space; leading and trailing spaces go.

Then, for a **track** name only, one trailing suffix at a time is removed while one is there
(so "X (feat. Y) - Remastered 2011" becomes "x"), never when nothing would be left:

* a remaster note after `` - `` or in ``( )`` / ``[ ]``: ``remaster``, ``remastered``, each
  optionally preceded by a year and/or ``digital``/``digitally`` and followed by a year and/or
  ``version`` ("- Remastered 2011", "(2011 Remaster)", "[Digitally Remastered 2009 Version]");
* ``live`` alone after `` - `` or in ``( )`` / ``[ ]`` ("- Live", "(Live)"); a longer live note
  ("- Live at Wembley") stays, since it names one recording;
* a featured artist in ``( )`` / ``[ ]``: ``feat.``, ``feat``, ``ft.``, ``ft``, ``featuring``
  or ``with`` and the names after it ("(feat. Y)", "[with Z]").

And for an **artist** name only: the first artist, the text before the first ``, ``, `` & ``,
`` feat. ``, `` ft. `` or `` featuring `` (scrobblers send "A, B" or "A feat. B" where Spotify's
export names one artist). Both sides are cut the same way, so "Simon & Garfunkel" still equals
itself.
"""

from __future__ import annotations

import re
import unicodedata

_TYPOGRAPHIC = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u2033", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015", "-"),
    }
)
_SPACES = re.compile(r"\s+")

_REMASTER = r"(?:\d{4} )?(?:digital(?:ly)? )?remaster(?:ed)?(?: \d{4})?(?: version)?"
_FEATURING = r"(?:feat\.?|ft\.?|featuring|with) [^()\[\]]+"
#: The track suffixes of the module docstring, each anchored at the end of the name.
TRACK_SUFFIXES = (
    re.compile(rf" - {_REMASTER}$"),
    re.compile(rf" \({_REMASTER}\)$"),
    re.compile(rf" \[{_REMASTER}\]$"),
    re.compile(r" - live$"),
    re.compile(r" \(live\)$"),
    re.compile(r" \[live\]$"),
    re.compile(rf" \({_FEATURING}\)$"),
    re.compile(rf" \[{_FEATURING}\]$"),
)
#: Where a list of artists is cut to its first.
ARTIST_SEPARATORS = re.compile(r", | & | feat\. | ft\. | featuring ")


def fold(name: str) -> str:
    """Rules 1-4 of the module docstring: the form in which any two names are compared."""
    name = unicodedata.normalize("NFKC", name).translate(_TYPOGRAPHIC).casefold()
    return _SPACES.sub(" ", name).strip()


def track_key(name: str) -> str:
    """A track name as compared across sources: ``fold`` and the trailing suffixes removed."""
    name = fold(name)
    while True:
        for suffix in TRACK_SUFFIXES:
            shorter = suffix.sub("", name)
            if shorter != name and shorter.strip():
                name = shorter.strip()
                break
        else:
            return name


def artist_key(name: str) -> str:
    """An artist name as compared across sources: ``fold``, then the first artist of a list."""
    name = fold(name)
    first = ARTIST_SEPARATORS.split(name, maxsplit=1)[0].strip()
    return first or name
