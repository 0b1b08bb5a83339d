"""``spotify-assets redact-lake``: take the IP addresses out of copies an older import landed.

Imports before issue 14 landed export files byte for byte (``raw/exports/``) and quarantined
rows with their IP addresses (``quarantine/exports/``). This command gives those files the
form a new import lands (``redaction``) **at the same paths**, so a later import of the same
export still finds its files there and writes nothing.

The lake is create-only, so a file is replaced in steps that never leave its content only in
memory: the redacted bytes are written to ``redactions/staging/<path>`` and read back, the
record ``redactions/<path>.json`` (original and new sha256, what was removed) is written, the
original is removed, the redacted bytes are created at the path and read back, and only then
is the staging copy removed. A run cut short anywhere leaves the original or a verified
staging copy; the next run finishes from there. A second run changes nothing.

On GCS removing needs ``storage.objects.delete``, which the pipeline's service account does
not have (terraform/iam.tf): run this with an operator's credentials (a bucket owner's
``gcloud auth application-default login``). Without them it stops at the first removal,
says so, and leaves the staged copy for the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field

from google.api_core.exceptions import Forbidden

from spotify_assets.imports.landing import redaction_record
from spotify_assets.imports.redaction import Redacted, RedactionError, redact, redact_lines
from spotify_assets.lake_layout import (
    EXPORTS_QUARANTINE_PREFIX,
    RAW_EXPORTS_PREFIX,
    REDACTIONS_STAGING_PREFIX,
)
from spotify_assets.resources.lake import LakeResource


class LakeRedactionError(RuntimeError):
    """A step of a replacement did not verify; the original (or its staged copy) is kept."""


@dataclass
class LakeRedaction:
    """What ``redact_lake`` found and changed."""

    files_checked: int = 0
    files_redacted: list[str] = field(default_factory=list)
    rows_changed: int = 0
    fields_removed: int = 0
    #: Replacements an earlier, interrupted run had staged and this one finished.
    resumed: int = 0
    errors: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"Checked {self.files_checked} lake files for IP addresses: redacted {len(self.files_redacted)} "
            f"({self.rows_changed:,} rows, {self.fields_removed:,} IP address fields removed)"
        ]
        if self.resumed:
            lines.append(f"  finished {self.resumed} replacement(s) an interrupted run had staged")
        lines += [f"  redacted {path}" for path in self.files_redacted]
        lines += [f"  ERROR {e}" for e in self.errors]
        if not self.files_redacted and not self.errors:
            lines.append("  nothing to do: no file in the lake holds an IP address")
        return "\n".join(lines)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(lake: LakeResource, path: str, data: bytes) -> None:
    """Create ``path`` with ``data`` (or accept identical bytes there) and read it back."""
    lake.write_bytes(path, data)
    if _sha(lake.read_bytes(path)) != _sha(data):
        raise LakeRedactionError(f"{lake.uri(path)} does not read back as written")


def _finish(lake: LakeResource, path: str, staged: bytes) -> None:
    """The steps after the original is gone: the redacted bytes at ``path``, then no staging copy."""
    _put(lake, path, staged)
    lake.remove(f"{REDACTIONS_STAGING_PREFIX}{path}")


def _replace(lake: LakeResource, path: str, original: bytes, copy: Redacted) -> None:
    _put(lake, f"{REDACTIONS_STAGING_PREFIX}{path}", copy.data)
    record_path, record = redaction_record(path, original, copy)
    if not lake.exists(record_path):
        lake.write_bytes(record_path, record)
    if _sha(lake.read_bytes(path)) != _sha(original):  # changed since it was read: leave it
        raise LakeRedactionError(f"{lake.uri(path)} changed while it was being redacted")
    lake.remove(path)
    _finish(lake, path, copy.data)


def _resume(lake: LakeResource, report: LakeRedaction) -> None:
    """Finish replacements an interrupted run staged (the staged copy was verified when written)."""
    for staged_path in lake.list(REDACTIONS_STAGING_PREFIX.rstrip("/")):
        path = staged_path[len(REDACTIONS_STAGING_PREFIX) :]
        staged = lake.read_bytes(staged_path)
        if not lake.exists(path):  # cut short after removing the original
            _finish(lake, path, staged)
            report.resumed += 1
        elif _sha(lake.read_bytes(path)) == _sha(staged):  # cut short before removing the staged copy
            lake.remove(staged_path)
            report.resumed += 1
        # else: cut short before removing the original; the scan below redacts it again


def redact_lake(lake: LakeResource) -> LakeRedaction:
    """Redact every raw export copy and quarantine file in ``lake`` that holds an IP address."""
    report = LakeRedaction()
    _resume(lake, report)
    # The folders whose files can hold IP addresses: the raw copies and the quarantined rows.
    for prefix, cut in ((RAW_EXPORTS_PREFIX, redact), (EXPORTS_QUARANTINE_PREFIX, redact_lines)):
        for path in lake.list(prefix.rstrip("/")):
            report.files_checked += 1
            original = lake.read_bytes(path)
            try:
                copy = cut(original)
            except RedactionError as exc:
                report.errors.append(f"{path}: {exc}; left as it is")
                continue
            if not copy.fields:
                continue
            _replace(lake, path, original, copy)
            report.files_redacted.append(path)
            report.rows_changed += copy.rows
            report.fields_removed += copy.fields
    return report


def redact_lake_command(argv: list[str]) -> int:
    """``spotify-assets redact-lake``: the lake of the active deployment (local folder or GCS)."""
    parser = argparse.ArgumentParser(
        prog="spotify-assets redact-lake", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where the lake lives (default: $SPOTIFY_DATA_DIR, else .data/ at the repo root)",
    )
    args = parser.parse_args(argv)
    from spotify_assets.deployments import command_settings, command_stores

    settings = command_settings(parser.prog, args.data_dir)
    if settings is None:
        return 2
    with command_stores(settings, "lake") as stores:
        lake: LakeResource = stores.lake
        try:
            report = redact_lake(lake)
        except Forbidden as exc:
            print(
                f"spotify-assets redact-lake: the bucket refused a removal ({exc.message}). The pipeline's "
                "service account cannot delete objects, by design (terraform/iam.tf): run this again "
                "with an operator's credentials. The staged copies are kept; the next run finishes them.",
                file=sys.stderr,
            )
            return 1
    print(report.render())
    return 1 if report.errors else 0
