#!/usr/bin/env python3
"""A minimal AMQP 0-9-1 consumer (standard library only): binds a server-named exclusive queue
to EXCHANGE with each KEY and prints every delivery as one JSON line (routing key, exchange,
properties with the decoded headers table, the AMQP field type of each header, body). Used to
read RabbitMQ's event exchange (amq.rabbitmq.event: connection.created/closed, user.*) and the
MQTT plugin's amq.topic as the observer user of tools/rabbitmq.sh; see
tools/rabbitmq-contract.md. Also a reference for the frames a connection-state bridge needs:
connection.start-ok (PLAIN), tune-ok, open, channel.open, queue.declare, queue.bind,
basic.consume (no-ack), basic.deliver + content header (headers table) + body.

  amqp_watch.py --port P --user U --password PW --bind amq.rabbitmq.event:connection.# \
      --bind amq.topic:devices.# [--out FILE] [--ready FILE]
"""
import argparse, json, socket, struct, sys, time, datetime, decimal


def shortstr(s):
    b = s.encode()
    return struct.pack("B", len(b)) + b


def longstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def table(d):
    out = b""
    for k, v in d.items():
        out += shortstr(k)
        if isinstance(v, bool):
            out += b"t" + struct.pack("B", v)
        elif isinstance(v, dict):
            out += b"F" + table(v)
        else:
            out += b"S" + longstr(str(v))
    return struct.pack(">I", len(out)) + out


TYPES = {}


class R:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u(self, fmt):
        n = struct.calcsize(fmt)
        return struct.unpack(">" + fmt, self.take(n))[0]

    def shortstr(self):
        return self.take(self.u("B")).decode("utf-8", "replace")

    def longstr(self):
        b = self.take(self.u("I"))
        try:
            return b.decode()
        except UnicodeDecodeError:
            return b.hex()

    def value(self):
        t = chr(self.u("B"))
        if t == "t": return bool(self.u("B"))
        if t == "b": return self.u("b")
        if t == "B": return self.u("B")
        if t == "s": return self.u("h")
        if t == "u": return self.u("H")
        if t == "I": return self.u("i")
        if t == "i": return self.u("I")
        if t == "l": return self.u("q")
        if t == "f": return self.u("f")
        if t == "d": return self.u("d")
        if t == "D":
            scale = self.u("B"); v = self.u("i"); return str(decimal.Decimal(v).scaleb(-scale))
        if t == "S": return self.longstr()
        if t == "x": return self.take(self.u("I")).hex()
        if t == "T": return {"timestamp": self.u("Q")}
        if t == "F": return self.table()
        if t == "V": return None
        if t == "A":
            end = self.u("I") + self.i
            out = []
            while self.i < end:
                out.append(self.value())
            return out
        raise ValueError("field type " + t)

    def table(self):
        end = self.u("I") + self.i
        out = {}
        while self.i < end:
            k = self.shortstr()
            TYPES[k] = chr(self.b[self.i])
            out[k] = self.value()
        return out


class Conn:
    def __init__(self, host, port, user, pw):
        self.s = socket.create_connection((host, port))
        self.s.sendall(b"AMQP\x00\x00\x09\x01")
        self.buf = b""
        cls, mid, _ = self.method(0)
        assert (cls, mid) == (10, 10)
        self.send_method(0, 10, 11, table({"product": "amqp_watch", "capabilities": {"consumer_cancel_notify": True}})
                         + shortstr("PLAIN") + longstr(b"\0" + user.encode() + b"\0" + pw.encode()) + shortstr("en_US"))
        cls, mid, r = self.method(0)
        assert (cls, mid) == (10, 30), (cls, mid)
        chmax, fmax, hb = r.u("H"), r.u("I"), r.u("H")
        self.send_method(0, 10, 31, struct.pack(">HIH", chmax or 2047, fmax, 0))
        self.send_method(0, 10, 40, shortstr("/") + shortstr("") + b"\0")
        assert self.method(0)[:2] == (10, 41)
        self.send_method(1, 20, 10, shortstr(""))
        assert self.method(1)[:2] == (20, 11)

    def read_frame(self):
        while len(self.buf) < 7:
            d = self.s.recv(65536)
            if not d: raise EOFError
            self.buf += d
        t, ch, size = struct.unpack(">BHI", self.buf[:7])
        while len(self.buf) < 8 + size:
            d = self.s.recv(65536)
            if not d: raise EOFError
            self.buf += d
        payload = self.buf[7:7 + size]
        self.buf = self.buf[8 + size:]
        return t, ch, payload

    def method(self, ch):
        while True:
            t, c, p = self.read_frame()
            if t == 1:
                r = R(p)
                cls, mid = r.u("H"), r.u("H")
                if (cls, mid) in ((10, 50), (20, 40)):
                    raise RuntimeError("closed: %d %s" % (r.u("H"), r.shortstr()))
                return cls, mid, r

    def send_method(self, ch, cls, mid, args):
        p = struct.pack(">HH", cls, mid) + args
        self.s.sendall(struct.pack(">BHI", 1, ch, len(p)) + p + b"\xce")

    def queue(self):
        self.send_method(1, 50, 10, struct.pack(">H", 0) + shortstr("") + bytes([0x0C]) + table({}))
        cls, mid, r = self.method(1)
        return r.shortstr()

    def bind(self, q, x, key):
        self.send_method(1, 50, 20, struct.pack(">H", 0) + shortstr(q) + shortstr(x) + shortstr(key) + b"\0" + table({}))
        assert self.method(1)[:2] == (50, 21)

    def consume(self, q):
        self.send_method(1, 60, 20, struct.pack(">H", 0) + shortstr(q) + shortstr("") + bytes([0x02]) + table({}))
        assert self.method(1)[:2] == (60, 21)

    def deliveries(self):
        while True:
            cls, mid, r = self.method(1)
            if (cls, mid) != (60, 60):
                continue
            r.shortstr(); r.u("Q"); r.u("B")
            exchange, rk = r.shortstr(), r.shortstr()
            t, _, p = self.read_frame()
            h = R(p)
            h.u("H"); h.u("H"); size = h.u("Q"); flags = h.u("H")
            props = {}
            names = [("content_type", "s"), ("content_encoding", "s"), ("headers", "t"), ("delivery_mode", "B"),
                     ("priority", "B"), ("correlation_id", "s"), ("reply_to", "s"), ("expiration", "s"),
                     ("message_id", "s"), ("timestamp", "Q"), ("type", "s"), ("user_id", "s"), ("app_id", "s"),
                     ("cluster_id", "s")]
            for i, (n, k) in enumerate(names):
                if flags & (1 << (15 - i)):
                    props[n] = h.shortstr() if k == "s" else h.table() if k == "t" else h.u(k)
            body = b""
            while len(body) < size:
                t, _, p = self.read_frame()
                body += p
            types = dict(TYPES); TYPES.clear()
            yield {"types": types, "t": time.time(), "exchange": exchange, "routing_key": rk, "properties": props,
                   "body": body.decode("utf-8", "replace")}


ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1"); ap.add_argument("--port", type=int, required=True)
ap.add_argument("--user", required=True); ap.add_argument("--password", required=True)
ap.add_argument("--bind", action="append", default=[])
ap.add_argument("--out"); ap.add_argument("--ready")
a = ap.parse_args()
c = Conn(a.host, a.port, a.user, a.password)
q = c.queue()
for b in a.bind:
    x, k = b.split(":", 1)
    c.bind(q, x, k)
c.consume(q)
if a.ready:
    open(a.ready, "w").write(q)
out = open(a.out, "a") if a.out else sys.stdout
for d in c.deliveries():
    out.write(json.dumps(d) + "\n"); out.flush()
