"""`biolens serve`: start the web app on this machine and print (and open) its address with the access token."""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path

from biolens.errors import InputError
from biolens.web import security
from biolens.web.app import Settings, create_app


def serve(*, port: int = 8765, host: str = "127.0.0.1", allow_remote: bool = False, runs_dir: Path = Path("runs"),
          roots: list[Path] | None = None, open_browser: bool = True, max_upload_mb: int = 2048) -> None:
    import uvicorn

    if not 1 <= port <= 65535:
        raise InputError(f"Invalid value for --port. Received: {port}. Expected a port number from 1 to 65535 "
                         "(e.g. 8765).")
    if max_upload_mb < 1:
        raise InputError(f"Invalid value for --max-upload-mb. Received: {max_upload_mb}. Expected at least 1.")
    loopback = host in security.LOOPBACK_HOSTS or _is_loopback(host)
    if not loopback and not allow_remote:
        raise InputError(f"--host {host} would let other machines reach this server; add --allow-remote if that is "
                         "what you want (anyone with the printed token can then run jobs and read your data).")
    if _port_busy(host, port):
        raise InputError(f"port {port} is in use on {host}; choose another with --port N.")
    settings = Settings(runs_dir=runs_dir, roots=roots or [Path.cwd(), Path.home()], max_upload_bytes=max_upload_mb << 20,
                        allow_remote=not loopback)
    app = security.AccessGate(create_app(settings), token=settings.token, max_body_bytes=settings.max_upload_bytes,
                              allow_remote=not loopback)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/?token={settings.token}"
    if not loopback:
        print(f"warning: serving on {host}: every machine that can reach this one and has the token can use biolens "
              "and read the folders under --root. Use only on a network you trust.", file=sys.stderr)
    print(f"biolens is running at {url}", flush=True)
    print(f"runs: {settings.runs_dir}; data paths allowed under: {', '.join(map(str, settings.roots))}", flush=True)
    print("Press Ctrl-C to stop (a running job is interrupted and can be resumed).", flush=True)
    if open_browser:
        threading.Thread(target=_open_when_up, args=(url, shown, port), daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def _open_when_up(url: str, host: str, port: int) -> None:
    """Open the page once the server answers; a machine without a screen or browser is left alone."""
    has_screen = sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not has_screen or not wait_for_port(host, port):
        return
    try:
        webbrowser.open(url)
    except Exception:  # no browser is not an error: the address is printed
        pass


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False
