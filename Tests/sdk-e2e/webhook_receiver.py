"""A real webhook receiver for the end-to-end suites: it verifies every request with the
off-the-shelf `standardwebhooks` package, as a subscriber would, and can be told to fail."""

import base64
import http.server
import threading
import time

from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


class Receiver:
    def __init__(self):
        self.messages = []
        self.bad_signatures = 0
        self.mode = "ok"
        self.delay = 0.0
        self.lock = threading.Lock()
        verifier = Webhook(SECRET)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.mode != "ok":
                    self.send_response(410 if receiver.mode == "gone" else 503)
                    self.end_headers()
                    return
                try:
                    message = verifier.verify(body, {k: v for k, v in self.headers.items()})
                except Exception:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.messages.append(message)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ops(self):
        with self.lock:
            return [(m["applicationProperties"]["opType"], m["applicationProperties"]["deviceId"], m["seq"]) for m in self.messages]

    def wait_for(self, predicate, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; got {self.ops()[-5:]}")
