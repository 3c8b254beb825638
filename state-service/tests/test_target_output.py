"""What `run --tap/--target` does with each line the target prints: only object states land.

Anything else (a JSON scalar or array, a STATE message without an object value, a RECORD, bytes
that are not UTF-8) fails the run loudly, naming the line, without storing that line; the last
good bookmark stays. An unexpected error while piping is recorded as a FAILED run and releases
the lease, like any other failure.
"""

from __future__ import annotations

import pytest


def target(svc, *lines: str, raw: str = "") -> str:
    """A target that drains its input, then prints ``lines``, then ``raw`` (a printf format)."""
    path = svc.workdir / "target.sh"
    body = "".join(f"printf '%s\\n' '{line}'\n" for line in lines) + f"printf '{raw}'\n"
    path.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}")
    path.chmod(0o755)
    return str(path)


def run(svc, target_cmd: str, **env: str):
    return svc.cli("run", "p", *svc.FAST, "--tap", "echo hi", "--target", target_cmd, **env)


def assert_failed_and_released(svc, proc, needle: str) -> None:
    assert proc.returncode != 0, proc.stdout
    last = svc.runs("p")[-1]
    assert last["status"] == "FAILED" and needle in last["error"], last
    assert needle in proc.stderr
    assert svc.holder("p") == "-"  # the lease is released, not left to expire


@pytest.mark.parametrize(
    "bad",
    [
        "42",
        "[1, 2]",
        '"text"',
        '{"type": "STATE", "value": 42}',
        '{"type": "STATE"}',
        '{"type": "RECORD", "stream": "s", "record": {}}',
        "not json at all",
    ],
)
def test_a_line_that_is_not_an_object_state_fails_the_run_and_is_not_stored(svc, bad) -> None:
    proc = run(svc, target(svc, '{"bookmarks": {"a": 1}}', bad))
    assert_failed_and_released(svc, proc, "target stdout line 2")
    assert svc.bookmark("p") == {"bookmarks": {"a": 1}}


def test_a_full_state_message_with_an_object_value_is_stored_as_its_value(svc) -> None:
    proc = run(svc, target(svc, '{"type": "STATE", "value": {"b": [1, "x", null, true]}}'))
    assert proc.returncode == 0, proc.stderr
    assert svc.bookmark("p") == {"b": [1, "x", None, True]}


def test_full_state_message_numbers_keep_every_digit(svc) -> None:
    value = '{"v": 0.29999999999999999999, "big": 123456789012345678901234567890, "e": 1.5e-400}'
    proc = run(svc, target(svc, f'{{"type": "STATE", "value": {value}}}'))
    assert proc.returncode == 0, proc.stderr
    stored = svc.cli("state", "get", "p").stdout
    for number in ("0.29999999999999999999", "123456789012345678901234567890", "1.5E-400"):
        assert number in stored, stored


def test_target_output_that_is_not_utf8_fails_the_run_and_releases_the_lease(svc) -> None:
    proc = run(svc, target(svc, '{"bookmarks": {"a": 1}}', raw="\\377\\n"))
    assert_failed_and_released(svc, proc, "target stdout line 2: not UTF-8")
    assert svc.bookmark("p") == {"bookmarks": {"a": 1}}
    assert run(svc, target(svc, '{"bookmarks": {"a": 2}}')).returncode == 0  # no --force needed


def test_an_unexpected_error_while_storing_a_bookmark_is_recorded_and_releases_the_lease(
    svc,
) -> None:
    proc = run(
        svc,
        target(svc, '{"bookmarks": {"a": 1}}'),
        STATE_SERVICE_FAULT="error@bookmark:after-commit",
    )
    assert_failed_and_released(svc, proc, "injected error at bookmark:after-commit")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if " failed: " in line]
    assert len(failed) == 1 and "a bug in state-service" in failed[0], proc.stderr


def test_a_bugs_traceback_comes_at_debug_level_and_an_expected_failure_is_no_bug(svc) -> None:
    """Debug level (STATE_SERVICE_DEBUG=1) adds the bug's traceback before the same one line;
    an expected failure (a target line that is not UTF-8) never reads as a bug."""
    states = target(svc, '{"bookmarks": {"a": 1}}')
    fault = "error@bookmark:after-commit"
    proc = run(svc, states, STATE_SERVICE_FAULT=fault, STATE_SERVICE_DEBUG="1")
    assert proc.returncode == 1
    trace = proc.stderr[proc.stderr.index("Traceback (most recent call last)") :]
    assert "RuntimeError: injected error at bookmark:after-commit" in trace, proc.stderr
    assert "a bug in state-service" in proc.stderr.strip().splitlines()[-1], proc.stderr
    expected = run(svc, target(svc, raw="\\377\\n"), STATE_SERVICE_DEBUG="1")
    assert_failed_and_released(svc, expected, "target stdout line 1: not UTF-8")
    assert "a bug in state-service" not in expected.stderr and "Traceback" not in expected.stderr
