"""The errors this tap raises on purpose, decided by type (never by the words of a message).

Every deliberate refusal derives from :class:`TapJiraSafeError`: the console script prints
it as one line and exits non-zero; anything else is a bug and keeps its traceback. HTTP
answers are mapped to these types in one place, ``JiraStream.validate_response``, as
tap-github maps status codes there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class TapJiraSafeError(Exception):
    """A deliberate refusal: the message names what failed, where, and what to do."""


class SettingsError(TapJiraSafeError):
    """A setting that cannot work (``request_timeout: 0``, an ``ftp://`` domain, ...)."""


@dataclass(frozen=True)
class JiraAnswer:
    """What Jira said when it refused: status, endpoint (``METHOD /path``), its messages."""

    status: int
    endpoint: str
    messages: tuple[str, ...] = ()
    field_errors: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        said = "; ".join(self.messages) or "; ".join(
            f"{name}: {text}" for name, text in self.field_errors.items()
        )
        return f"{self.endpoint} answered {self.status}" + (f": {said}" if said else "")


class JiraApiError(TapJiraSafeError):
    """Jira answered a status the tap does not retry; carries the answer."""

    def __init__(self, answer: JiraAnswer, advice: str = "") -> None:
        super().__init__(answer.describe() + (f"; {advice}" if advice else ""))
        self.answer = answer

    @property
    def status(self) -> int:
        return self.answer.status


class JiraNotFound(JiraApiError):
    """404 with Jira's error object: the resource does not exist, or this user may not see it
    (a 404 page from anything in front of Jira is a plain :class:`JiraApiError`)."""


class JiraCursorExpired(JiraApiError):
    """400 to a request that carried a page token, naming the token: restart the query."""


class JiraRequestFailed(TapJiraSafeError):
    """A request that failed every try (server errors, dropped connections, timeouts)."""


class JiraUnreachable(TapJiraSafeError):
    """The site's name does not resolve or its scheme is not HTTP(S): retrying cannot help."""


class JiraWaitTooLong(TapJiraSafeError):
    """Jira asked for a wait longer than ``max_server_wait_seconds`` allows."""


class JiraBadAnswer(TapJiraSafeError):
    """Status 200 but not the documented shape: HTML, truncated JSON, a ``{}`` for a list."""


class RepeatedPageToken(TapJiraSafeError):
    """The server handed back a page token it had handed out before."""


class ReconcileRefused(TapJiraSafeError):
    """The listing cannot be trusted to delete anything: stop, emit nothing, keep state."""


class IncompleteRead(TapJiraSafeError):
    """A read returned fewer items than Jira said exist (comments, changelogs, a window)."""
