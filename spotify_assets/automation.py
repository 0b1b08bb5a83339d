"""Automation conditions shared by the assets that follow the plays table."""

import dagster as dg

#: Run after every write to the plays table, whoever made it: the hourly run's ``bq_plays``
#: and a history import (the ``history_import`` asset, or ``spotify-assets import``, which
#: reports a materialization of it). ``eager()`` is not used because it waits while any
#: dependency is missing, and ``history_import`` stays missing for anyone who never imports.
#: ``since_last_handled`` keeps an update pending through ticks where a run is in progress.
#: A run that already targets the asset (the hourly job, for the top ten) does not trigger it
#: again (``any_deps_updated`` ignores updates made by runs that target it), and a failed
#: blocking check on ``bq_plays`` holds it back, as it does inside the job.
AFTER_PLAYS_WRITE = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
    )
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after every write to the plays table")
