#!/usr/bin/env python3
"""notes: herd's sample app. A small HTTP service that keeps notes in its
data folder (/data) and serves a health endpoint.

  GET  /health   200 "ok" once the data is ready (never, in the broken build)
  GET  /notes    the notes, one per line
  POST /notes    adds the request body as a note
  GET  /version  the version and data format

It serves on the socket herd hands it (LISTEN_FDS: descriptor 3), so it
needs no network of its own. Data format 1 is notes.txt, a note per line;
format 2 (version 1.1 on) is notes.json, migrated from format 1 at start.
"""
import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

VERSION = os.environ.get("NOTES_VERSION", "dev")
FORMAT = int(os.environ.get("NOTES_DATA_FORMAT", "1"))
BROKEN = os.environ.get("NOTES_BROKEN") == "1"
DATA = os.environ.get("HOME", "/data")
TXT = os.path.join(DATA, "notes.txt")
JSON = os.path.join(DATA, "notes.json")


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load():
    if FORMAT >= 2:
        if not os.path.exists(JSON) and os.path.exists(TXT):
            with open(TXT) as f:
                notes = [{"text": line.rstrip("\n")} for line in f if line.strip()]
            write_atomic(JSON, json.dumps(notes))
            os.remove(TXT)
            print(f"notes {VERSION}: migrated {len(notes)} note(s) to format 2", flush=True)
        if os.path.exists(JSON):
            with open(JSON) as f:
                return [n["text"] for n in json.load(f)]
        return []
    if os.path.exists(TXT):
        with open(TXT) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    return []


def save(notes):
    if FORMAT >= 2:
        write_atomic(JSON, json.dumps([{"text": n} for n in notes]))
    else:
        write_atomic(TXT, "".join(n + "\n" for n in notes))


NOTES = load()


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(503, "broken\n") if BROKEN else self.reply(200, "ok\n")
        if self.path == "/notes":
            return self.reply(200, "".join(n + "\n" for n in NOTES))
        if self.path == "/version":
            return self.reply(200, f"{VERSION} format {FORMAT}\n")
        self.reply(404, "not found\n")

    def do_POST(self):
        if self.path != "/notes":
            return self.reply(404, "not found\n")
        length = min(int(self.headers.get("Content-Length", "0")), 64 * 1024)
        text = self.rfile.read(length).decode("utf-8", "replace").replace("\n", " ").strip()
        if not text:
            return self.reply(400, "empty note\n")
        NOTES.append(text)
        save(NOTES)
        self.reply(201, "saved\n")

    def log_message(self, fmt, *args):
        print("notes: " + fmt % args, flush=True)


def main():
    if os.environ.get("LISTEN_FDS") != "1":
        sys.exit("notes: expects one listening socket from herd (LISTEN_FDS=1)")
    sock = socket.socket(fileno=3)
    server = HTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket = sock
    # pid 1 of its namespace: only signals it handles reach it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"notes {VERSION} (data format {FORMAT}) serving {len(NOTES)} note(s)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
