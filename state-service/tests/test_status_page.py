"""`state-service serve` in a real headless Chromium (the system package), against a live
PostgreSQL state database holding running, stale, failed and reclaimed runs.

Screenshots land in the test's folder; with STATE_SERVICE_SCREENSHOTS=DIR they are also saved
there (that is how `state-service/docs/*.png` are made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from state_service import lease as leases
from state_service.errors import DatabaseUnavailable
from state_service.store import Store

SECRET = "sekrit-pw"
INSTALL = (
    "the status-page test needs Chromium: `make browser` installs it as root "
    "(apt-get install -y chromium), or set CHROMIUM=/path/to/chrome"
)


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail(INSTALL, pytrace=False)


def browse(url: str, *mode: str) -> str:
    """Chromium headless on ``url``; its stdout (the DOM with --dump-dom)."""
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
         "--hide-scrollbars", "--window-size=1280,860", *mode, url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def screenshot(url: str, path: Path) -> None:
    browse(url, f"--screenshot={path}")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    if keep := os.environ.get("STATE_SERVICE_SCREENSHOTS"):
        shutil.copy(path, Path(keep) / path.name)


def with_password(url: str) -> str:
    """The same URL with a password in it (trust auth ignores it); it must never show."""
    return re.sub(r"//([^:@/]+)@", rf"//\1:{SECRET}@", url)


@pytest.fixture
def live_pipelines(svc) -> Iterator[None]:
    """orders: running; customers: stale; invoices: failed, counts disagree; payments: a run
    reclaimed by the next one, which succeeded."""
    release = svc.workdir / "release-orders"
    long = ["--lease-seconds", "60", "--heartbeat-seconds", "1"]
    orders = svc.spawn("run", "orders", *long, *svc.hold(release))
    stale = leases.start(svc.store, "customers", lease_seconds=1)
    leases.write_bookmark(svc.store, stale, '{"bookmarks": {"customers": {"id": 41}}}')
    dead = leases.start(svc.store, "payments", lease_seconds=1)
    failed = svc.cli(
        "run", "invoices", *svc.FAST,
        "--tap", f"{sys.executable} {svc.fixture('sdk_tap.py')}",
        "--target", f"{sys.executable} {svc.fixture('echo_target.py')}",
        ECHO_TARGET_REPORT_SHORT="2", ECHO_TARGET_EXIT="1",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    svc.wait_expired("payments")
    sdk = ["--tap", f"{sys.executable} {svc.fixture('sdk_tap.py')}"]
    sdk += ["--target", f"{sys.executable} {svc.fixture('sdk_target.py')}"]
    assert svc.cli("run", "payments", *svc.FAST, *sdk).returncode == 0
    assert svc.runs("payments")[0]["run_id"] == dead.run_id
    svc.wait_expired("customers")
    svc.wait_until("orders to hold its lease", lambda: svc.holder("orders") != "-")
    yield
    release.touch()
    orders.communicate(timeout=60)


@pytest.fixture
def server(svc) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`serve --port 0`, its base URL from its first line."""
    proc = svc.spawn("serve", "--port", "0", "--db", with_password(svc.url))
    line = proc.stderr.readline()
    match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
    assert match, line
    yield match.group(1), proc
    proc.kill()


@pytest.mark.parametrize("svc", ["postgresql"], indirect=True)
def test_status_page_in_a_real_browser(svc, live_pipelines, server, tmp_path: Path) -> None:
    base, proc = server
    home = browse(base, "--dump-dom")
    found = re.findall(r"<tr( class=\"stale\")?><td><a href=\"/pipeline/(\w+)\"", home)
    rows = {name: css for css, name in found}
    assert rows == {"orders": "", "customers": ' class="stale"', "invoices": "", "payments": ""}
    assert re.search(
        r">orders</a></td><td><span class=\"RUNNING\">RUNNING</span></td><td>run \d+ ", home
    )
    assert home.count("STALE</span> expired") == 1
    for outcome in ("RUNNING", "RUNNING, lease expired", "FAILED", "RECLAIMED", "SUCCESS"):
        assert f'<span class="{outcome.split(",")[0]}">{outcome}</span>' in home, outcome
    assert 'http-equiv="refresh"' in home
    history = browse(base + "pipeline/invoices", "--dump-dom")
    assert "items 5/3 MISMATCH" in history and "tap exited with 0, target exited with 1" in history
    payments = browse(base + "pipeline/payments", "--dump-dom")
    assert "items 5/5" in payments and "lease reclaimed: no heartbeat" in payments
    screenshot(base, tmp_path / "status-page.png")
    screenshot(base + "pipeline/invoices", tmp_path / "status-page-pipeline.png")
    proc.kill()
    _, log = proc.communicate(timeout=30)
    assert SECRET not in home + history + payments + log and "GET /pipeline/invoices 200" in log
    assert '"id": 41' not in home + history  # bookmark values are never shown


@pytest.mark.parametrize("svc", ["sqlite", "postgresql"], indirect=True)
def test_the_page_reads_a_store_that_cannot_write(svc) -> None:
    leases.finish(svc.store, leases.start(svc.store, "p", lease_seconds=60), exit_code=0)
    reader = Store(svc.url, read_only=True)
    try:
        with pytest.raises(DatabaseUnavailable, match=r"read-only|readonly"):
            leases.start(reader, "p", lease_seconds=60)
    finally:
        reader.dispose()


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_a_token_is_required_beyond_loopback_and_checked(svc) -> None:
    Store(svc.url).dispose()
    open_bind = svc.cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert open_bind.returncode == 2 and "--token" in open_bind.stderr
    proc = svc.spawn("serve", "--port", "0", "--token", "t0ken")
    base = re.search(r"http://\S+/", proc.stderr.readline())
    assert base, "no serving line"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base.group(0), timeout=30)
    assert refused.value.code == 401
    page = urllib.request.urlopen(base.group(0) + "?token=t0ken", timeout=30).read().decode()
    assert "<h1>state-service</h1>" in page
    proc.kill()
    _, log = proc.communicate(timeout=30)
    assert "t0ken" not in log  # request logs leave the query string out
