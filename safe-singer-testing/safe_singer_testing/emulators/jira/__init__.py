"""A Jira Cloud / Data Center REST emulator: a real HTTP server on 127.0.0.1, port 0.

    with JiraEmulator(issue_count=200, rate_limit_every=50) as jira:
        config = jira.tap_config()          # settings for tap-jira-safe
        ...                                 # run the tap
        truth = jira.live_issues()          # {issue id: updated ms}
        gone = jira.deleted_issue_ids()

``jira.dataset`` edits, moves and deletes issues while a sync runs; ``jira.on_search`` is
called after every search page; ``jira.stats`` counts what was served.
"""

from safe_singer_testing.emulators.jira.server import JiraEmulator, Stats
from safe_singer_testing.emulators.jira.settings import JiraSettings

__all__ = ["JiraEmulator", "JiraSettings", "Stats"]
