"""Prints an HS256 JWT for a development user (standard library only).

Usage: jwt.py USER ADMIN(true|false); the key is $JWT_HS256_SECRET.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    user, admin = sys.argv[1], sys.argv[2] == "true"
    secret = os.environ["JWT_HS256_SECRET"].encode()
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + 12 * 3600, "roles": ["admin"] if admin else []}
    for claim, var in (("iss", "JWT_ISSUER"), ("aud", "JWT_AUDIENCE")):
        if os.environ.get(var):
            claims[claim] = os.environ[var]
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    print(f"{signing_input}.{b64(signature)}")


if __name__ == "__main__":
    main()
