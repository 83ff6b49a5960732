#!/usr/bin/env python3
"""An OCSP responder that answers every request with a randomly built HTTP response.

For the mutation run (contrib/fuzz/mutate-daemon.sh): the real daemon asks it about its
certificates and gets status lines from 1xx to 5xx and beyond (garbage, HTTP/0.9, 2-digit
codes), header sets (duplicates, empty names, obs-fold, NUL bytes, 64 KiB values, thousands
of headers, lying Content-Length, lying chunked encodings), bodies mutated from a valid signed
response (bit flips, truncations, extensions, DER lengths and nestings rewritten), delivered
whole, in fragments, cut short or kept alive for the next request.

A certificate's OCSP URL is http://127.0.0.1:PORT/<name>/: requests for <name> mutate
RESPONSES/<name>.der and RESPONSES/<name>.alt.der (valid responses for that certificate).
Response n of a run is built from random.Random(f"{seed}:{n}"), so a seed and a response
number name the bytes; the last --keep responses are kept in --record as
<n>-<name>-<plan>.bin. Loopback only, standard library only. SIGTERM prints a summary.
"""

import argparse
import collections
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

OCSP_TYPE = b"application/ocsp-response"
# The daemon's caps (20 KiB body, 16 KiB of headers): values on both sides of them.
BODY_CAP = 20480
HEADER_CAP = 16384
REQUEST_HEAD_LIMIT = 65536
IDLE_KEEP_ALIVE_SECONDS = 5.0


# DER walking, to rewrite lengths and nestings instead of random bytes only.

def der_nodes(data, start=0, end=None, depth=0, limit=4000):
    """(tag offset, header length, content length, depth) of every TLV that parses."""
    end = len(data) if end is None else end
    nodes = []
    offset = start
    while offset < end and len(nodes) < limit:
        if offset + 2 > end:
            break
        tag = data[offset]
        first = data[offset + 1]
        header = 2
        if first < 0x80:
            length = first
        elif first == 0x80 or first > 0x84:
            break
        else:
            count = first & 0x7F
            if offset + 2 + count > end:
                break
            length = int.from_bytes(data[offset + 2:offset + 2 + count], "big")
            header += count
        if offset + header + length > end:
            break
        nodes.append((offset, header, length, depth))
        if tag & 0x20:  # constructed: walk inside
            nodes.extend(der_nodes(data, offset + header, offset + header + length, depth + 1, limit - len(nodes)))
        offset += header + length
    return nodes


def der_length(length):
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def mutate_der(rng, data):
    nodes = der_nodes(data)
    if not nodes:
        return data, "der-none"
    offset, header, length, _ = rng.choice(nodes)
    tag = data[offset:offset + 1]
    content = data[offset + header:offset + header + length]
    before, after = data[:offset], data[offset + header + length:]
    kind = rng.randrange(9)
    if kind == 0:  # the length says more or less than there is
        wrong = max(0, length + rng.choice([-2, -1, 1, 2, 128, 65536, -length]))
        return before + tag + der_length(wrong) + content + after, "der-length"
    if kind == 1:  # long form where short would do, with leading zeros
        pad = rng.randrange(1, 4)
        raw = length.to_bytes(max(1, (length.bit_length() + 7) // 8), "big")
        return before + tag + bytes([0x80 | (len(raw) + pad)]) + b"\0" * pad + raw + content + after, "der-longform"
    if kind == 2:  # indefinite or absurd lengths
        form = rng.choice([b"\x80", b"\x84\xff\xff\xff\xff", b"\x88" + b"\xff" * 8, b"\x89" + b"\x01" * 9, b"\xff"])
        return before + tag + form + content + after, "der-absurd-length"
    if kind == 3:  # another tag
        return before + bytes([rng.randrange(256)]) + data[offset + 1:], "der-tag"
    if kind == 4:  # the node twice
        node = data[offset:offset + header + length]
        return before + node + node + after, "der-duplicate"
    if kind == 5:  # the node gone
        return before + after, "der-remove"
    if kind == 6:  # wrapped in more SEQUENCEs
        node = data[offset:offset + header + length]
        for _ in range(rng.randrange(1, 40)):
            node = b"\x30" + der_length(len(node)) + node
        return before + node + after, "der-nest"
    if kind == 7:  # content replaced by random bytes of the same length
        return before + data[offset:offset + header] + bytes(rng.randrange(256) for _ in range(length)) + after, "der-content"
    # content emptied, length kept
    return before + data[offset:offset + header] + after, "der-empty-content"


def mutate_body(rng, valid, alternative, other):
    """A body and the name of what was done to it."""
    base = rng.choice([valid, valid, alternative])
    kind = rng.randrange(16)
    if kind == 0:
        return base, "valid"
    if kind == 1:
        data = bytearray(base)
        for _ in range(rng.randrange(1, 9)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), "bitflip"
    if kind == 2:
        data = bytearray(base)
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(len(data))] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01, 0x30, 0xA0])
        return bytes(data), "interesting-byte"
    if kind == 3:
        return base[:rng.randrange(len(base))], "truncate"
    if kind == 4:
        return base + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), "extend"
    if kind == 5:
        return base + base, "twice"
    if kind == 6:
        start = rng.randrange(len(base))
        return base[:start] + base[start + rng.randrange(1, 32):], "delete"
    if kind == 7:
        start = rng.randrange(len(base))
        return base[:start] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32))) + base[start:], "insert"
    if kind in (8, 9, 10):
        data, name = base, ""
        for _ in range(rng.randrange(1, 4)):
            data, name = mutate_der(rng, data)
        return data, name
    if kind == 11:
        return other, "other-certificate"
    if kind == 12:
        # An unsuccessful OCSPResponse: responseStatus only, any value.
        return bytes([0x30, 0x03, 0x0A, 0x01, rng.randrange(256)]), "unsuccessful"
    if kind == 13:
        return b"", "empty"
    if kind == 14:
        size = rng.choice([BODY_CAP - 1, BODY_CAP, BODY_CAP + 1, 65536, 1 << 20])
        return (base * (size // len(base) + 1))[:size], "oversize"
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))), "random"


# HTTP

STATUS_CODES = [100, 101, 102, 103, 199, 200, 201, 202, 203, 204, 205, 206, 226, 299, 300, 301, 302, 303, 304,
                305, 307, 308, 399, 400, 401, 403, 404, 407, 408, 410, 413, 418, 429, 431, 451, 499, 500, 501,
                502, 503, 504, 505, 599, 600, 999]


def status_line(rng, code):
    """The first line of a response with `code`, or something that only looks like one."""
    kind = rng.randrange(24)
    if kind < 12:
        reason = rng.choice([b"OK"] * 8 + [b"", b"Whatever", b"\xff\xfe", b"OK\0NUL"])
        return b"HTTP/1.1 %d %s\r\n" % (code, reason), "status"
    choices = [
        (b"HTTP/1.0 %d OK\r\n" % code, "http10"),
        (b"HTTP/1.1 %d\r\n" % (code // 10), "two-digit"),
        (b"HTTP/1.1 %d OK\r\n" % (code * 10), "four-digit"),
        (b"HTTP/2 %d\r\n" % code, "http2-line"),
        (b"HTTP/1.1 -%d OK\r\n" % code, "negative"),
        (b"HTTP/9.9 %d OK\r\n" % code, "http99"),
        (b"http/1.1 %d ok\r\n" % code, "lowercase"),
        (b"ICY %d OK\r\n" % code, "icy"),
        (b"HTTP/1.1 %d OK\n" % code, "bare-lf"),
        (b"HTTP/1.1 %d %s\r\n" % (code, b"R" * rng.choice([1000, 20000, 70000])), "long-reason"),
        (bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + b"\r\n", "garbage-line"),
        (b"", "http09"),
    ]
    return rng.choice(choices)


def header_lines(rng):
    """Header lines (bytes, CRLF-terminated) and their plan name; framing comes later."""
    lines = []
    names = []
    content_type = rng.choice([OCSP_TYPE] * 6 + [b"APPLICATION/OCSP-RESPONSE", b"application/ocsp-response; x=y",
                                                 b"text/html", b"", b"application/ocsp-response\0evil",
                                                 b"application/ocsp-request", None])
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type + b"\r\n")
    # Half the answers carry no extra header, so the body gets to the verifier often.
    extras = 0 if rng.random() < 0.5 else rng.randrange(1, 7)
    for _ in range(extras):
        kind = rng.randrange(14)
        if kind == 0:
            lines.append(b"Content-Type: " + rng.choice([OCSP_TYPE, b"text/plain"]) + b"\r\n")
            names.append("duplicate-content-type")
        elif kind == 1:
            age = rng.choice([b"0", b"-1", b"86400", b"9223372036854775808", b"99999999999999999999", b"x",
                              b'"60"', b""])
            lines.append(b"Cache-Control: " + rng.choice([b"max-age=", b"public, max-age=", b"s-maxage="]) + age + b"\r\n")
            names.append("cache-control")
        elif kind == 2:
            lines.append(b": empty-name\r\n")
            names.append("empty-name")
        elif kind == 3:
            lines.append(b"X-Folded: first\r\n" + rng.choice([b" ", b"\t"]) + b"continued\r\n")
            names.append("obs-fold")
        elif kind == 4:
            lines.append(b"X-N\0l: va\0lue\r\n")
            names.append("nul")
        elif kind == 5:
            lines.append(b"X-Big: " + b"v" * rng.choice([HEADER_CAP - 100, 65536]) + b"\r\n")
            names.append("64k-value")
        elif kind == 6:
            lines.append(b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(rng.choice([100, 1000, 5000]))))
            names.append("many-headers")
        elif kind == 7:
            lines.append(b"no colon at all\r\n")
            names.append("no-colon")
        elif kind == 8:
            lines.append(b"Location: " + rng.choice([b"/again/", b"file:///etc/passwd", b"ftp://127.0.0.1:1/",
                                                     b"http://127.0.0.1:1/", b"", b"\0", b"gopher://127.0.0.1:1/",
                                                     b"/" + b"a" * 5000]) + b"\r\n")
            names.append("location")
        elif kind == 9:
            lines.append(b"Content-Encoding: " + rng.choice([b"gzip", b"deflate", b"br", b"zstd", b"x"]) + b"\r\n")
            names.append("content-encoding")
        elif kind == 10:
            lines.append(rng.choice([b"Connection: keep-alive\r\n", b"Connection: close\r\n",
                                     b"Connection: upgrade\r\nUpgrade: h2c\r\n", b"Keep-Alive: timeout=1\r\n"]))
            names.append("connection")
        elif kind == 11:
            lines.append(rng.choice([b"WWW-Authenticate: Basic realm=x\r\n", b"Set-Cookie: a=b\r\n",
                                     b"Alt-Svc: h3=\":1\"\r\n", b"Strict-Transport-Security: max-age=1\r\n",
                                     b"Retry-After: 99999999999\r\n", b"Content-Range: bytes 0-1/2\r\n"]))
            names.append("other")
        elif kind == 12:
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 100))) + b"\r\n")
            names.append("garbage-header")
        else:
            lines.append(b"X-High: \x80\xff\xfe\r\n")
            names.append("high-bytes")
    return lines, names


def chunked(rng, body):
    """A chunked encoding of body, honest or not, and its plan name."""
    pieces = []
    offset = 0
    while offset < len(body):
        size = rng.randrange(1, max(2, len(body) // 3))
        pieces.append(body[offset:offset + size])
        offset += size
    kind = rng.randrange(10)
    out = b""
    for piece in pieces:
        out += b"%x" % len(piece) + (b";ext=1" if kind == 1 else b"") + b"\r\n" + piece + b"\r\n"
    if kind == 2:  # a size larger than what follows
        out = b"%x\r\n" % (len(body) + rng.randrange(1, 1000)) + body + b"\r\n"
    elif kind == 3:
        out = rng.choice([b"zz", b"-1", b"ffffffffffffffff", b"10000000000000000000", b""]) + b"\r\n" + body + b"\r\n"
    elif kind == 4:  # no CRLF after the data
        out = b"%x\r\n" % len(body) + body
    if kind == 5:
        return out, "chunked-unterminated"
    if kind == 6:
        return out + b"0\r\nX-Trailer: " + b"t" * rng.choice([10, 70000]) + b"\r\n\r\n", "chunked-trailer"
    return out + b"0\r\n\r\n", ["chunked", "chunked-ext", "chunked-longer", "chunked-bad-size",
                                "chunked-no-crlf"][kind] if kind < 5 else "chunked"


def framed(rng, lines, body):
    """Head (status line excluded) and body bytes with some framing, and its plan name."""
    kind = rng.randrange(12)
    if kind < 5:
        return b"".join(lines) + b"Content-Length: %d\r\n\r\n" % len(body), body, "length"
    if kind == 5:
        lie = max(0, len(body) + rng.choice([-100, -1, 1, 100, 100000]))
        return b"".join(lines) + b"Content-Length: %d\r\n\r\n" % lie, body, "length-lie"
    if kind == 6:
        value = rng.choice([b"-1", b"+%d" % len(body), b"0x10", b"%d, %d" % (len(body), len(body) + 1),
                            b" %d " % len(body), b"99999999999999999999999", b"abc"])
        return b"".join(lines) + b"Content-Length: " + value + b"\r\n\r\n", body, "length-odd"
    if kind == 7:
        return (b"".join(lines) + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                % (len(body), len(body) // 2)), body, "length-twice"
    if kind == 8:
        return b"".join(lines) + b"\r\n", body, "close-delimited"
    encoded, name = chunked(rng, body)
    both = b"Content-Length: %d\r\n" % len(body) if kind == 9 else b""
    coding = rng.choice([b"chunked", b"chunked", b"gzip, chunked", b"chunked, chunked", b"identity"])
    return b"".join(lines) + both + b"Transfer-Encoding: " + coding + b"\r\n\r\n", encoded, name


def build(rng, valid, alternative, other):
    """One whole response: (bytes, plan name, keep the connection open afterwards)."""
    body, body_plan = mutate_body(rng, valid, alternative, other)
    code = 200 if rng.random() < 0.6 else rng.choice(STATUS_CODES)
    first, line_plan = status_line(rng, code)
    if line_plan == "http09":
        return body, "http09/" + body_plan, False
    prefix = b""
    if rng.random() < 0.1:  # interim responses first
        prefix = b"".join(rng.choice([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
                                      b"HTTP/1.1 102 Processing\r\n\r\n"]) for _ in range(rng.randrange(1, 50)))
    lines, header_plans = header_lines(rng)
    head, payload, framing = framed(rng, lines, body)
    keep = rng.random() < 0.25
    plan = "/".join([line_plan, framing, body_plan] + header_plans[:3])
    return prefix + first + head + payload, plan, keep


class Responder:
    def __init__(self, port, seed, responses, record, keep):
        self.seed = seed
        self.responses = responses
        self.record = record
        self.keep = keep
        self.lock = threading.Lock()
        self.count = 0
        self.connections = 0
        self.plans = collections.Counter()
        self.recorded = collections.deque()
        self.cache = {}
        self.names = sorted(n[:-4] for n in os.listdir(responses) if n.endswith(".der") and not n.endswith(".alt.der"))
        if not self.names:
            sys.exit(f"no responses in {responses}")
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(256)

    def valid(self, name):
        if name not in self.cache:
            with open(os.path.join(self.responses, name + ".der"), "rb") as file:
                valid = file.read()
            with open(os.path.join(self.responses, name + ".alt.der"), "rb") as file:
                alternative = file.read()
            self.cache[name] = (valid, alternative)
        return self.cache[name]

    def serve_forever(self):
        while True:
            connection, _ = self.listener.accept()
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def serve(self, connection):
        try:
            connection.settimeout(IDLE_KEEP_ALIVE_SECONDS)
            pending = b""
            while True:
                path, pending = read_request(connection, pending)
                if path is None:
                    return
                name = path.strip("/").split("/")[0]
                if name not in self.names:
                    name = self.names[0]
                with self.lock:
                    number = self.count
                    self.count += 1
                rng = random.Random(f"{self.seed}:{number}")
                valid, alternative = self.valid(name)
                other = self.valid(rng.choice(self.names))[0]
                data, plan, keep = build(rng, valid, alternative, other)
                self.note(number, name, plan, data)
                if not deliver(rng, connection, data) or not keep:
                    return
        except OSError:
            return
        finally:
            try:
                connection.close()
            except OSError:
                pass

    def note(self, number, name, plan, data):
        family = "/".join(plan.split("/")[:3])
        path = None
        if self.record:
            path = os.path.join(self.record, f"{number:07d}-{name}-{plan.replace('/', '+')[:80]}.bin")
            with open(path, "wb") as file:
                file.write(data)
        with self.lock:
            self.plans[family] += 1
            if path:
                self.recorded.append(path)
                while len(self.recorded) > self.keep:
                    try:
                        os.unlink(self.recorded.popleft())
                    except OSError:
                        pass

    def summary(self):
        with self.lock:
            top = ", ".join(f"{name} {count}" for name, count in self.plans.most_common(12))
            return (f"mutation responder: seed {self.seed}: {self.count} responses on {self.connections} "
                    f"connections; most frequent plans: {top}")


def read_request(connection, pending):
    """The path of the next request on the connection (and bytes after it), or None."""
    while b"\r\n\r\n" not in pending:
        if len(pending) > REQUEST_HEAD_LIMIT:
            return None, b""
        chunk = connection.recv(65536)
        if not chunk:
            return None, b""
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) < 2:
        return None, b""
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = min(int(value.strip()), REQUEST_HEAD_LIMIT)
            except ValueError:
                return None, b""
    while len(rest) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return parts[1].decode("latin-1"), rest[length:]


def deliver(rng, connection, data):
    """Sends the response whole, in fragments, or cut short; True if the connection may go on."""
    kind = rng.randrange(10)
    if kind < 6:
        connection.sendall(data)
        return True
    if kind < 9:  # fragments, with small pauses
        offset = 0
        started = time.monotonic()
        while offset < len(data):
            size = rng.choice([1, 2, 7, 100, 1500, 16384])
            connection.sendall(data[offset:offset + size])
            offset += size
            if time.monotonic() - started < 2:
                time.sleep(rng.choice([0, 0, 0, 0.001, 0.01]))
        return True
    # cut short: part of it, then a reset
    connection.sendall(data[:rng.randrange(len(data) + 1)])
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--responses", required=True, help="directory of <name>.der and <name>.alt.der")
    parser.add_argument("--record", help="directory keeping the last responses sent")
    parser.add_argument("--keep", type=int, default=300, help="responses kept in --record")
    arguments = parser.parse_args()
    if arguments.record:
        os.makedirs(arguments.record, exist_ok=True)
    responder = Responder(arguments.port, arguments.seed, arguments.responses, arguments.record, arguments.keep)

    def stop(signum, frame):
        print(responder.summary(), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"mutation responder: seed {arguments.seed}, listening on 127.0.0.1:{arguments.port}", flush=True)
    responder.serve_forever()


if __name__ == "__main__":
    main()
