"""The reverse-proxy configurations of docs/deploy.md, run as written in front of the real server.

Each test takes the config block out of docs/deploy.md, changes only what a local run must (ports,
host name, certificate paths, the temp paths a proxy writes), and checks HTTP, a streamed answer and
the websocket (replay and live updates) through real TLS. Without nginx or Caddy installed the tests
skip loudly, unless SWITCHBOARD_REQUIRE_PROXIES=1 (set by .ci/run) turns the skip into a failure.
"""
import os
import re
import shutil
import ssl
import subprocess
import time

import pytest
import requests

from conftest import ROOT, WS, free_port

DOC = (ROOT / "docs" / "deploy.md").read_text()
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def doc_block(language):
    [block] = re.findall(rf"```{language}\n(.*?)```", DOC, re.S)
    return block


def require(binary):
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        reason = f"PROXY TESTS NOT RUN: {binary} is not installed (apt-get install {binary})."
        if os.environ.get("SWITCHBOARD_REQUIRE_PROXIES") == "1":
            pytest.fail(reason + " SWITCHBOARD_REQUIRE_PROXIES=1 does not allow skipping them.")
        pytest.skip(reason)
    return path


def two_ports():
    """Two distinct free ports (free_port may hand out the same one twice: it closes its socket)."""
    while True:
        ports = free_port(), free_port()
        if ports[0] != ports[1]:
            return ports


def run_until_listening(command, port, log_path, env=None):
    log = open(log_path, "ab")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            requests.get(f"https://127.0.0.1:{port}/health", verify=False, timeout=1)
            return proc
        except requests.RequestException:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{command[0]} did not start:\n{log_path.read_text()}")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_through_proxy(server, port):
    """HTTP, a streamed session, the page's policy and the websocket all work through the proxy."""
    base = f"https://127.0.0.1:{port}"
    assert requests.get(base + "/health", verify=False, timeout=5).json() == {"status": "ok"}
    page = requests.get(base + "/", verify=False, timeout=5)
    assert f"wss://127.0.0.1:{port}" in page.headers["Content-Security-Policy"]
    auth = server.headers
    created = requests.post(base + "/v1/sessions", json={"tag": "proxied", "metadata": ""}, headers=auth,
                            verify=False, timeout=5).json()["session"]
    sid = created["id"]
    first = requests.post(f"{base}/v3/sessions/{sid}/messages", json={"messages": [{"content": "one"}]},
                          headers=auth, verify=False, timeout=5)
    assert first.status_code == 200, first.text

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    ws = WS(f"wss://127.0.0.1:{port}/v1/updates", ssl_context=context)
    try:
        ws.send("auth", {"token": server.token, "clientType": "user-scoped", "since": 0})
        replayed = [ws.expect("update")["data"]["body"]["t"] for _ in range(2)]
        assert replayed == ["new-session", "new-message"]
        ws.expect("ready")
        requests.post(f"{base}/v3/sessions/{sid}/messages", json={"messages": [{"content": "two"}]},
                      headers=auth, verify=False, timeout=5)
        live = ws.expect("update")["data"]["body"]
        assert live["t"] == "new-message" and live["message"]["content"] == "two"
    finally:
        ws.close()
    detail = requests.get(f"{base}/api/sessions/{sid}", headers=auth, verify=False, timeout=5)
    assert [m["content"] for m in detail.json()["messages"]] == ["one", "two"]


@pytest.fixture
def certificate(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


def test_the_documented_nginx_config_proxies_http_and_the_websocket(live_server, tmp_path, certificate):
    nginx = require("nginx")
    key, cert = certificate
    https, http = two_ports()
    site = (doc_block("nginx")
            .replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
            .replace("listen 80;", f"listen 127.0.0.1:{http};")
            .replace("switchboard.example.com", "127.0.0.1")
            .replace("/etc/letsencrypt/live/127.0.0.1/fullchain.pem", str(cert))
            .replace("/etc/letsencrypt/live/127.0.0.1/privkey.pem", str(key))
            .replace("127.0.0.1:8000", f"127.0.0.1:{live_server.port}"))
    assert str(cert) in site and str(live_server.port) in site
    temp = "\n".join(f"  {kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log;
events {{}}
http {{
  access_log off;
{temp}
{site}
}}
""")
    proc = run_until_listening([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"], https,
                               tmp_path / "nginx.log")
    try:
        redirect = requests.get(f"http://127.0.0.1:{http}/health", allow_redirects=False, timeout=5)
        assert redirect.status_code == 301 and redirect.headers["Location"].startswith("https://")
        check_through_proxy(live_server, https)
    finally:
        stop(proc)


def test_the_documented_caddy_config_proxies_http_and_the_websocket(live_server, tmp_path):
    caddy = require("caddy")
    https, http = two_ports()
    site = (doc_block("caddy")
            .replace("switchboard.example.com", "127.0.0.1")
            .replace("127.0.0.1:8000", f"127.0.0.1:{live_server.port}"))
    assert str(live_server.port) in site
    # A local run: Caddy's own CA instead of a public one, nothing installed in the system trust store.
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(f"""{{
	admin off
	local_certs
	skip_install_trust
	http_port {http}
	https_port {https}
	storage file_system {tmp_path}/caddy
}}
{site}""")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = run_until_listening([caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"], https,
                               tmp_path / "caddy.log", env)
    try:
        check_through_proxy(live_server, https)
    finally:
        stop(proc)


def test_a_missing_proxy_is_a_loud_skip_locally_and_a_failure_in_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("SWITCHBOARD_REQUIRE_PROXIES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PROXY TESTS NOT RUN"):
        require("no-such-proxy")
    monkeypatch.setenv("SWITCHBOARD_REQUIRE_PROXIES", "1")
    with pytest.raises(pytest.fail.Exception, match="does not allow skipping"):
        require("no-such-proxy")
