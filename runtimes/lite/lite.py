"""Lite: a minimal Bay runtime (shell commands and files), Python stdlib only.

It is the example runtime of the plugin tutorial (docs/plugin-tutorial.md):
small enough to read in one go, served to Bay by `plugins/lite-adapter`.

    GET  /health                          -> {"status": "healthy"}
    GET  /meta                            -> {"runtime": {...}, "capabilities": {...}}
    POST /exec   {command, timeout, cwd}  -> {stdout, stderr, exit_code}
    POST /exec/stream  (the same body)    -> NDJSON events as the output comes:
                                             {"seq", "type": "stdout"|"stderr", "data"}, …,
                                             {"seq", "type": "exit", "exit_code"}
    GET  /files?path=...                  -> the file's bytes (404 if missing)
    PUT  /files?path=...  (the bytes)     -> {path, size}

Paths are relative to the workspace (or absolute inside it); anything that
resolves outside it is refused with 400. File contents travel as raw bytes,
read and written in chunks, so a file of any size streams through.
"""

import json
import os
import selectors
import shutil
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WORKSPACE = os.path.realpath(os.environ.get("LITE_WORKSPACE", "/workspace"))
PORT = int(os.environ.get("LITE_PORT", "8200"))
VERSION = "0.2.0"


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


def run_streamed(body, send):
    """Runs a command, calling send(event) for each piece of output as it
    comes, then for its exit; a send that fails (the reader left) kills it."""
    timeout = float(body.get("timeout") or 30)
    cwd = resolve(body["cwd"]) if body.get("cwd") else WORKSPACE
    p = subprocess.Popen(["sh", "-c", str(body.get("command", ""))], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, "stdout")
    sel.register(p.stderr, selectors.EVENT_READ, "stderr")
    deadline, seq, open_streams = time.monotonic() + timeout, 0, 2
    try:
        while open_streams and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                seq += 1
                send({"seq": seq, "type": key.data, "data": chunk.decode(errors="replace")})
        if open_streams:
            p.kill()
        code = p.wait()
        seq += 1
        send({"seq": seq, "type": "exit", "exit_code": 124 if open_streams else code})
    except OSError:
        p.kill()
        p.wait()


META = {
    "runtime": {"name": "lite", "version": VERSION, "api_version": "v1"},
    "workspace": {"mount_path": WORKSPACE},
    "capabilities": {"shell": {"operations": ["exec", "stream"]}, "filesystem": {"operations": ["read", "write"]}},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if status >= 400:
            # A refused request's body may be unread: do not reuse the connection.
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def handle_errors(self, action):
        try:
            action()
        except BadRequest as e:
            self.reply(400, {"detail": str(e)})
        except FileNotFoundError as e:
            self.reply(404, {"detail": f"file not found: {e.filename}"})
        except (ValueError, KeyError, OSError) as e:
            self.reply(400, {"detail": str(e)})

    def file_path(self):
        return resolve(parse_qs(urlsplit(self.path).query).get("path", [""])[0])

    def read_file(self):
        with open(self.file_path(), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(size))
            self.end_headers()
            shutil.copyfileobj(f, self.wfile, 1 << 16)

    def write_file(self):
        full = self.file_path()
        if self.headers.get("content-length") is None:
            return self.reply(411, {"detail": "content-length required"})
        left = int(self.headers["content-length"])
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    raise BadRequest("the body ended early")
                f.write(chunk)
                left -= len(chunk)
        self.reply(200, {"path": os.path.relpath(full, WORKSPACE), "size": os.path.getsize(full)})

    def do_GET(self):
        route = urlsplit(self.path).path
        if route == "/health":
            self.reply(200, {"status": "healthy"})
        elif route == "/meta":
            self.reply(200, META)
        elif route == "/files":
            self.handle_errors(self.read_file)
        else:
            self.reply(404, {"detail": "not found"})

    def do_PUT(self):
        if urlsplit(self.path).path != "/files":
            return self.reply(404, {"detail": "not found"})
        self.handle_errors(self.write_file)

    def stream(self, body):
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def send(event):
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        run_streamed(body, send)
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        if self.path == "/exec/stream":

            def streamed():
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                if body.get("cwd"):
                    resolve(body["cwd"])  # refused with 400 before the stream starts
                self.stream(body)

            return self.handle_errors(streamed)
        if self.path != "/exec":
            return self.reply(404, {"detail": "not found"})

        def answer():
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            self.reply(200, run(body))

        self.handle_errors(answer)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
