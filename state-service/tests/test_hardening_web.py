"""Issue 19 items 1, 3 and 9: the status page and every printed database URL under attack.

Passwords in any form libpq or SQLAlchemy accept never show; a tampered run row cannot run
script; silent, half-open, oversized and non-ASCII requests get a bounded, definite answer.
"""

from __future__ import annotations

import re
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from state_service import lease as leases
from state_service.schema import runs

from safe_singer_testing.sockets import closed_within, raw_request, silent_clients, status_of

PASSWORD, QUERY_PASSWORD, SSL_PASSWORD, PASSFILE_LINE = "pw-u5er", "pw-qu3ry", "pw-55l", "pw-f1le"
SECRETS = (PASSWORD, QUERY_PASSWORD, SSL_PASSWORD, PASSFILE_LINE)


def secret_url(base: str, passfile: Path) -> str:
    """``base`` with a password in every form: user:pass@, ?password=, ?sslpassword=, passfile."""
    passfile.write_text(f"*:*:*:*:{PASSFILE_LINE}\n")
    passfile.chmod(0o600)
    with_user_password = re.sub(r"//([^:@/]+)@", rf"//\1:{PASSWORD}@", base)
    query = f"password={QUERY_PASSWORD}&sslpassword={SSL_PASSWORD}&passfile={passfile}"
    return f"{with_user_password}{'&' if '?' in base else '?'}{query}"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret} shown in: {text[:400]}"


def serve(svc: Any, *args: str) -> tuple[str, subprocess.Popen[str], str]:
    """`serve --port 0` (extra args after); its base URL, process and banner line."""
    proc = svc.spawn("serve", "--port", "0", *args)
    banner = proc.stderr.readline()
    found = re.search(r"serving (http://127\.0\.0\.1:(\d+)/)", banner)
    assert found, banner
    return found.group(1), proc, banner


def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read().decode()


@pytest.fixture
def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        return int(closed.getsockname()[1])  # nothing listens there once closed


def test_cli_error_masks_every_password_form(svc, closed_port: int, tmp_path: Path) -> None:
    url = secret_url(f"postgresql://bob@127.0.0.1:{closed_port}/st", tmp_path / "pgpass")
    proc = svc.cli("--db", url, "status")
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    expected = "state-service: error: state database postgresql+psycopg://bob:***@"
    assert line.startswith(expected), line
    assert "password=***" in line and "sslpassword=***" in line, line
    assert_no_secret(proc.stderr, proc.stdout)


def test_meltano_backend_error_masks_every_password_form(
    closed_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("meltano")
    from state_service.meltano_backend import StateServiceStoreManager

    url = secret_url(f"postgresql://bob@127.0.0.1:{closed_port}/st", tmp_path / "pgpass")
    with pytest.raises(SystemExit) as refused:
        StateServiceStoreManager(uri=f"statesvc://{url}")
    assert refused.value.code == 3
    err = capsys.readouterr().err
    assert "state-service: state database postgresql+psycopg://bob:***@" in err, err
    assert_no_secret(err)


@pytest.mark.parametrize("svc", ["postgresql"], indirect=True)
def test_serve_banner_pages_and_503_mask_every_password_form(svc, tmp_path: Path) -> None:
    leases.finish(svc.store, leases.start(svc.store, "p", lease_seconds=60), exit_code=0)
    url = secret_url(svc.url, tmp_path / "pgpass")  # trust auth: the passwords are never asked
    base, proc, banner = serve(svc, "--db", url)
    _, _, home = get(base)
    _, _, history = get(base + "pipeline/p")
    assert "password=***" in home and "password=***" in banner, home
    with psycopg.connect(svc.url.replace("+psycopg", "")) as admin:
        admin.execute("ALTER TABLE state_service_runs RENAME TO state_service_runs_away")
        admin.commit()
        code, _, unavailable = get(base)
        admin.execute("ALTER TABLE state_service_runs_away RENAME TO state_service_runs")
        admin.commit()
    assert code == 503 and "state database postgresql+psycopg://" in unavailable, unavailable
    proc.kill()
    _, log = proc.communicate(timeout=30)
    assert_no_secret(banner, home, history, unavailable, log)


TAMPERED = {
    "status": '"><svg onload=1>',  # the column holds 16 characters
    "kind": "<script>alert('kind')</script>",
    "error": '<img src=x onerror=alert("error")>',
    "host": "<script>alert('host')</script>",
}


def test_tampered_rows_are_escaped_and_script_is_forbidden(svc) -> None:
    held = leases.start(svc.store, "<script>alert('name')</script>", lease_seconds=60)
    leases.finish(svc.store, held, exit_code=1, error="x")
    with svc.store.transaction() as conn:
        conn.execute(runs.update().where(runs.c.run_id == held.run_id).values(**TAMPERED))
    base, proc, _ = serve(svc)
    pages = []
    for path in ("", "pipeline/" + urllib.parse.quote("<script>alert('name')</script>", safe="")):
        code, headers, body = get(base + path)
        assert code == 200, body
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, policy
        pages.append(body)
    proc.kill()
    for body in pages:
        assert "<script" not in body and "<img" not in body and "<svg" not in body, body
        assert 'class="unknown"' in body and 'class=""><script' not in body
        assert "&lt;script&gt;" in body


@pytest.fixture
def page_server(svc) -> Iterator[tuple[str, int, subprocess.Popen[str]]]:
    leases.finish(svc.store, leases.start(svc.store, "p", lease_seconds=60), exit_code=0)
    base, proc, _ = serve(svc, "--read-timeout", "1", "--token", "t0ken")
    port = int(base.rsplit(":", 1)[1].strip("/"))
    yield base, port, proc
    proc.kill()
    proc.communicate(timeout=30)


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_silent_and_half_open_connections_are_closed(page_server) -> None:
    base, port, _ = page_server
    # More silent peers than the pool has workers: each is dropped after the read timeout,
    # and a real request is still answered.
    with (
        silent_clients("127.0.0.1", port, 20) as silent,
        silent_clients("127.0.0.1", port, 4, first_bytes=b"GET / HT") as half,
    ):
        assert get(base + "?token=t0ken")[0] == 200
        assert all(closed_within(sock, 15) for sock in silent + half)


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_oversized_request_line_gets_414_and_non_ascii_token_401(page_server) -> None:
    _, port, proc = page_server
    long_line = b"GET /?token=t0ken&pad=" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(raw_request("127.0.0.1", port, long_line)) == 414
    for token in ("%C3%A9t%C3%A9", "t0ken%E2%82%AC"):
        query = f"GET /?token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert status_of(raw_request("127.0.0.1", port, query)) == 401, token
    bearer = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xe9t\xe9\r\n\r\n"
    assert status_of(raw_request("127.0.0.1", port, bearer.encode("latin-1"))) == 401
    assert proc.poll() is None


@pytest.mark.parametrize("svc", ["sqlite"], indirect=True)
def test_two_hundred_concurrent_requests_are_all_answered(page_server) -> None:
    base, _, _ = page_server
    with ThreadPoolExecutor(200) as clients:
        codes = list(clients.map(lambda n: get(f"{base}?token=t0ken&n={n}")[0], range(200)))
    assert codes == [200] * 200
