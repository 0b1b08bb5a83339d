"""Import Spotify privacy exports (extended streaming history and account data) into the plays table.

The API only ever shows the latest 50 plays; the exports hold a listener's whole history. The
import reads each file with DuckDB's JSON reader (bounded memory), needs no API call per row,
dedupes against plays the poller already saw, lands its plays in the lake before merging them,
and reports counts that add up (``rows_read == added + duplicates + quarantined``).
"""
