#!/usr/bin/env python3
"""OCSP responder for the Stapler benchmark: pre-signed answers over HTTP/1.1 keep-alive.

    python3 contrib/bench/responder.py --pki ROOT --port PORT [--delegated]

`openssl ocsp` signs every answer on the fly, embeds the CA certificate and closes the
connection after each answer, so it measures itself as much as the client. Like a large CA's
responder, this one signs everything once at start (SHA-1 CertID, responder id by key hash,
no certificates embedded, as Let's Encrypt did) and then only looks answers up by the request's bytes.
With --delegated it signs through a delegated responder certificate (RFC 6960 §4.2.2.2: issued
by the CA, id-kp-OCSPSigning, EC P-256) made at start and embedded in every answer, as many
CAs do.
"""
import argparse
import asyncio
import base64
import binascii
import datetime
import glob
import signal
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509 import ocsp

# Caps so a confused or hostile client cannot make us buffer without bound.
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024

PEM_END = b"-----END CERTIFICATE-----"


def first_certificate(path):
    """The leaf: each bundle is leaf PEM + CA PEM + key, and only the first block matters."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(PEM_END) + len(PEM_END)
    return x509.load_pem_x509_certificate(data[:end])


def delegated_responder(ca, ca_key, now):
    """A responder certificate the CA delegates OCSP signing to, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Benchmark OCSP Responder")]))
                   .issuer_name(ca.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    return certificate, key


def sign_all(root, delegated=False):
    with open(f"{root}/ca.pem", "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(f"{root}/ca.key", "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    signer, signer_key = delegated_responder(ca, ca_key, now) if delegated else (ca, ca_key)
    # A minute in the past, so a client whose clock lags slightly still accepts thisUpdate.
    this_update, next_update = now - datetime.timedelta(minutes=1), now + datetime.timedelta(days=1)
    answers, by_request = {}, {}
    for path in sorted(glob.glob(f"{root}/certs/*.pem")):
        leaf = first_certificate(path)
        # The request a client without nonce sends (the same bytes as `openssl ocsp`), by GET
        # and by POST, mapped to its answer in advance: serving then parses nothing.
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA1()).build() \
            .public_bytes(serialization.Encoding.DER)
        target = "/" + urllib.parse.quote(base64.b64encode(request).decode(), safe="")
        builder = (ocsp.OCSPResponseBuilder()
                   .add_response(cert=leaf, issuer=ca, algorithm=hashes.SHA1(),
                                 cert_status=ocsp.OCSPCertStatus.GOOD, this_update=this_update,
                                 next_update=next_update, revocation_time=None, revocation_reason=None)
                   .responder_id(ocsp.OCSPResponderEncoding.HASH, signer))
        if delegated:
            builder = builder.certificates([signer])
        answers[leaf.serial_number] = builder.sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        by_request[("GET", target, b"")] = by_request[("POST", "/", request)] = answers[leaf.serial_number]
    return answers, by_request


class BadRequest(Exception):
    pass


class OCSPConnection(asyncio.Protocol):
    """One client connection. Parses requests out of a buffer as bytes arrive, so a client
    that sends nothing costs nothing (the event loop simply never wakes for it)."""

    def __init__(self, server):
        self.server = server
        self.buffer = bytearray()
        self.continued = False  # "100 Continue" already sent for the pending request

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        try:
            while not self.transport.is_closing() and self.handle_one():
                pass
        except BadRequest:
            self.reply(400, b"", keep_alive=False)

    def handle_one(self):
        """Answers the first complete request in the buffer; False when it needs more bytes."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise BadRequest()
            return False
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise BadRequest()
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise BadRequest()
            headers[name.strip().lower()] = value.strip().lower()
        if "transfer-encoding" in headers:
            raise BadRequest()  # OCSP clients send a Content-Length; chunked bodies are not worth it
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest() from None
        if not 0 <= length <= MAX_BODY:
            raise BadRequest()
        if len(self.buffer) < end + 4 + length:
            if headers.get("expect") == "100-continue" and not self.continued:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.continued = True
            return False
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        self.continued = False
        connection = headers.get("connection", "")
        # HTTP/1.1 keeps the connection by default, HTTP/1.0 only when asked.
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        # The same request (method and target or body) gets the same answer: looking it up
        # by its bytes spares parsing it, which was most of this responder's CPU per request.
        # Other forms (another client's encoding, a nonce) are parsed, and remembered up to
        # a bound.
        key = (method, target, body)
        answer = self.server.by_request.get(key)
        if answer is None:
            try:
                der = body if method == "POST" else decode_get(target) if method == "GET" else None
                if der is None:
                    raise ValueError("method")
                serial = ocsp.load_der_ocsp_request(der).serial_number
            except ValueError:  # also binascii.Error and cryptography's parse errors
                self.reply(400, b"", keep_alive)
                return True
            answer = self.server.answers.get(serial, self.server.unauthorized)
            if len(self.server.by_request) < self.server.max_remembered:
                self.server.by_request[key] = answer
        self.server.served += 1
        self.reply(200, answer, keep_alive)
        return True

    def reply(self, status, body, keep_alive):
        reason = b"OK" if status == 200 else b"Bad Request"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/ocsp-response\r\nContent-Length: %d\r\n" % (
            status, reason, len(body))
        self.transport.write(head + (b"\r\n" if keep_alive else b"Connection: close\r\n\r\n") + body)
        if not keep_alive:
            self.transport.close()


def decode_get(target):
    """GET /<url-encoded base64 DER>: base64 has '/' in its alphabet, so the whole path after
    the first slash is the request."""
    path = urllib.parse.urlsplit(target).path
    try:
        return base64.b64decode(urllib.parse.unquote(path[1:]), validate=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from None


class Server:
    def __init__(self, answers, by_request):
        self.answers = answers
        # Unsigned by definition (RFC 6960 §2.3): the answer for a serial we never issued.
        self.unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
        self.served = 0
        # Answers by the exact request that asked for them; bounded (requests with nonces
        # would otherwise add one each): a GET and a POST form per certificate, and some.
        self.by_request = by_request
        self.max_remembered = 2 * len(answers) + 1024


async def serve(root, port, delegated):
    started = time.monotonic()
    server = Server(*sign_all(root, delegated))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listener = await loop.create_server(lambda: OCSPConnection(server), "127.0.0.1", port,
                                        reuse_address=True, backlog=1024)
    print(f"ready {len(server.answers)} certificates signed in {time.monotonic() - started:.2f} s", flush=True)
    await stop.wait()
    listener.close()
    print(f"served {server.served} requests", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pki", required=True, help="directory with ca.pem, ca.key and certs/*.pem")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--delegated", action="store_true",
                        help="sign through a delegated responder certificate embedded in every answer")
    args = parser.parse_args()
    asyncio.run(serve(args.pki, args.port, args.delegated))


if __name__ == "__main__":
    sys.exit(main())
