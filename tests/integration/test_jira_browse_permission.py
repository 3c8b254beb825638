"""A project the API user can no longer browse is not a project whose issues were deleted.

Jira answers 404 alike for a deleted issue and for one the user may not see, and search leaves
both out. Before this rule, losing Browse Projects on a project (a permission scheme changed,
the user left a group) made its issues "proven" deletes, within max_delete_fraction, and the
target deleted them downstream. Cloud and Server/DC each answer the permission check their own
way (havePermission false; a 404): both must keep the issues.
"""

from __future__ import annotations

from typing import Any

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import TapRun, issues_only_catalog, run_tap

DEPLOYMENTS = ["Cloud", "Server"]


def deletes(run: TapRun) -> set[str]:
    return {r["id"] for r in run.records("issues") if r.get("_sdc_deleted_at")}


def known_ids(run: TapRun) -> set[str]:
    runs = run.final_state["bookmarks"]["issues"]["live_issue_ids"]
    return {str(i) for first, last in runs for i in range(first, last + 1)}


def browse_warnings(run: TapRun, project: str) -> list[str]:
    return [
        line
        for line in run.stderr.splitlines()
        if "WARNING" in line and f"cannot browse project {project}" in line
    ]


def tap_config(jira: JiraEmulator, **extra: Any) -> dict[str, Any]:
    return jira.tap_config(
        reconcile_deletes=True, search_lag_seconds=0, max_delete_fraction=0.5, **extra
    )


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_issues_of_a_project_no_longer_browsable_are_kept(deployment: str) -> None:
    with JiraEmulator(issue_count=30, deployment=deployment) as jira:
        config = tap_config(jira)
        first = run_tap(config, catalog=issues_only_catalog())
        assert first.returncode == 0, first.stderr[-2000:]
        beta = set(jira.live_issues({"BETA"}))
        victim = min(int(i) for i in jira.live_issues({"ALPHA"}))
        jira.dataset.delete_issue(victim)  # a real delete in a browsable project
        jira.dataset.revoke_browse("BETA")

        second = run_tap(config, state=first.final_state, catalog=issues_only_catalog())

        assert second.returncode == 0, second.stderr[-2000:]
        assert deletes(second) == {str(victim)}, "issues of an unbrowsable project deleted"
        assert beta <= known_ids(second), "the hidden issues left the state"
        warned = browse_warnings(second, "BETA")
        assert len(warned) == 1, second.stderr[-3000:]
        assert f"{len(beta)} issue(s)" in warned[0] and "confirm_deleted_projects" in warned[0]

        jira.dataset.grant_browse("BETA")  # access back: the same issues, nothing deleted
        third = run_tap(config, state=second.final_state, catalog=issues_only_catalog())
        assert third.returncode == 0, third.stderr[-2000:]
        assert deletes(third) == set()
        assert known_ids(third) == set(jira.live_issues())
        assert browse_warnings(third, "BETA") == []


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_project_confirmed_deleted_has_its_issues_deleted(deployment: str) -> None:
    with JiraEmulator(issue_count=30, deployment=deployment) as jira:
        first = run_tap(tap_config(jira), catalog=issues_only_catalog())
        assert first.returncode == 0, first.stderr[-2000:]
        gamma = set(jira.live_issues({"GAMMA"}))
        jira.dataset.revoke_browse("GAMMA")  # as a deleted project looks through the API
        config = tap_config(jira, confirm_deleted_projects=["GAMMA"])

        second = run_tap(config, state=first.final_state, catalog=issues_only_catalog())

        assert second.returncode == 0, second.stderr[-2000:]
        assert deletes(second) == gamma
        assert not gamma & known_ids(second)
        assert browse_warnings(second, "GAMMA") == []


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_state_from_before_the_rule_learns_each_issues_project(deployment: str) -> None:
    """A state written before projects were recorded: the next run's id listing reads each
    issue's project, so a project lost after that run keeps its issues (no lookback: that run
    emits only the newest issues, of BETA and GAMMA, so only the listing tells ALPHA's)."""
    with JiraEmulator(issue_count=30, deployment=deployment) as jira:
        config = tap_config(jira, lookback_minutes=0)
        first = run_tap(config, catalog=issues_only_catalog())
        assert first.returncode == 0, first.stderr[-2000:]
        old_state = first.final_state
        assert old_state["bookmarks"]["issues"].pop("issue_projects")
        upgraded = run_tap(config, state=old_state, catalog=issues_only_catalog())
        assert upgraded.returncode == 0, upgraded.stderr[-2000:]
        alpha = set(jira.live_issues({"ALPHA"}))
        jira.dataset.revoke_browse("ALPHA")

        later = run_tap(config, state=upgraded.final_state, catalog=issues_only_catalog())

        assert later.returncode == 0, later.stderr[-2000:]
        assert deletes(later) == set()
        assert alpha <= known_ids(later)
        assert len(browse_warnings(later, "ALPHA")) == 1, later.stderr[-3000:]
