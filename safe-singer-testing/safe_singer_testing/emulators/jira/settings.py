"""What the Jira emulator serves and which adversity it adds; every switch can change live."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JiraSettings:
    # the data set
    issue_count: int = 60
    projects: tuple[str, ...] = ("ALPHA", "BETA", "GAMMA")
    first_updated_ms: int | None = None  # default: so the last seeded issue is 2 hours old
    spacing_ms: int = 61_117  # seeded issues' `updated` step (not a round minute on purpose)
    seed: int = 7
    # the site
    deployment: str = "Cloud"  # or "Server" (Data Center: /rest/api/2/search with startAt)
    clock_ahead_ms: int = 0  # Jira's clock runs this far ahead of the host's (the tap's)
    time_zone: str = "America/Los_Angeles"  # the API user's zone: rendering and JQL literals
    email: str = "bot@example.com"
    api_token: str = "emulator-api-token"
    access_token: str = "emulator-bearer-token"
    tls: bool = False
    admin: bool = True  # the API user has "Administer Jira" (else admin endpoints answer 403)
    # Data Center's major version: 10 removed /rest/api/2/auditing/record (JRASERVER-78785)
    dc_major_version: int = 9
    # paging, as Jira caps it
    page_cap_fields: int = 100
    page_cap_ids: int = 5000
    # search/jql "may return fewer items per page" than maxResults (Cloud REST v3 docs):
    # pages shrink by a server-chosen amount even when more issues remain
    server_chosen_page_size: bool = True
    # comments and changelog histories an issue embeds; None: the deployment's own
    # (render.embedded), a number: that many of both, on any deployment
    embedded_limit: int | None = None
    comment_page_cap: int = 100
    changelog_page_cap: int = 100
    # histories GET issue?expand=changelog returns; None: the deployment's (routes.issue_get)
    issue_changelog_cap: int | None = None
    worklog_page_cap: int = 1000
    token_ttl_s: float = 600.0  # on Jira's clock: `advance()` expires tokens too
    # adversity
    latency_ms: int = 0
    index_lag_ms: int = 0  # search sees writes this much later (Jira's clock)...
    instant_index_share: float = 0.5  # ...except this share of them, searchable at once
    bulkfetch_error_every: int = 0  # every Nth id asked of issue/bulkfetch is an `issueErrors`
    bulkfetch_errors_once: bool = False  # the first bulkfetch call answers only issueErrors
    rate_limit_every: int = 0  # every Nth request answers 429
    retry_after_s: int = 1
    rate_limit_storm: tuple[int, int] | None = None  # (first request number, how many 429s)
    rate_limit_budget: int = 0  # per second; X-RateLimit-* headers and 429 beyond it
    # Jira names X-RateLimit-Reset to the minute; a pacing test may ask for the second
    reset_to_the_second: bool = False
    error_every: int = 0  # every Nth request answers 500, 502 or 503 in turn
    drop_every: int = 0  # every Nth request: connection closed without an answer
    slow_every: int = 0  # every Nth request answers after slow_s
    slow_s: float = 0.5
    omit_is_last_every: int = 0  # every Nth last search page has no `isLast`
    repeat_token_once: bool = False  # one search page hands back the token it was given
    expire_token_once: bool = False  # the first page token presented is "expired"
    # the first page with fields leaves out one issue it should hold: search is eventually
    # consistent across index shards (the next query sees it)
    omit_issue_once: bool = False
    # id-only search pages answer wrongly: "empty" ({"issues": []}), "malformed" ({}) or
    # "error" (500): what a proxy, a permission change or an outage can make of them
    listing_fault: str | None = None
    churn_every_searches: int = 0  # other users write every N search pages
    churn_edits: int = 1
    churn_deletes: int = 0
    churn_moves: int = 0
    churn_creates: int = 0
