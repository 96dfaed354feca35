"""The daemon's control channel: a root-only unix socket in the run directory.

One request per connection, one JSON line each way. Only what must happen
inside the daemon goes through it -- locking and unlocking, because the lock
belongs to the daemon's process -- and only root peers are answered.
"""
from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096
CLIENT_TIMEOUT_S = 120.0   # locking loads and verifies a BPF object: slow under emulation
PEER_TIMEOUT_S = 2.0

Handler = Callable[[dict], dict]


def socket_path(run_dir: Path) -> Path:
    return run_dir / SOCKET_NAME


def listen(run_dir: Path) -> socket.socket:
    path = socket_path(run_dir)
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)    # the socket is created 0600: root only
    try:
        server.bind(str(path))
    finally:
        os.umask(old_umask)
    server.listen(4)
    server.setblocking(False)
    return server


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def serve_pending(server: socket.socket, handler: Handler) -> None:
    """Answer every connection waiting now; never blocks on a slow or silent peer for long."""
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(PEER_TIMEOUT_S)
            try:
                if _peer_uid(conn) != 0:
                    reply = {"ok": False, "error": "only root may use lsmguard's control socket"}
                else:
                    reply = handler(json.loads(_read_line(conn) or b"{}"))
            except (OSError, ValueError) as error:
                reply = {"ok": False, "error": f"bad request: {error}"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass


def ask(run_dir: Path, request: dict) -> dict:
    """Send one request to the daemon; OSError when no daemon listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as conn:
        conn.settimeout(CLIENT_TIMEOUT_S)
        conn.connect(str(socket_path(run_dir)))
        conn.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(_read_line(conn) or b"{}")
