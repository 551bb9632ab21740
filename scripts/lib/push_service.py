"""A local Web Push service for notification's stack tests.

It plays both the push service (RFC 8030) and the browser behind it:
- POST /subscriptions makes a subscription with a fresh P-256 key pair and
  16-byte auth secret (what a browser would), answering the
  endpoint/p256dh/auth a client registers. Body (optional):
  {"respond": 410} or {"respond": 429, "retry_after": 3} makes every push
  to it answer that status (an expired or rate-limited subscription);
  {"delay_ms": 6000} makes every push to it wait that long before the
  answer (a slow push service).
- POST /push/<id> is the push endpoint. It checks the RFC 8292 VAPID
  header `vapid t=<jwt>, k=<key>` itself (py-vapid's verifier does not take
  that form): ES256 signature under k, `aud` the endpoint's origin, `exp`
  in the future and at most 24 h ahead, `sub` present; then a `TTL`
  header and `Content-Encoding: aes128gcm`; then decrypts the body with
  the subscription's private key (RFC 8291, http_ece) and records the
  plaintext. A check that fails answers 400/401 and records nothing.
- GET /messages/<id> lists what arrived: plaintext, TTL, Urgency, aud.

Run: python push_service.py [--port N] (0 picks one; the first stdout line
is the base URL, so a test that starts it knows where it is).
"""
import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url_decode(value):
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class VapidError(Exception):
    pass


def parse_vapid(header):
    """`vapid t=<jwt>, k=<key>` -> (jwt, key bytes)."""
    if not header or not header.lower().startswith("vapid "):
        raise VapidError("Authorization is not a vapid header")
    params = {}
    for part in header[len("vapid "):].split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip()] = value.strip()
    if "t" not in params or "k" not in params:
        raise VapidError("vapid header needs t= and k=")
    return params["t"], b64url_decode(params["k"])


def verify_vapid(header, origins, now=None):
    """Checks the token against the key in the header; returns its claims."""
    token, key = parse_vapid(header)
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError as error:
        raise VapidError(f"k is not a P-256 point: {error}")
    parts = token.split(".")
    if len(parts) != 3:
        raise VapidError("t is not a JWT")
    header_json = json.loads(b64url_decode(parts[0]))
    if header_json.get("alg") != "ES256":
        raise VapidError("alg must be ES256")
    signature = b64url_decode(parts[2])
    if len(signature) != 64:
        raise VapidError("ES256 signature must be 64 bytes (r||s)")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidError("bad signature")
    claims = json.loads(b64url_decode(parts[1]))
    now = time.time() if now is None else now
    if claims.get("aud") not in origins:
        raise VapidError(f"aud {claims.get('aud')!r} is not this origin")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= now or exp > now + 24 * 3600 + 60:
        raise VapidError("exp must be in the future and at most 24 h ahead")
    if not claims.get("sub"):
        raise VapidError("sub is required")
    return claims


class Subscription:
    def __init__(self, base, respond=None, retry_after=None, delay_ms=None):
        self.id = uuid.uuid4().hex
        self.delay = (delay_ms or 0) / 1000
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = f"{base}/push/{self.id}"
        self.respond = respond
        self.retry_after = retry_after
        self.messages = []

    def public(self):
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"id": self.id, "endpoint": self.endpoint, "p256dh": b64url(point), "auth": b64url(self.auth)}


class PushService:
    def __init__(self):
        self.lock = threading.Lock()
        self.subscriptions = {}
        self.base = None
        self.origins = []

    def subscribe(self, respond=None, retry_after=None, delay_ms=None):
        sub = Subscription(self.base, respond, retry_after, delay_ms)
        with self.lock:
            self.subscriptions[sub.id] = sub
        return sub

    def receive(self, sub_id, headers, body):
        """Returns (status, error or None)."""
        with self.lock:
            sub = self.subscriptions.get(sub_id)
        if sub is None:
            return 404, "no such subscription"
        # Each request has its own thread (ThreadingHTTPServer): a slow
        # subscription holds only its own pushes.
        time.sleep(sub.delay)
        try:
            claims = verify_vapid(headers.get("Authorization"), self.origins)
        except (VapidError, ValueError) as error:
            return 401, str(error)
        if headers.get("TTL") is None or not headers.get("TTL").isdigit():
            return 400, "TTL header required"
        if headers.get("Content-Encoding") != "aes128gcm":
            return 400, "Content-Encoding must be aes128gcm"
        if sub.respond:
            return sub.respond, None
        try:
            plaintext = http_ece.decrypt(body, private_key=sub.private, auth_secret=sub.auth, version="aes128gcm")
        except Exception as error:  # http_ece raises several kinds
            return 400, f"cannot decrypt: {error}"
        with self.lock:
            sub.messages.append({
                "plaintext": plaintext.decode("utf-8", "replace"),
                "ttl": int(headers.get("TTL")),
                "urgency": headers.get("Urgency"),
                "aud": claims["aud"],
                "sub": claims["sub"],
                "received_at": time.time(),
            })
        return 201, None

    def messages(self, sub_id):
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            return None if sub is None else list(sub.messages)


def handler_for(service):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body=None, headers=()):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_POST(self):
            if self.path == "/subscriptions":
                options = json.loads(self.body() or b"{}")
                sub = service.subscribe(
                    options.get("respond"), options.get("retry_after"), options.get("delay_ms")
                )
                return self.reply(201, sub.public())
            if self.path.startswith("/push/"):
                sub_id = self.path[len("/push/"):]
                status, error = service.receive(sub_id, self.headers, self.body())
                headers = []
                sub = service.subscriptions.get(sub_id)
                if status == 429 and sub is not None and sub.retry_after:
                    headers.append(("Retry-After", str(sub.retry_after)))
                return self.reply(status, {"error": error} if error else None, headers)
            self.reply(404, {"error": "not found"})

        def do_GET(self):
            if self.path.startswith("/messages/"):
                messages = service.messages(self.path[len("/messages/"):])
                if messages is None:
                    return self.reply(404, {"error": "no such subscription"})
                return self.reply(200, {"items": messages})
            if self.path == "/healthz":
                return self.reply(200, {"ok": True})
            self.reply(404, {"error": "not found"})

    return Handler


def start(port=0):
    """Starts the service on 127.0.0.1:port in a thread; returns (server, service)."""
    service = PushService()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(service))
    host, bound = server.server_address[:2]
    service.base = f"http://{host}:{bound}"
    # RFC 8292: aud is the origin; a sender may also leave out the port
    # (web-push-native 0.5 writes scheme://host), which is recorded as is.
    service.origins = [service.base, f"http://{host}"]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, service


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server, service = start(args.port)
    print(service.base, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
