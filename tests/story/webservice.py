"""A deliberately vulnerable web service for the crypto-miner story.

GET /lookup?host=NAME runs `sh -c "echo looking up NAME"`: a command
injection, as in many real diagnostics pages. The response is the shell's
output, then its exit status on the last line. Only ever bound to 127.0.0.1.
"""
from __future__ import annotations

import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Lookup(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        host = parse_qs(urlsplit(self.path).query).get("host", [""])[0]
        shell = subprocess.run(["/bin/sh", "-c", f"echo looking up {host}"], capture_output=True, timeout=120)
        body = shell.stdout + shell.stderr + f"exit {shell.returncode}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Lookup).serve_forever()
