"""Serving the benchmark's test site: nginx when it is installed, else hybridio's own server.

Both run in their own process on 127.0.0.1 and an ephemeral port, so the server's CPU time is
not charged to either crawler, and both crawlers face the very same server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PYTHON_DOCS", "SiteProcess", "ensure_debian_packages", "find_nginx"]

#: A real documentation site nobody here wrote: CPython's, as Debian's python3.11-doc installs it.
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")

_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{
        text/html html htm; text/plain txt; text/css css; application/javascript js;
        image/png png; image/svg+xml svg; application/octet-stream bin;
    }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.html;
        location = /site.json {{ return 404; }}
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary on PATH (or in /usr/sbin, where Debian puts it), if any."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def ensure_debian_packages(packages: dict[str, Path]) -> str:
    """Install the Debian ``packages`` whose marker path is missing; '' when all are there.

    Returns why they could not be installed otherwise (not Debian, not root, apt-get failed).
    apt-get may bring related packages up to date on the way (installing python3.11-doc
    upgraded Debian's own python3.11 packages to the same point release here).
    """
    missing = [name for name, marker in packages.items() if not marker.exists()]
    if not missing:
        return ""
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{', '.join(missing)} not installed (needs apt-get as root)"
    command = [apt, "install", "-y", "--no-install-recommends", *missing]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(2):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode == 0:
            return ""
        if attempt == 0:  # maybe an old package list: refresh it once
            subprocess.run([apt, "update"], capture_output=True, env=env, check=False)
    return f"apt-get install {' '.join(missing)} failed: {done.stderr.strip()[-300:]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the site server exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the site server did not listen on 127.0.0.1:{port} in time")


class SiteProcess:
    """A server process for ``directory``; ``url`` once entered; stopped (by its pid) on exit."""

    def __init__(self, directory: Path, *, prefer_nginx: bool = True) -> None:
        self.directory = directory.resolve()
        self.nginx = find_nginx() if prefer_nginx else None
        self.kind = "nginx" if self.nginx else "hybridio testsite"
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Self:
        port = _free_port()
        if self.nginx:
            self._tmp = tempfile.TemporaryDirectory(prefix="hybridio-nginx-")
            conf = Path(self._tmp.name) / "nginx.conf"
            conf.write_text(_NGINX_CONF.format(tmp=self._tmp.name, port=port, root=self.directory))
            command = [self.nginx, "-c", str(conf), "-p", self._tmp.name]
        else:
            command = [sys.executable, "-c", "from hybridio._cli import main; main()"]
            command += ["testsite", "serve", str(self.directory), "--port", str(port)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_listening(port, self._process, time.monotonic() + 20)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.url = f"http://127.0.0.1:{port}/"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
