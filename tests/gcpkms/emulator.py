#!/usr/bin/env python3
"""A Cloud KMS v1 REST emulator for p11kms's tests (stdlib http.server + cryptography).

Usage: emulator.py [--port 9090] [--generation-delay-ms 200] [--state FILE]

It listens on 127.0.0.1 only, keeps its keys in memory (and in FILE, rewritten after
each change, when --state is given) and does real cryptography. It speaks the JSON of
Google's REST reference and of the `google-cloud-kms-v1` Rust client: camelCase names,
int64 (CRC32C wrappers, Int64Value) as JSON strings, bytes as base64, enums as names or
numbers in requests and, when the query asks `$alt=json;enum-encoding=int` (the Rust
client always does), as numbers in responses. Anything else is refused as Cloud KMS
does: unknown JSON fields or query parameters, wrong enum values, wrong types and bad
base64 are 400 INVALID_ARGUMENT naming the field.

Cloud KMS calls (paths under /v1/projects/P/locations/L):
  POST keyRings?keyRingId=  GET keyRings  GET keyRings/R                CreateKeyRing ...
  POST .../cryptoKeys?cryptoKeyId=&skipInitialVersionCreation=  GET (list)  GET one
  PATCH .../cryptoKeys/K?updateMask=labels                        UpdateCryptoKey
  POST .../cryptoKeys/K:updatePrimaryVersion  :encrypt  :decrypt
  POST .../cryptoKeyVersions  GET (list, filter e.g. state=ENABLED)  GET one
  GET  .../cryptoKeyVersions/V/publicKey?publicKeyFormat=   (PEM; DER in publicKey)
  POST .../cryptoKeyVersions/V:asymmetricSign  :asymmetricDecrypt  :destroy  :restore
  POST .../cryptoKeyVersions/V:encrypt   PATCH .../cryptoKeyVersions/V?updateMask=state
  POST /v1/projects/P/locations/L:generateRandomBytes           (HSM, 8..1024 bytes)
Lists page with pageSize/pageToken (real nextPageToken) and report totalSize.
Algorithms: RSA_SIGN_PKCS1_{2048,3072,4096}_SHA256, RSA_SIGN_PKCS1_4096_SHA512,
RSA_SIGN_PSS_{2048,3072,4096}_SHA256, RSA_SIGN_PSS_4096_SHA512,
RSA_DECRYPT_OAEP_{2048,3072,4096}_{SHA256,SHA1}, RSA_DECRYPT_OAEP_4096_SHA512,
EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, EC_SIGN_SECP256K1_SHA256 (HSM only),
GOOGLE_SYMMETRIC_ENCRYPTION (AES-256-GCM; the ciphertext names its version).
Asymmetric versions are PENDING_GENERATION for --generation-delay-ms, then ENABLED;
symmetric ones are ENABLED at once. Destroy -> DESTROY_SCHEDULED (destroyTime = now +
destroyScheduledDuration, default 30 days); restore -> DISABLED; PATCH with
updateMask=state moves between ENABLED and DISABLED. Labels (at CreateCryptoKey and
UpdateCryptoKey) follow Cloud KMS's rules: at most 64; keys 1-63 characters starting
with a lowercase letter, values 0-63 characters, both of lowercase letters, digits, '_'
and '-' (else 400 INVALID_ARGUMENT). UpdateCryptoKey's updateMask must be `labels` (the
emulator keeps nothing else a CryptoKey may update); any other path, or none, is 400,
and the labels of the body replace the key's (none given: all removed). Using a version that
is not ENABLED is 400 FAILED_PRECONDITION; unknown resources 404 NOT_FOUND; duplicates
409 ALREADY_EXISTS; CRC32C mismatches in requests 400 INVALID_ARGUMENT. Errors have
Google's body {"error": {"code", "message", "status", "details": []}}.
Authorization headers are not checked; POST /token answers an OAuth token response.
Seen from google-cloud-kms-v1 1.16: every call adds `$alt=json;enum-encoding=int` and
x-goog-api-client (no x-goog-request-params); lists always send pageSize=0&pageToken=
&filter=&orderBy= (and view=0); path fields (name, parent) are left out of the body;
by default it retries GETs on 503 but neither 429 nor POSTs (all the crypto calls).

Admin API (not Cloud KMS):
  POST   /_emulator/faults  {"method": "AsymmetricSign" | "*", "kind": K, "count": 1, ...}
         K = "delay" (delay_ms, then serve normally), "status" (status: 429, 503, 500,
         403, ...; optional message and status_name), "crc_response" (target "crc" corrupts
         the response's CRC32C (default), "payload" a byte of the checksummed payload),
         "crc_request_ignored" (verified*Crc32c answered false).
  DELETE /_emulator/faults  clear them; GET lists them.
  GET    /_emulator/calls   {"AsymmetricSign": 3, ...} RPC counts since start/reset
  POST   /_emulator/reset   clear counts and faults; {"state": true} also all keys
One line per request goes to stderr (method, path, status, RPC), never payloads.
"""

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


# --- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) -------------------------
def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# --- enums (numbers from google.cloud.kms.v1) -------------------------------------
ENUMS = {
    "purpose": {"CRYPTO_KEY_PURPOSE_UNSPECIFIED": 0, "ENCRYPT_DECRYPT": 1,
                "ASYMMETRIC_SIGN": 5, "ASYMMETRIC_DECRYPT": 6, "RAW_ENCRYPT_DECRYPT": 7,
                "MAC": 9, "KEY_ENCAPSULATION": 10, "AES_WRAPPING": 11},
    "protectionLevel": {"PROTECTION_LEVEL_UNSPECIFIED": 0, "SOFTWARE": 1, "HSM": 2,
                        "EXTERNAL": 3, "EXTERNAL_VPC": 4, "HSM_SINGLE_TENANT": 5},
    "state": {"CRYPTO_KEY_VERSION_STATE_UNSPECIFIED": 0, "ENABLED": 1, "DISABLED": 2,
              "DESTROYED": 3, "DESTROY_SCHEDULED": 4, "PENDING_GENERATION": 5,
              "PENDING_IMPORT": 6, "IMPORT_FAILED": 7, "GENERATION_FAILED": 8},
    "view": {"CRYPTO_KEY_VERSION_VIEW_UNSPECIFIED": 0, "FULL": 1},
    "publicKeyFormat": {"PUBLIC_KEY_FORMAT_UNSPECIFIED": 0, "PEM": 1, "DER": 2,
                        "NIST_PQC": 3, "XWING_RAW_BYTES": 4},
    "algorithm": {"CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED": 0,
                  "GOOGLE_SYMMETRIC_ENCRYPTION": 1, "AES_256_GCM": 19,
                  "RSA_SIGN_PSS_2048_SHA256": 2, "RSA_SIGN_PSS_3072_SHA256": 3,
                  "RSA_SIGN_PSS_4096_SHA256": 4, "RSA_SIGN_PSS_4096_SHA512": 15,
                  "RSA_SIGN_PKCS1_2048_SHA256": 5, "RSA_SIGN_PKCS1_3072_SHA256": 6,
                  "RSA_SIGN_PKCS1_4096_SHA256": 7, "RSA_SIGN_PKCS1_4096_SHA512": 16,
                  "RSA_SIGN_RAW_PKCS1_2048": 28, "RSA_SIGN_RAW_PKCS1_3072": 29,
                  "RSA_SIGN_RAW_PKCS1_4096": 30,
                  "RSA_DECRYPT_OAEP_2048_SHA256": 8, "RSA_DECRYPT_OAEP_3072_SHA256": 9,
                  "RSA_DECRYPT_OAEP_4096_SHA256": 10, "RSA_DECRYPT_OAEP_4096_SHA512": 17,
                  "RSA_DECRYPT_OAEP_2048_SHA1": 37, "RSA_DECRYPT_OAEP_3072_SHA1": 38,
                  "RSA_DECRYPT_OAEP_4096_SHA1": 39, "EC_SIGN_P256_SHA256": 12,
                  "EC_SIGN_P384_SHA384": 13, "EC_SIGN_SECP256K1_SHA256": 31,
                  "EC_SIGN_ED25519": 40, "HMAC_SHA256": 32},
}
ENUM_FIELDS = {"purpose", "protectionLevel", "state", "algorithm", "publicKeyFormat"}

HASHES = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
          "SHA512": hashes.SHA512}
CURVES = {"P256": ec.SECP256R1, "P384": ec.SECP384R1, "SECP256K1": ec.SECP256K1}


def algorithm_info(alg):
    """(kind, purpose, size or curve, hash name) of a supported algorithm, or None."""
    if alg == "GOOGLE_SYMMETRIC_ENCRYPTION":
        return ("aes", "ENCRYPT_DECRYPT", 256, None)
    m = re.fullmatch(r"RSA_SIGN_(PKCS1|PSS)_(2048|3072|4096)_(SHA256|SHA512)", alg)
    if m and (m[3] == "SHA256" or m[2] == "4096"):
        return ("rsa-" + m[1].lower(), "ASYMMETRIC_SIGN", int(m[2]), m[3])
    m = re.fullmatch(r"RSA_DECRYPT_OAEP_(2048|3072|4096)_(SHA1|SHA256|SHA512)", alg)
    if m and (m[2] != "SHA512" or m[1] == "4096"):
        return ("rsa-oaep", "ASYMMETRIC_DECRYPT", int(m[1]), m[2])
    m = re.fullmatch(r"EC_SIGN_(P256|P384|SECP256K1)_(SHA256|SHA384)", alg)
    if m and alg in ENUMS["algorithm"]:
        return ("ec", "ASYMMETRIC_SIGN", m[1], m[2])
    return None


# --- errors and request parsing ---------------------------------------------------
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
          499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
          504: "DEADLINE_EXCEEDED"}


class ApiError(Exception):
    def __init__(self, code, message, status=None):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or STATUS.get(code, "UNKNOWN")


def bad(message):
    return ApiError(400, message)


def precondition(message):
    return ApiError(400, message, "FAILED_PRECONDITION")


def not_found(kind, name):
    return ApiError(404, f"{kind} {name} not found.")


# Message schemas: JSON name -> type. "bytes" is base64, "int64" a JSON string (or
# number), "enum:X" a name or number of ENUMS[X], a dict a nested message.
DIGEST = {"sha256": "bytes", "sha384": "bytes", "sha512": "bytes", "externalMu": "bytes"}
TEMPLATE = {"protectionLevel": "enum:protectionLevel", "algorithm": "enum:algorithm"}
VERSION = {"name": "string", "state": "enum:state", "protectionLevel": "enum:protectionLevel",
           "algorithm": "enum:algorithm", "createTime": "string", "generateTime": "string",
           "destroyTime": "string", "destroyEventTime": "string"}
SCHEMAS = {
    "KeyRing": {"name": "string", "createTime": "string"},
    "CryptoKey": {"name": "string", "primary": VERSION, "purpose": "enum:purpose",
                  "createTime": "string", "versionTemplate": TEMPLATE, "labels": "map",
                  "importOnly": "bool", "destroyScheduledDuration": "duration"},
    "CryptoKeyVersion": VERSION,
    "AsymmetricSign": {"name": "string", "digest": DIGEST, "digestCrc32c": "int64",
                       "data": "bytes", "dataCrc32c": "int64"},
    "AsymmetricDecrypt": {"name": "string", "ciphertext": "bytes",
                          "ciphertextCrc32c": "int64"},
    "Encrypt": {"name": "string", "plaintext": "bytes", "additionalAuthenticatedData": "bytes",
                "plaintextCrc32c": "int64", "additionalAuthenticatedDataCrc32c": "int64"},
    "Decrypt": {"name": "string", "ciphertext": "bytes", "additionalAuthenticatedData": "bytes",
                "ciphertextCrc32c": "int64", "additionalAuthenticatedDataCrc32c": "int64"},
    "GenerateRandomBytes": {"location": "string", "lengthBytes": "int32",
                            "protectionLevel": "enum:protectionLevel"},
    "UpdateCryptoKeyPrimaryVersion": {"name": "string", "cryptoKeyVersionId": "string"},
    "DestroyCryptoKeyVersion": {"name": "string"},
    "RestoreCryptoKeyVersion": {"name": "string"},
}
QUERY = {"pageSize": "int32", "pageToken": "string", "filter": "string",
         "orderBy": "string", "view": "enum:view", "versionView": "enum:view",
         "publicKeyFormat": "enum:publicKeyFormat", "keyRingId": "string",
         "cryptoKeyId": "string", "skipInitialVersionCreation": "bool",
         "trustedWrappingEnabled": "bool", "updateMask": "string"}


def parse_value(kind, value, field):
    """One JSON (or query string) value of `kind`, normalised; 400 naming `field`."""
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            raise bad(f'Invalid value at \'{field}\': expected an object')
        return parse_message(value, kind, field + ".")
    ok = True
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "bool":
        if value in ("true", "false"):
            value = value == "true"
        ok = isinstance(value, bool)
    elif kind in ("int32", "int64"):
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        limit = 2**31 if kind == "int32" else 2**63
        ok = ok and -limit <= value < limit
    elif kind == "bytes":
        try:
            ok = isinstance(value, str)
            value = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError, AttributeError):
            ok = False
    elif kind == "duration":
        m = isinstance(value, str) and re.fullmatch(r"([0-9]+)(\.[0-9]{1,9})?s", value)
        ok = bool(m)
        value = int(m[1]) if m else value
    elif kind == "map":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    elif kind.startswith("enum:"):
        names = ENUMS[kind[5:]]
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = {v: k for k, v in names.items()}.get(value, value)
        ok = isinstance(value, str) and value in names
    if not ok:
        raise bad(f"Invalid value at '{field}' ({kind}), {json.dumps(value)[:60]}")
    return value


def parse_message(obj, schema, prefix=""):
    out = {}
    for key, value in obj.items():
        if key not in schema:
            raise bad(f'Invalid JSON payload received. Unknown name "{key}" at '
                      f"'{prefix.rstrip('.') or 'request'}': Cannot find field.")
        if value is not None:
            out[key] = parse_value(schema[key], value, prefix + key)
    return out


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def b64(data):
    return base64.b64encode(data).decode()


# --- the service ------------------------------------------------------------------
ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,63}")
LOC = r"/v1/(projects/[^/:]+/locations/[^/:]+)"
RING = LOC + r"/keyRings/[^/:]+"
KEY = RING + r"/cryptoKeys/[^/:]+"
VER = KEY + r"/cryptoKeyVersions/[^/:]+"
ROUTES = [  # (HTTP method, path regex, RPC name, body schema or None)
    ("GET", LOC + r"/keyRings", "ListKeyRings", None),
    ("POST", LOC + r"/keyRings", "CreateKeyRing", "KeyRing"),
    ("GET", RING, "GetKeyRing", None),
    ("GET", RING + r"/cryptoKeys", "ListCryptoKeys", None),
    ("POST", RING + r"/cryptoKeys", "CreateCryptoKey", "CryptoKey"),
    ("GET", KEY, "GetCryptoKey", None),
    ("PATCH", KEY, "UpdateCryptoKey", "CryptoKey"),
    ("POST", KEY + r":updatePrimaryVersion", "UpdateCryptoKeyPrimaryVersion",
     "UpdateCryptoKeyPrimaryVersion"),
    ("POST", KEY + r"(?:/cryptoKeyVersions/[^/:]+)?:encrypt", "Encrypt", "Encrypt"),
    ("POST", KEY + r":decrypt", "Decrypt", "Decrypt"),
    ("GET", KEY + r"/cryptoKeyVersions", "ListCryptoKeyVersions", None),
    ("POST", KEY + r"/cryptoKeyVersions", "CreateCryptoKeyVersion", "CryptoKeyVersion"),
    ("GET", VER, "GetCryptoKeyVersion", None),
    ("PATCH", VER, "UpdateCryptoKeyVersion", "CryptoKeyVersion"),
    ("GET", VER + r"/publicKey", "GetPublicKey", None),
    ("POST", VER + r":asymmetricSign", "AsymmetricSign", "AsymmetricSign"),
    ("POST", VER + r":asymmetricDecrypt", "AsymmetricDecrypt", "AsymmetricDecrypt"),
    ("POST", VER + r":destroy", "DestroyCryptoKeyVersion", "DestroyCryptoKeyVersion"),
    ("POST", VER + r":restore", "RestoreCryptoKeyVersion", "RestoreCryptoKeyVersion"),
    ("POST", LOC + r":generateRandomBytes", "GenerateRandomBytes", "GenerateRandomBytes"),
]
ROUTES = [(m, re.compile(p), rpc, s) for m, p, rpc, s in ROUTES]
# Query parameters each RPC may carry (the Rust client sends all of them, empty or 0).
QUERY_OF = {
    "ListKeyRings": {"pageSize", "pageToken", "filter", "orderBy"},
    "ListCryptoKeys": {"pageSize", "pageToken", "versionView", "filter", "orderBy"},
    "ListCryptoKeyVersions": {"pageSize", "pageToken", "view", "filter", "orderBy"},
    "CreateKeyRing": {"keyRingId"},
    "CreateCryptoKey": {"cryptoKeyId", "skipInitialVersionCreation",
                        "trustedWrappingEnabled"},
    "GetPublicKey": {"publicKeyFormat"},
    "UpdateCryptoKeyVersion": {"updateMask"},
    "UpdateCryptoKey": {"updateMask"},
}
SYSTEM_QUERY = {"$alt", "alt", "prettyPrint"}
MAX_BODY = 1 << 20  # Cloud KMS takes at most 64 KiB of plaintext
SYMMETRIC_MAGIC = b"EMU1"  # our ciphertext: magic, version id (u32), nonce, GCM output


class Kms:
    """All state, behind one lock. Versions keep their private key as PEM (or the AES
    key as base64) so that --state can persist them; parsed keys are cached."""

    def __init__(self, generation_delay, state_file=None):
        self.lock = threading.RLock()
        self.delay = generation_delay
        self.state_file = state_file
        self.rings, self.keys, self.versions = {}, {}, {}
        self.cache = {}
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                saved = json.load(f)
            self.rings, self.keys, self.versions = (saved["rings"], saved["keys"],
                                                    saved["versions"])

    def save(self):
        if self.state_file:
            tmp = self.state_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"rings": self.rings, "keys": self.keys,
                           "versions": self.versions}, f)
            os.replace(tmp, self.state_file)

    def reset(self):
        with self.lock:
            self.rings, self.keys, self.versions, self.cache = {}, {}, {}, {}
            self.save()

    # -- lookups --
    def ring(self, name):
        if name not in self.rings:
            raise not_found("KeyRing", name)
        return self.rings[name]

    def key(self, name):
        if name not in self.keys:
            raise not_found("CryptoKey", name)
        return self.keys[name]

    def version(self, name):
        v = self.versions.get(name)
        if v is None:
            raise not_found("CryptoKeyVersion", name)
        if v["state"] == "PENDING_GENERATION" and time.time() >= v["readyAt"]:
            v["state"], v["generateTime"] = "ENABLED", rfc3339(v["readyAt"])
            self.save()
        return v

    def enabled(self, name, purpose):
        v = self.version(name)
        if self.keys[name.split("/cryptoKeyVersions/")[0]]["purpose"] != purpose:
            raise precondition(f"{name} does not have purpose {purpose}.")
        if v["state"] != "ENABLED":
            raise precondition(f"{name} is not enabled, current state is: {v['state']}.")
        return v

    def secret(self, v):
        if v["name"] not in self.cache:
            if v["secret"].startswith("-----"):
                key = serialization.load_pem_private_key(v["secret"].encode(), None)
            else:
                key = base64.b64decode(v["secret"])
            self.cache[v["name"]] = key
        return self.cache[v["name"]]

    # -- views (enums as names here; the handler converts them to numbers) --
    def version_view(self, v):
        return {k: v[k] for k in ("name", "state", "protectionLevel", "algorithm",
                                  "createTime", "generateTime", "destroyTime")
                if v.get(k)}

    def key_view(self, k):
        out = {"name": k["name"], "purpose": k["purpose"], "createTime": k["createTime"],
               "versionTemplate": k["versionTemplate"], "labels": k["labels"],
               "destroyScheduledDuration": f"{k['destroyScheduledDuration']}s"}
        if k.get("primary"):
            out["primary"] = self.version_view(self.version(k["primary"]))
        if not out["labels"]:
            del out["labels"]
        return out

    # -- key rings, keys, versions --
    def create_key_ring(self, parent, q, body):
        rid = q.get("keyRingId", "")
        if not ID_RE.fullmatch(rid):
            raise bad("Invalid value for field 'key_ring_id': must match [a-zA-Z0-9_-]{1,63}")
        name = f"{parent}/keyRings/{rid}"
        with self.lock:
            if name in self.rings:
                raise ApiError(409, f"KeyRing {name} already exists.")
            self.rings[name] = {"name": name, "createTime": rfc3339(time.time())}
            self.save()
            return self.rings[name]

    def create_crypto_key(self, parent, q, body):
        kid = q.get("cryptoKeyId", "")
        if not ID_RE.fullmatch(kid):
            raise bad("Invalid value for field 'crypto_key_id': must match [a-zA-Z0-9_-]{1,63}")
        purpose = body.get("purpose", "CRYPTO_KEY_PURPOSE_UNSPECIFIED")
        tmpl = dict(body.get("versionTemplate", {}))
        tmpl.setdefault("protectionLevel", "SOFTWARE")
        if purpose == "ENCRYPT_DECRYPT":
            tmpl.setdefault("algorithm", "GOOGLE_SYMMETRIC_ENCRYPTION")
        if purpose not in ("ENCRYPT_DECRYPT", "ASYMMETRIC_SIGN", "ASYMMETRIC_DECRYPT"):
            raise bad(f"Unsupported purpose: {purpose}")
        check_template(purpose, tmpl)
        check_labels(body.get("labels", {}))
        name = f"{parent}/cryptoKeys/{kid}"
        with self.lock:
            self.ring(parent)
            if name in self.keys:
                raise ApiError(409, f"CryptoKey {name} already exists.")
            self.keys[name] = {
                "name": name, "purpose": purpose, "versionTemplate": tmpl,
                "labels": body.get("labels", {}), "createTime": rfc3339(time.time()),
                "destroyScheduledDuration": body.get("destroyScheduledDuration", 30 * 86400),
                "primary": None, "nextId": 1}
            self.save()
        if not q.get("skipInitialVersionCreation"):
            self.create_version(name, {}, {})
        with self.lock:
            return self.key_view(self.keys[name])

    def create_version(self, parent, q, body):
        with self.lock:
            k = self.key(parent)
            tmpl = k["versionTemplate"]
        info = algorithm_info(tmpl["algorithm"])
        secret = generate(info)  # outside the lock: RSA-4096 takes a while
        now = time.time()
        with self.lock:
            vid = str(k["nextId"])
            k["nextId"] += 1
            name = f"{parent}/cryptoKeyVersions/{vid}"
            pending = info[0] != "aes"
            self.versions[name] = {
                "name": name, "algorithm": tmpl["algorithm"], "secret": secret,
                "protectionLevel": tmpl["protectionLevel"], "createTime": rfc3339(now),
                "state": "PENDING_GENERATION" if pending else "ENABLED",
                "generateTime": None if pending else rfc3339(now),
                "readyAt": now + self.delay}
            if k["purpose"] == "ENCRYPT_DECRYPT" and not k["primary"]:
                k["primary"] = name
            self.save()
            return self.version_view(self.versions[name])

    def update_primary(self, name, body):
        with self.lock:
            k = self.key(name)
            if k["purpose"] != "ENCRYPT_DECRYPT":
                raise precondition(f"{name} does not have purpose ENCRYPT_DECRYPT.")
            vname = f"{name}/cryptoKeyVersions/{body.get('cryptoKeyVersionId', '')}"
            if self.version(vname)["state"] != "ENABLED":
                raise precondition(f"{vname} is not enabled.")
            k["primary"] = vname
            self.save()
            return self.key_view(k)

    def destroy(self, name):
        with self.lock:
            v = self.version(name)
            if v["state"] not in ("ENABLED", "DISABLED"):
                raise precondition(f"{name} is not enabled or disabled, current state "
                                   f"is: {v['state']}.")
            k = self.keys[name.split("/cryptoKeyVersions/")[0]]
            v["state"] = "DESTROY_SCHEDULED"
            v["destroyTime"] = rfc3339(time.time() + k["destroyScheduledDuration"])
            self.save()
            return self.version_view(v)

    def update_key(self, name, q, body):
        """UpdateCryptoKey of `labels`: the body's labels replace the key's."""
        paths = [p.strip() for p in q.get("updateMask", "").split(",") if p.strip()]
        if not paths:
            raise bad("update_mask is required.")
        for p in paths:
            if p != "labels":
                raise bad(f"Invalid update_mask path {p!r}: the emulator updates only "
                          "'labels'.")
        labels = check_labels(body.get("labels", {}))
        with self.lock:
            k = self.key(name)
            k["labels"] = dict(labels)
            self.save()
            return self.key_view(k)

    def update_version(self, name, q, body):
        """UpdateCryptoKeyVersion of `state` only: ENABLED <-> DISABLED."""
        if q.get("updateMask") != "state":
            raise bad("Only update_mask 'state' is supported by the emulator.")
        new = body.get("state")
        if new not in ("ENABLED", "DISABLED"):
            raise bad(f"Invalid value for field 'crypto_key_version.state': {new}")
        with self.lock:
            v = self.version(name)
            if v["state"] not in ("ENABLED", "DISABLED"):
                raise precondition(f"{name} is not enabled or disabled, current state "
                                   f"is: {v['state']}.")
            v["state"] = new
            self.save()
            return self.version_view(v)

    def restore(self, name):
        with self.lock:
            v = self.version(name)
            if v["state"] != "DESTROY_SCHEDULED":
                raise precondition(f"{name} is not scheduled for destruction, current "
                                   f"state is: {v['state']}.")
            v["state"], v["destroyTime"] = "DISABLED", None
            self.save()
            return self.version_view(v)

    def list(self, items, q, kind):
        items = sorted(items, key=lambda x: [int(p) if p.isdigit() else p
                                             for p in x["name"].split("/")])
        items = [i for i in items if matches(i, q.get("filter", ""))]
        order = q.get("orderBy", "")
        if order not in ("", "name", "name asc", "name desc"):
            raise bad(f"Invalid order_by: {order}")
        if order == "name desc":
            items.reverse()
        size = q.get("pageSize", 0)
        if size < 0:
            raise bad("Invalid value for field 'page_size': must not be negative")
        size = min(size or 1000, 1000)
        start = 0
        if q.get("pageToken"):
            try:
                start = int(base64.urlsafe_b64decode(q["pageToken"]).decode().split(":")[1])
            except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
                raise bad("Invalid page_token.")
        out = {kind: items[start:start + size], "totalSize": len(items)}
        if start + size < len(items):
            out["nextPageToken"] = base64.urlsafe_b64encode(
                f"offset:{start + size}".encode()).decode()
        if not out[kind]:
            del out[kind]
        return out


MAX_LABELS = 64


def label_text_ok(s):
    """Cloud KMS label text: lowercase letters (international ones too), digits, _, -."""
    return len(s) <= 63 and all(c in "_-" or c.isdigit() or (c.isalpha() and c == c.lower())
                                for c in s)


def check_labels(labels):
    """A CryptoKey's labels as Cloud KMS checks them (its "Labeling keys" page)."""
    if len(labels) > MAX_LABELS:
        raise bad(f"A resource may have at most {MAX_LABELS} labels, {len(labels)} given.")
    for k, v in labels.items():
        if not (k and label_text_ok(k) and k[0].isalpha()):
            raise bad(f"Invalid label key {k[:70]!r}: 1 to 63 lowercase letters, digits, "
                      "'_' or '-', starting with a lowercase letter.")
        if not label_text_ok(v):
            raise bad(f"Invalid value {v[:70]!r} of label {k!r}: at most 63 lowercase "
                      "letters, digits, '_' or '-'.")
    return labels


def check_template(purpose, tmpl):
    alg = tmpl.get("algorithm", "CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED")
    info = algorithm_info(alg)
    if alg == "CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED":
        raise bad("crypto_key.version_template.algorithm must be specified.")
    if info is None:
        raise bad(f"Unsupported algorithm: {alg}")
    if info[1] != purpose:
        raise bad(f"Algorithm {alg} is not compatible with purpose {purpose}.")
    if tmpl["protectionLevel"] not in ("SOFTWARE", "HSM"):
        raise bad(f"Unsupported protection level: {tmpl['protectionLevel']}")
    if info[2] == "SECP256K1" and tmpl["protectionLevel"] != "HSM":
        raise bad(f"Algorithm {alg} is only supported with protection level HSM.")


def generate(info):
    kind, _, size, _ = info
    if kind == "aes":
        return b64(secrets.token_bytes(32))
    if kind == "ec":
        key = ec.generate_private_key(CURVES[size]())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def matches(item, flt):
    """Filters of the form `field=VALUE [AND field=VALUE]` on the (named) view."""
    for term in filter(None, re.split(r"\s+AND\s+", flt.strip())):
        m = re.fullmatch(r"([A-Za-z.]+)\s*[=:]\s*\"?([A-Za-z0-9_/-]*)\"?", term)
        if not m:
            raise bad(f"Invalid filter: {flt}")
        value = item
        for part in m[1].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value != m[2]:
            return False
    return True


def check_crc(req, field, crc_field):
    """True when the request carried a CRC32C for `field` (it must match)."""
    if crc_field not in req:
        return False
    if crc32c(req.get(field, b"")) != req[crc_field]:
        snake = lambda s: re.sub(r"([A-Z])", r"_\1", s).lower()  # noqa: E731
        raise bad(f"The checksum in field {snake(crc_field)} did not match the data in "
                  f"field {snake(field)}.")
    return True


def asymmetric_sign(kms, name, req):
    with kms.lock:
        v = kms.enabled(name, "ASYMMETRIC_SIGN")
        key = kms.secret(v)
    kind, _, _, hname = algorithm_info(v["algorithm"])
    digest = req.get("digest", {})
    if "data" in req:
        if digest:
            raise bad("Only one of digest and data may be set.")
        verified = check_crc(req, "data", "dataCrc32c")
        h = hashes.Hash(HASHES[hname]())
        h.update(req["data"])
        value = h.finalize()
    else:
        kinds = [k for k in digest if digest[k] is not None]
        if kinds != [hname.lower()]:
            raise bad(f"The requested digest type ({', '.join(kinds) or 'none'}) does not "
                      f"match the algorithm {v['algorithm']}.")
        value = digest[kinds[0]]
        if len(value) != HASHES[hname].digest_size:
            raise bad(f"Digest length {len(value)} is not valid for {hname}.")
        verified = check_crc(req | {"digest": value}, "digest", "digestCrc32c")
    algo = Prehashed(HASHES[hname]())
    if kind == "ec":
        sig = key.sign(value, ec.ECDSA(algo))
    elif kind == "rsa-pss":
        sig = key.sign(value, padding.PSS(padding.MGF1(HASHES[hname]()),
                                          HASHES[hname].digest_size), algo)
    else:
        sig = key.sign(value, padding.PKCS1v15(), algo)
    out = {"signature": b64(sig), "signatureCrc32c": str(crc32c(sig)), "name": name,
           "protectionLevel": v["protectionLevel"]}
    out["verifiedDataCrc32c" if "data" in req else "verifiedDigestCrc32c"] = verified
    return out


def asymmetric_decrypt(kms, name, req):
    with kms.lock:
        v = kms.enabled(name, "ASYMMETRIC_DECRYPT")
        key = kms.secret(v)
    verified = check_crc(req, "ciphertext", "ciphertextCrc32c")
    h = HASHES[algorithm_info(v["algorithm"])[3]]
    try:
        plain = key.decrypt(req.get("ciphertext", b""),
                            padding.OAEP(padding.MGF1(h()), h(), None))
    except ValueError:
        raise bad("Decryption failed: verify that 'name' refers to the correct CryptoKey "
                  "and that the ciphertext was encrypted with its public key.")
    return {"plaintext": b64(plain), "plaintextCrc32c": str(crc32c(plain)),
            "verifiedCiphertextCrc32c": verified, "protectionLevel": v["protectionLevel"]}


def encrypt(kms, name, req):
    with kms.lock:
        if "/cryptoKeyVersions/" not in name:
            k = kms.key(name)
            if k["purpose"] != "ENCRYPT_DECRYPT" or not k["primary"]:
                raise precondition(f"{name} has no primary version for ENCRYPT_DECRYPT.")
            name = k["primary"]
        v = kms.enabled(name, "ENCRYPT_DECRYPT")
        key = kms.secret(v)
    if len(req.get("plaintext", b"")) > 64 * 1024:
        raise bad("The plaintext must be at most 65536 bytes.")
    vp = check_crc(req, "plaintext", "plaintextCrc32c")
    va = check_crc(req, "additionalAuthenticatedData", "additionalAuthenticatedDataCrc32c")
    key_name, vid = name.split("/cryptoKeyVersions/")
    nonce = secrets.token_bytes(12)
    head = SYMMETRIC_MAGIC + int(vid).to_bytes(4, "big") + nonce
    ct = head + AESGCM(key).encrypt(nonce, req.get("plaintext", b""),
                                    aad(key_name, head, req))
    return {"name": name, "ciphertext": b64(ct), "ciphertextCrc32c": str(crc32c(ct)),
            "verifiedPlaintextCrc32c": vp, "verifiedAdditionalAuthenticatedDataCrc32c": va,
            "protectionLevel": v["protectionLevel"]}


def aad(key_name, head, req):
    # Binds the CryptoKey and the header, so a ciphertext decrypts under its key only.
    return key_name.encode() + b"\0" + head + req.get("additionalAuthenticatedData", b"")


def decrypt(kms, name, req):
    ct = req.get("ciphertext", b"")
    check_crc(req, "ciphertext", "ciphertextCrc32c")  # DecryptResponse has no verified*
    check_crc(req, "additionalAuthenticatedData", "additionalAuthenticatedDataCrc32c")
    invalid = bad("Decryption failed: the ciphertext is invalid.")
    if len(ct) < 20 + 16 or not ct.startswith(SYMMETRIC_MAGIC):
        raise invalid
    vname = f"{name}/cryptoKeyVersions/{int.from_bytes(ct[4:8], 'big')}"
    with kms.lock:
        k = kms.key(name)
        if vname not in kms.versions:
            raise invalid
        v = kms.enabled(vname, "ENCRYPT_DECRYPT")
        key = kms.secret(v)
    try:
        plain = AESGCM(key).decrypt(ct[8:20], ct[20:], aad(name, ct[:20], req))
    except InvalidTag:
        raise invalid
    return {"plaintext": b64(plain), "plaintextCrc32c": str(crc32c(plain)),
            "usedPrimary": vname == k["primary"], "protectionLevel": v["protectionLevel"]}


def public_key(kms, name, q):
    with kms.lock:
        v = kms.version(name)
        if v["state"] != "ENABLED":
            raise precondition(f"{name} is not enabled, current state is: {v['state']}.")
        if v["algorithm"] == "GOOGLE_SYMMETRIC_ENCRYPTION":
            raise precondition(f"{name} is not an asymmetric key version.")
        pub = kms.secret(v).public_key()
    fmt = q.get("publicKeyFormat", "PUBLIC_KEY_FORMAT_UNSPECIFIED")
    if fmt not in ("PUBLIC_KEY_FORMAT_UNSPECIFIED", "PEM", "DER"):
        raise bad(f"Public key format {fmt} is not supported for {v['algorithm']}.")
    pem = pub.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    out = {"pem": pem.decode(), "pemCrc32c": str(crc32c(pem)), "algorithm": v["algorithm"],
           "name": name, "protectionLevel": v["protectionLevel"]}
    if fmt != "PUBLIC_KEY_FORMAT_UNSPECIFIED":
        data = pem if fmt == "PEM" else pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out["publicKeyFormat"] = fmt
        out["publicKey"] = {"data": b64(data), "crc32cChecksum": str(crc32c(data))}
    return out


def random_bytes(req):
    n = req.get("lengthBytes", 0)
    if not 8 <= n <= 1024:
        raise bad("length_bytes must be between 8 and 1024.")
    if req.get("protectionLevel") != "HSM":
        raise bad("protection_level must be HSM.")
    data = secrets.token_bytes(n)
    return {"data": b64(data), "dataCrc32c": str(crc32c(data))}


def dispatch(kms, rpc, name, q, body):
    """Runs one RPC; `name` is the resource of the path (parent for create/list)."""
    for field in ("name", "location"):
        if body.get(field, name) != name:
            raise bad(f"The {field} in the body ({body[field]}) differs from the URL's.")
    if rpc == "ListKeyRings":
        with kms.lock:
            return kms.list([r for r in kms.rings.values()
                             if r["name"].startswith(name + "/")], q, "keyRings")
    if rpc == "ListCryptoKeys":
        with kms.lock:
            kms.ring(name)
            return kms.list([kms.key_view(k) for k in kms.keys.values()
                             if k["name"].startswith(name + "/")], q, "cryptoKeys")
    if rpc == "ListCryptoKeyVersions":
        with kms.lock:
            kms.key(name)
            return kms.list([kms.version_view(kms.version(n)) for n in list(kms.versions)
                             if n.startswith(name + "/")], q, "cryptoKeyVersions")
    if rpc == "GetKeyRing":
        with kms.lock:
            return kms.ring(name)
    if rpc == "GetCryptoKey":
        with kms.lock:
            return kms.key_view(kms.key(name))
    if rpc == "GetCryptoKeyVersion":
        with kms.lock:
            return kms.version_view(kms.version(name))
    if rpc == "CreateKeyRing":
        return kms.create_key_ring(name, q, body)
    if rpc == "CreateCryptoKey":
        return kms.create_crypto_key(name, q, body)
    if rpc == "CreateCryptoKeyVersion":
        return kms.create_version(name, q, body)
    if rpc == "UpdateCryptoKeyPrimaryVersion":
        return kms.update_primary(name, body)
    if rpc == "DestroyCryptoKeyVersion":
        return kms.destroy(name)
    if rpc == "UpdateCryptoKeyVersion":
        return kms.update_version(name, q, body)
    if rpc == "UpdateCryptoKey":
        return kms.update_key(name, q, body)
    if rpc == "RestoreCryptoKeyVersion":
        return kms.restore(name)
    if rpc == "GetPublicKey":
        return public_key(kms, name, q)
    if rpc == "AsymmetricSign":
        return asymmetric_sign(kms, name, body)
    if rpc == "AsymmetricDecrypt":
        return asymmetric_decrypt(kms, name, body)
    if rpc == "Encrypt":
        return encrypt(kms, name, body)
    if rpc == "Decrypt":
        return decrypt(kms, name, body)
    if rpc == "GenerateRandomBytes":
        return random_bytes(body)
    raise ApiError(501, f"{rpc} is not implemented by the emulator.")


def to_ints(obj):
    """Enum names to numbers, for `$alt=json;enum-encoding=int`."""
    if isinstance(obj, list):
        return [to_ints(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    return {k: ENUMS[k][v] if k in ENUM_FIELDS
            and isinstance(v, str) else to_ints(v) for k, v in obj.items()}


CRC_OF = {"signatureCrc32c": "signature", "plaintextCrc32c": "plaintext",
          "ciphertextCrc32c": "ciphertext", "pemCrc32c": "pem", "dataCrc32c": "data"}


def corrupt(out, target):
    """Makes the response's CRC32C disagree with its payload (fault crc_response)."""
    for crc, field in CRC_OF.items():
        if crc in out:
            if target == "payload":
                raw = out[field].encode() if field == "pem" else base64.b64decode(out[field])
                raw = bytes([raw[0] ^ 1]) + raw[1:]
                out[field] = raw.decode("latin-1") if field == "pem" else b64(raw)
            else:
                out[crc] = str(int(out[crc]) ^ 1)
            return


# --- HTTP -------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body, written apart, wait 40 ms
    server_version = "p11kms-gcpkms-emulator"

    def log_message(self, fmt, *args):  # replaced by log_request_line
        pass

    def log_request_line(self, status, rpc):
        path = urlsplit(self.path).path
        sys.stderr.write(f"{self.command} {path} {status} {rpc or '-'}\n")

    def send_json(self, code, obj, rpc=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.log_request_line(code, rpc)

    def send_error_body(self, e, rpc=None):
        self.send_json(e.code, {"error": {"code": e.code, "message": e.message,
                                          "status": e.status, "details": []}}, rpc)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return data
                data += chunk
                if len(data) > MAX_BODY:
                    self.close_connection = True
                    raise bad(f"Request payload size exceeds the limit: {MAX_BODY} bytes.")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise bad(f"Request payload size exceeds the limit: {MAX_BODY} bytes.")
        return self.rfile.read(length)

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def handle_any(self):
        rpc = None
        try:
            url = urlsplit(self.path)
            raw = self.read_body()
            if url.path.startswith("/_emulator/") or url.path == "/token":
                return self.send_json(200, self.server.admin(self.command, url.path, raw))
            for method, regex, name, schema in ROUTES:
                m = regex.fullmatch(url.path)
                if m and method == self.command:
                    rpc = name
                    break
            else:
                raise ApiError(404, f"The requested URL {url.path} was not found "
                                    f"(method {self.command}).")
            self.server.count(rpc)
            faults = self.server.take_faults(rpc)
            for f in faults:
                if f["kind"] == "delay":
                    time.sleep(f.get("delay_ms", 1000) / 1000)
            for f in faults:
                if f["kind"] == "status":
                    code = int(f.get("status", 503))
                    raise ApiError(code, f.get("message", f"Injected fault: {code}."),
                                   f.get("status_name"))
            q, alt = self.parse_query(url.query, rpc)
            body = {}
            if schema:
                try:
                    obj = json.loads(raw or b"{}")
                except ValueError:
                    raise bad("Invalid JSON payload received.")
                if not isinstance(obj, dict):
                    raise bad("Invalid JSON payload received: expected an object.")
                body = parse_message(obj, SCHEMAS[schema])
            elif raw.strip():
                raise bad(f"{rpc} takes no request body.")
            resource = url.path[len("/v1/"):].rsplit(":", 1)[0]
            if rpc == "GetPublicKey":
                resource = resource[: -len("/publicKey")]
            elif rpc.startswith(("List", "Create")):
                resource = resource.rsplit("/", 1)[0]
            out = dispatch(self.server.kms, rpc, resource, q, body)
            for f in faults:
                if f["kind"] == "crc_response":
                    corrupt(out, f.get("target", "crc"))
                elif f["kind"] == "crc_request_ignored":
                    for k in list(out):
                        if k.startswith("verified"):
                            out[k] = False
            self.send_json(200, to_ints(out) if "enum-encoding=int" in alt else out, rpc)
        except ApiError as e:
            self.send_error_body(e, rpc)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug here must still be an answer, not a hang
            self.send_error_body(ApiError(500, f"Emulator error: {type(e).__name__}"), rpc)
            raise

    def parse_query(self, query, rpc):
        q, alt = {}, ""
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in SYSTEM_QUERY:
                if key == "$alt":
                    alt = value
                continue
            if key not in QUERY_OF.get(rpc, ()):
                raise bad(f"Invalid JSON payload received. Unknown name \"{key}\": "
                          f"Cannot bind query parameter.")
            if value != "":
                q[key] = parse_value(QUERY[key], value, key)
        q.pop("view", None)  # FULL adds only attestations: nothing to add here
        q.pop("versionView", None)
        return q, alt


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, kms):
        super().__init__(("127.0.0.1", port), Handler)
        self.kms = kms
        self.lock = threading.Lock()
        self.calls, self.faults = {}, []

    def count(self, rpc):
        with self.lock:
            self.calls[rpc] = self.calls.get(rpc, 0) + 1

    def take_faults(self, rpc):
        with self.lock:
            taken = [f for f in self.faults if f["method"] in (rpc, "*")]
            for f in taken:
                f["count"] -= 1
            self.faults = [f for f in self.faults if f["count"] > 0]
            return taken

    def admin(self, method, path, raw):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise bad("Invalid JSON.")
        if path == "/token" and method == "POST":
            return {"access_token": "emulator-token", "token_type": "Bearer",
                    "expires_in": 3600}
        with self.lock:
            if path == "/_emulator/calls" and method == "GET":
                return self.calls
            if path == "/_emulator/faults" and method == "GET":
                return {"faults": self.faults}
            if path == "/_emulator/faults" and method == "DELETE":
                self.faults = []
                return {}
            if path == "/_emulator/faults" and method == "POST":
                fault = check_fault(body)
                self.faults.append(fault)
                return fault
            if path == "/_emulator/reset" and method == "POST":
                self.calls, self.faults = {}, []
                if body.get("state"):
                    self.kms.reset()
                return {}
        raise ApiError(404, f"No admin endpoint {method} {path}.")


def check_fault(body):
    allowed = {"method", "kind", "count", "status", "status_name", "message", "delay_ms",
               "target"}
    unknown = set(body) - allowed
    if unknown:
        raise bad(f"Unknown fault field(s): {', '.join(sorted(unknown))}")
    known_rpcs = {r[2] for r in ROUTES} | {"*"}
    if body.get("method") not in known_rpcs:
        raise bad(f"Unknown method {body.get('method')!r}; one of {sorted(known_rpcs)}")
    if body.get("kind") not in ("delay", "status", "crc_response", "crc_request_ignored"):
        raise bad(f"Unknown fault kind {body.get('kind')!r}")
    if body.get("target", "crc") not in ("crc", "payload"):
        raise bad("target must be crc or payload")
    count = body.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise bad("count must be a positive integer")
    return {**body, "count": count}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--generation-delay-ms", type=int, default=200)
    p.add_argument("--state", help="JSON file keeping the keys across restarts")
    a = p.parse_args()
    server = Server(a.port, Kms(a.generation_delay_ms / 1000, a.state))
    sys.stderr.write(f"gcpkms emulator listening on http://127.0.0.1:{a.port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
