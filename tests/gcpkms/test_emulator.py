#!/usr/bin/env python3
"""Self-test of emulator.py over HTTP (unittest, stdlib + cryptography).

Starts the emulator on a free 127.0.0.1 port (or uses P11KMS_GCPKMS_TEST_PORT) and
checks every call against real cryptography: signatures verify with `cryptography`,
OAEP ciphertexts made here decrypt there, AES-GCM ciphertexts round-trip with AAD and
survive a primary rotation, CRC32C is checked both ways, strictness and faults behave.
Run: python3 tests/gcpkms/test_emulator.py [-v]
"""

import base64
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from emulator import crc32c  # noqa: E402

LOC = "projects/test-project/locations/global"
# What google-cloud-kms-v1 appends to every call.
ALT = "%24alt=json%3Benum-encoding%3Dint"
SECRET = b"p11kms-secret-payload"
HASH = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def b64(data):
    return base64.b64encode(data).decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, state=None, port=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, os.path.join(HERE, "emulator.py"), "--port", str(self.port),
                "--generation-delay-ms", "150"] + (["--state", state] if state else [])
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stderr=self.log)
        # Its first line says it is bound: a port taken by another server is an error
        # here, not a test run against the wrong emulator.
        for _ in range(200):
            self.log.seek(0)
            if b"listening on" in self.log.read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"emulator did not start on port {self.port}: {self.stop()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.seek(0)
        text = self.log.read().decode()
        self.log.close()
        return text

    def call(self, method, path, body=None, query="", ints=True, timeout=30, raw=None,
             auth=True):
        """(HTTP status, JSON) of one call; `path` under /v1/ unless it starts with /."""
        url = (path if path.startswith("/") else "/v1/" + path)
        qs = "&".join(x for x in (query, ALT if ints else "") if x)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is None and method == "POST":
            data = b"{}"
        headers = {"Content-Type": "application/json",
                   "x-goog-api-client": "gl-rust/1.95.0 gax/0.7.21 gapic/1.16.0"}
        if auth:
            headers["Authorization"] = "Bearer test-token"
        req = urllib.request.Request(self.base + url + ("?" + qs if qs else ""), data=data,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


class EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(port=int(os.environ.get("P11KMS_GCPKMS_TEST_PORT") or 0))
        cls.ring = f"{LOC}/keyRings/selftest"
        status, _ = cls.emu.call("POST", f"{LOC}/keyRings", {}, "keyRingId=selftest")
        assert status == 200, status

    @classmethod
    def tearDownClass(cls):
        log = cls.emu.stop()
        # One line per request, and never a payload (SECRET is encrypted below).
        assert f"POST /v1/{cls.ring}/cryptoKeys/sym:encrypt 200 Encrypt\n" in log, log
        assert SECRET.decode() not in log and b64(SECRET) not in log, log

    def setUp(self):
        self.emu.call("DELETE", "/_emulator/faults")

    def ok(self, *args, **kw):
        status, out = self.emu.call(*args, **kw)
        self.assertEqual(status, 200, out)
        return out

    def err(self, code, status_name, *args, **kw):
        status, out = self.emu.call(*args, **kw)
        self.assertEqual(status, code, out)
        self.assertEqual(out["error"]["status"], status_name, out)
        self.assertEqual(out["error"]["code"], code)
        self.assertEqual(out["error"]["details"], [])
        return out["error"]["message"]

    def key(self, kid, purpose, algorithm, level=1, query=""):
        """Creates a CryptoKey the way the Rust client does (int enums, all query
        parameters present) and returns its name."""
        q = f"cryptoKeyId={kid}&skipInitialVersionCreation=false&trustedWrappingEnabled=false"
        body = {"purpose": purpose,
                "versionTemplate": {"protectionLevel": level, "algorithm": algorithm}}
        out = self.ok("POST", f"{self.ring}/cryptoKeys", body, query or q)
        self.assertEqual(out["purpose"], purpose)
        return out["name"]

    def enabled(self, version):
        """Polls a version until ENABLED, checking it was PENDING_GENERATION first."""
        states = []
        for _ in range(200):
            states.append(self.ok("GET", version)["state"])
            if states[-1] == 1:
                break
            time.sleep(0.05)
        self.assertEqual(states[-1], 1, states)
        return states

    def public_key(self, version):
        out = self.ok("GET", f"{version}/publicKey", query="publicKeyFormat=0")
        self.assertEqual(int(out["pemCrc32c"]), crc32c(out["pem"].encode()))
        return serialization.load_pem_public_key(out["pem"].encode())

    def sign(self, version, digest_kind, message=b"hello", crc=True):
        digest = hashlib.new(digest_kind, message).digest()
        body = {"digest": {digest_kind: b64(digest)}}
        if crc:
            body["digestCrc32c"] = str(crc32c(digest))
        out = self.ok("POST", f"{version}:asymmetricSign", body)
        sig = base64.b64decode(out["signature"])
        self.assertEqual(int(out["signatureCrc32c"]), crc32c(sig))
        self.assertEqual(out["verifiedDigestCrc32c"], crc)
        self.assertEqual(out["name"], version)
        return digest, sig

    # --- tests ---
    def test_crc32c_vector(self):
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(crc32c(b""), 0)

    def test_key_rings(self):
        self.err(409, "ALREADY_EXISTS", "POST", f"{LOC}/keyRings", {}, "keyRingId=selftest")
        self.err(404, "NOT_FOUND", "GET", f"{LOC}/keyRings/nope")
        self.err(400, "INVALID_ARGUMENT", "POST", f"{LOC}/keyRings", {}, "keyRingId=a.b")
        out = self.ok("GET", self.ring, auth=False)  # anonymous credentials send none
        self.assertEqual(out["name"], self.ring)
        self.assertTrue(out["createTime"].endswith("Z"))
        names = [r["name"] for r in self.ok("GET", f"{LOC}/keyRings",
                                            query="pageSize=0&pageToken=&filter=&orderBy=")
                 ["keyRings"]]
        self.assertIn(self.ring, names)

    def test_sign_and_verify_every_algorithm(self):
        cases = [  # (id, algorithm number, level, digest, check)
            ("ec256", 12, 1, "sha256", "ec"), ("ec384", 13, 2, "sha384", "ec"),
            ("k1", 31, 2, "sha256", "ec"), ("pkcs2048", 5, 1, "sha256", "pkcs1"),
            ("pss3072", 3, 1, "sha256", "pss"), ("pkcs4096", 16, 1, "sha512", "pkcs1"),
            ("pss4096", 15, 2, "sha512", "pss")]
        for kid, alg, level, dk, check in cases:
            with self.subTest(kid):
                version = self.key("sign-" + kid, 5, alg, level) + "/cryptoKeyVersions/1"
                self.assertNotIn("primary", self.ok("GET", version.split("/cryptoKeyV")[0]))
                states = self.enabled(version)
                self.assertEqual(states[0], 5)  # PENDING_GENERATION first
                pub = self.public_key(version)
                digest, sig = self.sign(version, dk)
                h = Prehashed(HASH[dk]())
                if check == "ec":
                    pub.verify(sig, digest, ec.ECDSA(h))
                elif check == "pss":
                    pub.verify(sig, digest, padding.PSS(padding.MGF1(HASH[dk]()),
                                                        HASH[dk].digest_size), h)
                else:
                    pub.verify(sig, digest, padding.PKCS1v15(), h)
                with self.assertRaises(InvalidSignature):
                    pub.verify(sig, bytes(len(digest)), *(
                        [ec.ECDSA(h)] if check == "ec" else [padding.PKCS1v15(), h]))

    def test_pending_version_refuses_use(self):
        version = self.key("pending", 5, 12) + "/cryptoKeyVersions/1"
        msg = self.err(400, "FAILED_PRECONDITION", "GET", f"{version}/publicKey")
        self.assertIn("PENDING_GENERATION", msg)
        self.enabled(version)
        # Also: data signing (hashed by the service) and the DER public key format.
        out = self.ok("POST", f"{version}:asymmetricSign",
                      {"data": b64(b"raw data"), "dataCrc32c": str(crc32c(b"raw data"))})
        self.assertTrue(out["verifiedDataCrc32c"])
        der = self.ok("GET", f"{version}/publicKey", query="publicKeyFormat=2")
        self.assertEqual(der["publicKeyFormat"], 2)
        pub = serialization.load_der_public_key(base64.b64decode(der["publicKey"]["data"]))
        pub.verify(base64.b64decode(out["signature"]), b"raw data", ec.ECDSA(hashes.SHA256()))

    def test_sign_refusals(self):
        version = self.key("refuse", 5, 12) + "/cryptoKeyVersions/1"
        self.enabled(version)
        d = hashlib.sha384(b"x").digest()
        self.err(400, "INVALID_ARGUMENT", "POST", f"{version}:asymmetricSign",
                 {"digest": {"sha384": b64(d)}})
        self.err(400, "INVALID_ARGUMENT", "POST", f"{version}:asymmetricSign",
                 {"digest": {"sha256": b64(d)}})  # wrong length
        d = hashlib.sha256(b"x").digest()
        msg = self.err(400, "INVALID_ARGUMENT", "POST", f"{version}:asymmetricSign",
                       {"digest": {"sha256": b64(d)}, "digestCrc32c": str(crc32c(d) ^ 1)})
        self.assertIn("checksum", msg)
        # secp256k1 exists only at protection level HSM; purpose and algorithm must agree.
        self.err(400, "INVALID_ARGUMENT", "POST", f"{self.ring}/cryptoKeys",
                 {"purpose": 5, "versionTemplate": {"protectionLevel": 1, "algorithm": 31}},
                 "cryptoKeyId=k1soft")
        self.err(400, "INVALID_ARGUMENT", "POST", f"{self.ring}/cryptoKeys",
                 {"purpose": 6, "versionTemplate": {"protectionLevel": 1, "algorithm": 12}},
                 "cryptoKeyId=mismatch")
        self.err(409, "ALREADY_EXISTS", "POST", f"{self.ring}/cryptoKeys",
                 {"purpose": 5, "versionTemplate": {"algorithm": 12}}, "cryptoKeyId=refuse")
        self.err(404, "NOT_FOUND", "POST", f"{self.ring}/cryptoKeys/refuse/"
                 "cryptoKeyVersions/9:asymmetricSign", {"digest": {"sha256": b64(d)}})

    def test_asymmetric_decrypt(self):
        for kid, alg, h in (("oaep256", 8, hashes.SHA256), ("oaep1", 37, hashes.SHA1),
                            ("oaep512", 17, hashes.SHA512)):
            with self.subTest(kid):
                version = self.key(kid, 6, alg) + "/cryptoKeyVersions/1"
                self.enabled(version)
                pub = self.public_key(version)
                ct = pub.encrypt(b"secret", padding.OAEP(padding.MGF1(h()), h(), None))
                out = self.ok("POST", f"{version}:asymmetricDecrypt",
                              {"ciphertext": b64(ct), "ciphertextCrc32c": str(crc32c(ct))})
                self.assertEqual(base64.b64decode(out["plaintext"]), b"secret")
                self.assertEqual(int(out["plaintextCrc32c"]), crc32c(b"secret"))
                self.assertTrue(out["verifiedCiphertextCrc32c"])
                bad = bytes([ct[0] ^ 1]) + ct[1:]
                self.err(400, "INVALID_ARGUMENT", "POST", f"{version}:asymmetricDecrypt",
                         {"ciphertext": b64(bad)})
                self.err(400, "FAILED_PRECONDITION", "POST", f"{version}:asymmetricSign",
                         {"digest": {"sha256": b64(bytes(32))}})

    def test_encrypt_decrypt_rotation(self):
        key = self.key("sym", 1, 1)
        self.assertEqual(self.ok("GET", key)["primary"]["state"], 1)
        aad = b"context"
        body = {"plaintext": b64(SECRET), "additionalAuthenticatedData": b64(aad),
                "plaintextCrc32c": str(crc32c(SECRET)),
                "additionalAuthenticatedDataCrc32c": str(crc32c(aad))}
        out = self.ok("POST", f"{key}:encrypt", body)
        self.assertEqual(out["name"], key + "/cryptoKeyVersions/1")
        self.assertTrue(out["verifiedPlaintextCrc32c"])
        self.assertTrue(out["verifiedAdditionalAuthenticatedDataCrc32c"])
        ct = base64.b64decode(out["ciphertext"])
        self.assertEqual(int(out["ciphertextCrc32c"]), crc32c(ct))
        dec = {"ciphertext": out["ciphertext"], "additionalAuthenticatedData": b64(aad)}
        out = self.ok("POST", f"{key}:decrypt", dec)
        self.assertEqual(base64.b64decode(out["plaintext"]), SECRET)
        self.assertTrue(out["usedPrimary"])
        msg = self.err(400, "INVALID_ARGUMENT", "POST", f"{key}:decrypt",
                       {"ciphertext": b64(ct), "additionalAuthenticatedData": b64(b"other")})
        self.assertEqual(msg, "Decryption failed: the ciphertext is invalid.")
        self.err(400, "INVALID_ARGUMENT", "POST", f"{key}:decrypt",
                 {"ciphertext": b64(ct[:-1] + bytes([ct[-1] ^ 1])),
                  "additionalAuthenticatedData": b64(aad)})
        # Rotate: version 2 becomes primary; old ciphertexts still decrypt.
        v2 = self.ok("POST", f"{key}/cryptoKeyVersions", None)["name"]
        self.assertEqual(self.ok("GET", key)["primary"]["name"], key + "/cryptoKeyVersions/1")
        out = self.ok("POST", f"{key}:updatePrimaryVersion", {"cryptoKeyVersionId": "2"})
        self.assertEqual(out["primary"]["name"], v2)
        out = self.ok("POST", f"{key}:decrypt", dec)
        self.assertFalse(out["usedPrimary"])
        self.assertEqual(self.ok("POST", f"{key}:encrypt", body)["name"], v2)
        out = self.ok("POST", f"{key}/cryptoKeyVersions/1:encrypt", {"plaintext": b64(b"x")})
        self.assertEqual(out["name"], key + "/cryptoKeyVersions/1")
        # Ciphertexts are bound to their CryptoKey.
        other = self.key("sym2", 1, 1)
        self.err(400, "INVALID_ARGUMENT", "POST", f"{other}:decrypt", dec)
        self.err(400, "INVALID_ARGUMENT", "POST", f"{key}:encrypt",
                 {"plaintext": b64(b"x"), "plaintextCrc32c": "1"})

    def test_strictness(self):
        version = self.key("strict", 5, 12) + "/cryptoKeyVersions/1"
        self.enabled(version)
        d = b64(bytes(32))
        sign = f"{version}:asymmetricSign"
        msg = self.err(400, "INVALID_ARGUMENT", "POST", sign,
                       {"digest": {"sha256": d}, "foo": 1})
        self.assertIn('Unknown name "foo"', msg)
        msg = self.err(400, "INVALID_ARGUMENT", "POST", sign, {"digest": {"sha257": d}})
        self.assertIn("sha257", msg)
        for bad_body in ({"digest": {"sha256": "not base64!"}}, {"digest": d},
                         {"digest": {"sha256": d}, "digestCrc32c": "x"},
                         {"digest": {"sha256": d}, "digestCrc32c": True}):
            self.err(400, "INVALID_ARGUMENT", "POST", sign, bad_body)
        self.err(400, "INVALID_ARGUMENT", "POST", sign, raw=b"{not json")
        msg = self.err(400, "INVALID_ARGUMENT", "POST", sign,  # beyond int64
                       {"digest": {"sha256": d}, "digestCrc32c": str(2**63)})
        self.assertIn("'digestCrc32c'", msg)
        for template in ({"algorithm": "EC_SIGN_P999"}, {"algorithm": 999},
                         {"algorithm": 12, "protectionLevel": "SOFTWAR"}):
            msg = self.err(400, "INVALID_ARGUMENT", "POST", f"{self.ring}/cryptoKeys",
                           {"purpose": 5, "versionTemplate": template}, "cryptoKeyId=s2")
            self.assertIn("versionTemplate.", msg)
        msg = self.err(400, "INVALID_ARGUMENT", "GET", version, query="bogus=1")
        self.assertIn("bogus", msg)
        self.err(400, "INVALID_ARGUMENT", "GET", f"{version}/publicKey",
                 query="publicKeyFormat=PEMM")
        self.err(404, "NOT_FOUND", "GET", "projects/p/nothing/here")
        # A body announced beyond the limit is refused unread, and the server lives on.
        conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=10)
        conn.putrequest("POST", "/v1/" + sign)
        conn.putheader("Content-Length", str(10**9))
        conn.endheaders()
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["error"]["status"]),
                         (400, "INVALID_ARGUMENT"))
        conn.close()
        self.ok("GET", version)
        # Enum names are accepted in requests; without $alt enums come back as names.
        kid = "cryptoKeyId=names"
        out = self.ok("POST", f"{self.ring}/cryptoKeys",
                      {"purpose": "ASYMMETRIC_SIGN", "labels": {"team": "p11kms"},
                       "versionTemplate": {"algorithm": "EC_SIGN_P256_SHA256"}},
                      kid, ints=False)
        self.assertEqual(out["versionTemplate"]["algorithm"], "EC_SIGN_P256_SHA256")
        self.assertEqual(out["labels"], {"team": "p11kms"})

    def test_faults(self):
        version = self.key("faults", 5, 12) + "/cryptoKeyVersions/1"
        self.enabled(version)
        d = hashlib.sha256(b"m").digest()
        body = {"digest": {"sha256": b64(d)}, "digestCrc32c": str(crc32c(d))}
        sign = f"{version}:asymmetricSign"
        self.ok("POST", "/_emulator/reset", {})
        self.ok("POST", "/_emulator/faults", {"method": "AsymmetricSign", "kind": "status",
                                              "status": 503, "count": 2})
        self.err(503, "UNAVAILABLE", "POST", sign, body)
        self.err(503, "UNAVAILABLE", "POST", sign, body)
        self.ok("POST", sign, body)
        self.assertEqual(self.ok("GET", "/_emulator/calls")["AsymmetricSign"], 3)
        self.ok("POST", "/_emulator/faults", {"method": "*", "kind": "status", "status": 429})
        self.err(429, "RESOURCE_EXHAUSTED", "GET", version)
        self.ok("POST", "/_emulator/faults", {"method": "GetPublicKey", "kind": "status",
                                              "status": 403})
        self.err(403, "PERMISSION_DENIED", "GET", f"{version}/publicKey")
        # Corrupted response CRC32C (field or payload), and request CRC not verified.
        for target in ("crc", "payload"):
            self.ok("POST", "/_emulator/faults", {"method": "AsymmetricSign",
                                                  "kind": "crc_response", "target": target})
            out = self.ok("POST", sign, body)
            self.assertNotEqual(int(out["signatureCrc32c"]),
                                crc32c(base64.b64decode(out["signature"])))
        self.ok("POST", "/_emulator/faults", {"method": "GetPublicKey",
                                              "kind": "crc_response"})
        out = self.ok("GET", f"{version}/publicKey")
        self.assertNotEqual(int(out["pemCrc32c"]), crc32c(out["pem"].encode()))
        self.ok("POST", "/_emulator/faults", {"method": "AsymmetricSign",
                                              "kind": "crc_request_ignored"})
        self.assertFalse(self.ok("POST", sign, body)["verifiedDigestCrc32c"])
        self.assertTrue(self.ok("POST", sign, body)["verifiedDigestCrc32c"])
        # A delay longer than the client's timeout makes it time out; then it is gone.
        self.ok("POST", "/_emulator/faults", {"method": "GetCryptoKeyVersion",
                                              "kind": "delay", "delay_ms": 3000})
        with self.assertRaises(OSError):  # socket timeout
            self.emu.call("GET", version, timeout=0.5)
        self.assertEqual(self.ok("GET", version)["state"], 1)
        self.err(400, "INVALID_ARGUMENT", "POST", "/_emulator/faults",
                 {"method": "AsymetricSign", "kind": "status"})
        self.err(400, "INVALID_ARGUMENT", "POST", "/_emulator/faults",
                 {"method": "AsymmetricSign", "kind": "explode"})

    def test_destroy_and_restore(self):
        version = self.key("destroy", 5, 12) + "/cryptoKeyVersions/1"
        self.enabled(version)
        out = self.ok("POST", f"{version}:destroy", {})
        self.assertEqual(out["state"], 4)  # DESTROY_SCHEDULED
        self.assertIn("destroyTime", out)
        msg = self.err(400, "FAILED_PRECONDITION", "POST", f"{version}:asymmetricSign",
                       {"digest": {"sha256": b64(bytes(32))}})
        self.assertIn("DESTROY_SCHEDULED", msg)
        self.err(400, "FAILED_PRECONDITION", "POST", f"{version}:destroy", {})
        self.err(400, "FAILED_PRECONDITION", "GET", f"{version}/publicKey")
        self.assertEqual(self.ok("POST", f"{version}:restore", {})["state"], 2)  # DISABLED
        self.err(400, "FAILED_PRECONDITION", "POST", f"{version}:restore", {})
        msg = self.err(400, "FAILED_PRECONDITION", "POST", f"{version}:asymmetricSign",
                       {"digest": {"sha256": b64(bytes(32))}})
        self.assertIn("DISABLED", msg)
        # UpdateCryptoKeyVersion as the client sends it: the version (with its name) in
        # the body, the field mask in the query.
        patch = {"name": version, "state": 1}
        self.assertEqual(self.ok("PATCH", version, patch, "updateMask=state")["state"], 1)
        self.sign(version, "sha256")
        self.err(400, "INVALID_ARGUMENT", "PATCH", version, patch, "updateMask=labels")
        self.err(400, "INVALID_ARGUMENT", "PATCH", version, {"state": 3}, "updateMask=state")
        self.err(400, "INVALID_ARGUMENT", "PATCH", version, {"name": version + "0",
                                                             "state": 2}, "updateMask=state")
        self.assertEqual(self.ok("PATCH", version, {"state": "DISABLED"},
                                 "updateMask=state")["state"], 2)

    def test_update_crypto_key_labels(self):
        key = self.key("labelled", 5, 12)
        self.enabled(key + "/cryptoKeyVersions/1")
        # As google-cloud-kms-v1 sends it: the key (with its name) in the body, the field
        # mask in the query; the labels replace the key's.
        labels = {"p11kms-id": "0a1b", "p11kms-id-v2": "", "team_x": "a-1"}
        out = self.ok("PATCH", key, {"name": key, "labels": labels}, "updateMask=labels")
        self.assertEqual(out["labels"], labels)
        self.assertEqual(self.ok("GET", key)["labels"], labels)
        listed = self.ok("GET", f"{self.ring}/cryptoKeys")["cryptoKeys"]
        self.assertEqual([k["labels"] for k in listed if k["name"] == key], [labels])
        # Only the masked field changes: the purpose in the body is not applied.
        out = self.ok("PATCH", key, {"labels": {"a": "b"}, "purpose": 6}, "updateMask=labels")
        self.assertEqual((out["labels"], out["purpose"]), ({"a": "b"}, 5))
        # No labels in the body: all removed.
        self.assertNotIn("labels", self.ok("PATCH", key, {"name": key}, "updateMask=labels"))
        # Cloud KMS's label rules, mask rules and names, each refused and nothing kept.
        for bad_labels in ({"Upper": "x"}, {"k": "UPPER"}, {"1k": "x"}, {"": "x"},
                           {"k" * 64: "x"}, {"k": "v" * 64}, {"k": "a.b"},
                           {f"k{i}": "" for i in range(65)}):
            self.err(400, "INVALID_ARGUMENT", "PATCH", key, {"labels": bad_labels},
                     "updateMask=labels")
        self.ok("PATCH", key, {"labels": {"k" * 63: "v" * 63}}, "updateMask=labels")
        self.ok("PATCH", key, {"labels": {f"k{i}": "" for i in range(64)}},
                "updateMask=labels")
        for mask in ("", "purpose", "labels,rotationPeriod", "label"):
            self.err(400, "INVALID_ARGUMENT", "PATCH", key, {"labels": {"a": "b"}},
                     f"updateMask={mask}")
        self.err(400, "INVALID_ARGUMENT", "PATCH", key, {"name": key + "x", "labels": {}},
                 "updateMask=labels")
        self.err(400, "INVALID_ARGUMENT", "PATCH", key, {"labels": {}, "bogus": 1},
                 "updateMask=labels")
        self.err(404, "NOT_FOUND", "PATCH", key + "-none", {"labels": {}}, "updateMask=labels")
        self.assertEqual(len(self.ok("GET", key)["labels"]), 64)
        q = "cryptoKeyId=badlabel&skipInitialVersionCreation=false&trustedWrappingEnabled=false"
        self.err(400, "INVALID_ARGUMENT", "POST", f"{self.ring}/cryptoKeys",
                 {"purpose": 5, "versionTemplate": {"protectionLevel": 1, "algorithm": 12},
                  "labels": {"p11kms-id": "0A"}}, q)

    def test_paging_and_filter(self):
        ring = f"{LOC}/keyRings/paging"
        self.ok("POST", f"{LOC}/keyRings", {}, "keyRingId=paging")
        for i in range(5):
            self.ok("POST", f"{ring}/cryptoKeys", {"purpose": 1},
                    f"cryptoKeyId=k{i}&skipInitialVersionCreation=true")
        seen, token, pages = [], "", 0
        while True:
            out = self.ok("GET", f"{ring}/cryptoKeys", query=f"pageSize=2&pageToken={token}"
                          "&versionView=0&filter=&orderBy=")
            self.assertEqual(out["totalSize"], 5)
            seen += [k["name"] for k in out["cryptoKeys"]]
            pages += 1
            token = out.get("nextPageToken", "")
            if not token:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(seen, [f"{ring}/cryptoKeys/k{i}" for i in range(5)])
        self.err(400, "INVALID_ARGUMENT", "GET", f"{ring}/cryptoKeys", query="pageToken=zz")
        # skipInitialVersionCreation: no version, no primary; then versions, one destroyed.
        key = f"{ring}/cryptoKeys/k0"
        self.assertNotIn("primary", self.ok("GET", key))
        self.assertEqual(self.ok("GET", f"{key}/cryptoKeyVersions")["totalSize"], 0)
        for _ in range(3):
            self.ok("POST", f"{key}/cryptoKeyVersions", {})
        self.ok("POST", f"{key}/cryptoKeyVersions/2:destroy", {})
        q = "pageSize=0&pageToken=&view=0&filter=state%3DENABLED&orderBy="
        out = self.ok("GET", f"{key}/cryptoKeyVersions", query=q)
        self.assertEqual([v["name"][-1] for v in out["cryptoKeyVersions"]], ["1", "3"])
        self.err(400, "INVALID_ARGUMENT", "GET", f"{key}/cryptoKeyVersions",
                 query="filter=state%3D%3D%3DENABLED")

    def test_generate_random_bytes(self):
        out = self.ok("POST", f"{LOC}:generateRandomBytes",
                      {"lengthBytes": 32, "protectionLevel": 2})
        data = base64.b64decode(out["data"])
        self.assertEqual(len(data), 32)
        self.assertEqual(int(out["dataCrc32c"]), crc32c(data))
        self.assertNotEqual(data, base64.b64decode(self.ok(
            "POST", f"{LOC}:generateRandomBytes", {"lengthBytes": 32,
                                                   "protectionLevel": 2})["data"]))
        for body in ({"lengthBytes": 32, "protectionLevel": 1}, {"protectionLevel": 2},
                     {"lengthBytes": 4096, "protectionLevel": 2}):
            self.err(400, "INVALID_ARGUMENT", "POST", f"{LOC}:generateRandomBytes", body)

    def test_state_file_survives_restart(self):
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "state.json")
            emu = Emulator(state=state)
            try:
                ring = f"{LOC}/keyRings/persist"
                self.assertEqual(emu.call("POST", f"{LOC}/keyRings", {},
                                          "keyRingId=persist")[0], 200)
                emu.call("POST", f"{ring}/cryptoKeys", {"purpose": 1}, "cryptoKeyId=k")
                status, out = emu.call("POST", f"{ring}/cryptoKeys/k:encrypt",
                                       {"plaintext": b64(b"kept")})
                self.assertEqual(status, 200, out)
            finally:
                emu.stop()
            emu = Emulator(state=state, port=emu.port)
            try:
                status, back = emu.call("POST", f"{ring}/cryptoKeys/k:decrypt",
                                        {"ciphertext": out["ciphertext"]})
                self.assertEqual(status, 200, back)
                self.assertEqual(base64.b64decode(back["plaintext"]), b"kept")
                self.assertEqual(emu.call("POST", "/_emulator/reset", {"state": True})[0], 200)
                self.assertEqual(emu.call("GET", ring)[0], 404)
            finally:
                emu.stop()


if __name__ == "__main__":
    unittest.main()
