"""Lite: a minimal Bay runtime (shell commands and files), Python stdlib only.

It is the example runtime of the plugin tutorial (docs/plugin-tutorial.md):
small enough to read in one go, served to Bay by `plugins/lite-adapter`.

    GET  /health                          -> {"status": "healthy"}
    GET  /meta                            -> {"runtime": {...}, "capabilities": {...}}
    POST /exec   {command, timeout, cwd}  -> {stdout, stderr, exit_code}
    POST /files/read  {path}              -> {content}
    POST /files/write {path, content}     -> {path, size}

Paths are relative to the workspace (or absolute inside it); anything that
resolves outside it is refused with 400.
"""

import json
import os
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORKSPACE = os.path.realpath(os.environ.get("LITE_WORKSPACE", "/workspace"))
PORT = int(os.environ.get("LITE_PORT", "8200"))
VERSION = "0.1.0"


class BadRequest(Exception):
    pass


def resolve(path):
    if not isinstance(path, str) or not path:
        raise BadRequest("path must be a non-empty string")
    full = os.path.realpath(os.path.join(WORKSPACE, path))
    if full != WORKSPACE and not full.startswith(WORKSPACE + os.sep):
        raise BadRequest(f"path escapes the workspace: {path}")
    return full


def run(body):
    timeout = float(body.get("timeout") or 30)
    cwd = resolve(body["cwd"]) if body.get("cwd") else WORKSPACE
    try:
        p = subprocess.run(["sh", "-c", str(body.get("command", ""))], cwd=cwd, capture_output=True, timeout=timeout)
        return {"stdout": p.stdout.decode(errors="replace"), "stderr": p.stderr.decode(errors="replace"), "exit_code": p.returncode}
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        return {"stdout": out, "stderr": f"timed out after {timeout:g}s", "exit_code": 124}


def read(body):
    with open(resolve(body.get("path")), encoding="utf-8") as f:
        return {"content": f.read()}


def write(body):
    full = resolve(body.get("path"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    data = str(body.get("content", "")).encode()
    with open(full, "wb") as f:
        f.write(data)
    return {"path": os.path.relpath(full, WORKSPACE), "size": len(data)}


ROUTES = {"/exec": run, "/files/read": read, "/files/write": write}
META = {
    "runtime": {"name": "lite", "version": VERSION, "api_version": "v1"},
    "workspace": {"mount_path": WORKSPACE},
    "capabilities": {"shell": {"operations": ["exec"]}, "filesystem": {"operations": ["read", "write"]}},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"status": "healthy"})
        elif self.path == "/meta":
            self.reply(200, META)
        else:
            self.reply(404, {"detail": "not found"})

    def do_POST(self):
        handler = ROUTES.get(self.path)
        if handler is None:
            return self.reply(404, {"detail": "not found"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            self.reply(200, handler(body))
        except BadRequest as e:
            self.reply(400, {"detail": str(e)})
        except FileNotFoundError as e:
            self.reply(404, {"detail": f"file not found: {e.filename}"})
        except (ValueError, KeyError, OSError) as e:
            self.reply(400, {"detail": str(e)})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
