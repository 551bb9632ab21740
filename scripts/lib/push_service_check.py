"""Validates scripts/lib/push_service.py with an independent sender,
pywebpush (RFC 8291 aes128gcm + RFC 8292 VAPID), so notification's stack
tests rest on a push service known to accept what a real sender sends and
to refuse what it must. Needs the push venv (scripts/lib/push.sh):
"$(push_python)" -m unittest scripts/lib/push_service_check.py
"""
import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import push_service  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from pywebpush import WebPushException, webpush  # noqa: E402


def vapid_key_pem():
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def vapid():
    from py_vapid import Vapid
    return Vapid.from_pem(vapid_key_pem().encode())


class PushServiceWithPywebpush(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.service = push_service.start(0)
        cls.vapid = vapid()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def send(self, sub, data, **kwargs):
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.public()["p256dh"], "auth": sub.public()["auth"]}}
        return webpush(info, data, vapid_private_key=kwargs.pop("key", self.vapid),
                       vapid_claims={"sub": "mailto:test@example.com"}, ttl=60, **kwargs)

    def test_a_real_sender_is_decrypted_and_recorded(self):
        sub = self.service.subscribe()
        response = self.send(sub, json.dumps({"title": "Buy milk"}), headers={"Urgency": "high"})
        self.assertEqual(response.status_code, 201)
        [message] = self.service.messages(sub.id)
        self.assertEqual(json.loads(message["plaintext"]), {"title": "Buy milk"})
        self.assertEqual((message["ttl"], message["urgency"]), (60, "high"))

    def test_a_message_for_another_key_is_refused(self):
        sub, other = self.service.subscribe(), self.service.subscribe()
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": other.public()["p256dh"], "auth": other.public()["auth"]}}
        with self.assertRaises(WebPushException) as caught:
            webpush(info, "secret", vapid_private_key=self.vapid, vapid_claims={"sub": "mailto:t@example.com"})
        self.assertEqual(caught.exception.response.status_code, 400)
        self.assertEqual(self.service.messages(sub.id), [])

    def test_a_forged_vapid_token_is_refused(self):
        sub = self.service.subscribe()
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.public()["p256dh"], "auth": sub.public()["auth"]}}
        # Signed by one key, presented with another's public key.
        signer = vapid()
        headers = signer.sign({"sub": "mailto:t@example.com", "aud": self.service.base})
        other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        token = headers["Authorization"].split(" ", 1)[1].split(",")[0].strip()
        token = token[2:] if token.startswith("t=") else token
        forged = f"vapid t={token}, k={base64.urlsafe_b64encode(other).rstrip(b'=').decode()}"
        with self.assertRaises(WebPushException) as caught:
            webpush(info, "x", headers={"Authorization": forged})
        self.assertEqual(caught.exception.response.status_code, 401)

    def test_expired_subscriptions_answer_410(self):
        sub = self.service.subscribe(respond=410)
        with self.assertRaises(WebPushException) as caught:
            self.send(sub, "x")
        self.assertEqual(caught.exception.response.status_code, 410)


if __name__ == "__main__":
    unittest.main()
