#!/usr/bin/env python3
"""A logging stand-in for registryd's RabbitMQ HTTP auth endpoints (issue 20's prototype; the
findings are in tools/rabbitmq-contract.md). Standard library only.

Logs every request the broker sends (method, path, Authorization and Host headers, the client
certificate's subject, the raw form body and its decoded fields, the answer, the client port) as
one JSON line to --log, and answers 200 "allow" unless the rules file, re-read on every request
so a probe can flip decisions live, says otherwise:
  {"user_reply": "deny" | "allow tag1 tag2" | anything,      (answer of the user path)
   "deny": [{"path": "user|vhost|resource|topic", "match": {"field": "value" or "prefix*"}}],
   "status": 500}                                             (HTTP status of every answer)

  rabbitmq_authlog.py --log FILE [--rules FILE] [--port P] [--portfile FILE]
                      [--cert PEM --key PEM [--client-ca PEM]]   (HTTPS; asks for a client cert)
"""
import argparse, json, ssl, threading, time, urllib.parse
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--cert"); ap.add_argument("--key"); ap.add_argument("--client-ca")
ap.add_argument("--log", required=True)
ap.add_argument("--rules")
ap.add_argument("--portfile")
a = ap.parse_args()
lock = threading.Lock()


def rules():
    if not a.rules:
        return {}
    try:
        with open(a.rules) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        u = urllib.parse.urlsplit(self.path)
        form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        kind = u.path.rsplit("/", 1)[-1]
        r = rules()
        answer = r.get("user_reply", "allow") if kind == "user" else "allow"
        for d in r.get("deny", []):
            if d.get("path") in (None, kind) and all(form.get(k) == v or (v.endswith("*") and form.get(k, "").startswith(v[:-1])) for k, v in d.get("match", {}).items()):
                answer = "deny"
        peer = None
        if isinstance(self.connection, ssl.SSLSocket):
            c = self.connection.getpeercert()
            peer = dict(x[0] for x in c["subject"]) if c else None
        rec = {"t": time.time(), "method": self.command, "path": u.path, "query": u.query,
               "authorization": self.headers.get("Authorization"), "host": self.headers.get("Host"),
               "content_type": self.headers.get("Content-Type"), "client_cert": peer,
               "raw": body, "form": form, "answer": answer, "peer": self.client_address[1]}
        with lock, open(a.log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        out = answer.encode()
        self.send_response(int(r.get("status", 200)))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_GET = handle_any


srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
if a.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.load_verify_locations(a.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
if a.portfile:
    with open(a.portfile, "w") as f:
        f.write(str(srv.server_address[1]))
print(srv.server_address[1], flush=True)
srv.serve_forever()
