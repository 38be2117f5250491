#!/usr/bin/env python3
"""p11check — drive a PKCS#11 token from Python (PyKCS11) as a scripting user would,
and check every result with the `cryptography` package, never with the token itself.

Used by scripts/interop/python.sh:

    python p11check.py --module SO --token LABEL --pin PIN --out DIR CHECK...

Each CHECK runs in order; keys are token objects found by label, so the checks of one
run and of later runs (other processes) share them. CHECK is one of:

    genec     EC P-256 token key pair "py-ec" (C_GenerateKeyPair)
    genrsa    RSA 2048 token key pairs "py-rsa" (sign and decrypt) and "py-rsa-dec"
              (decrypt only: a KMS key has one usage)
    genaes    AES-256 token keys: "py-aes" (sensitive) and "py-aes-x" (extractable,
              not sensitive, so its value can be read for cross-checks)
    pubkeys   read the public keys from the token (CKA_EC_POINT/CKA_EC_PARAMS,
              CKA_MODULUS/CKA_PUBLIC_EXPONENT, CKA_PUBLIC_KEY_INFO), check they agree,
              write DIR/py-ec.pub.pem and DIR/py-rsa.pub.pem
    ecdsa     CKM_ECDSA_SHA256 and CKM_ECDSA (on a SHA-256 digest); cryptography
              verifies; writes DIR/data and DIR/py-ec.sig.der (DER) for openssl
    rsa       CKM_SHA256_RSA_PKCS; cryptography verifies; writes DIR/py-rsa.sig
    pss       CKM_SHA256_RSA_PKCS_PSS and CKM_RSA_PKCS_PSS (SHA-256, MGF1-SHA-256,
              salt 32) on py-rsa; on gcp py-rsa refuses them (CKR_MECHANISM_INVALID)
              and "py-rsa-pss", generated with CKA_ALLOWED_MECHANISMS naming only PSS,
              signs; cryptography verifies
    oaep      CKM_RSA_PKCS_OAEP decrypt on "py-rsa-dec" of cryptography's ciphertext:
              SHA-256 without label, SHA-1 with a label (on aws: refused with
              CKR_MECHANISM_PARAM_INVALID, KMS has no OAEP label)
    aesgcm    CKM_AES_GCM: round trip and bad tag on "py-aes"; on "py-aes-x" token
              encrypt / cryptography decrypt and the other way, with AAD
    aescbc    CKM_AES_CBC_PAD on "py-aes-x", single- and multi-part, both ways
    aesimport C_CreateObject of an AES key with a known value (session object);
              GCM and CBC-PAD ciphertexts equal cryptography's
    verify    cryptography's EC and RSA public keys imported (C_CreateObject): the
              token verifies cryptography's ECDSA, PKCS#1 and PSS signatures and
              rejects wrong ones (CKR_SIGNATURE_INVALID); OAEP encrypt on the token,
              cryptography decrypts

Prints "    check NAME: ok" or "    check NAME: FAILED: why"; exits 1 if any check
failed, 2 on bad usage.
"""

import argparse
import hashlib
import os
import struct
import sys
import traceback

import PyKCS11
from PyKCS11 import LowLevel as LL
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, padding as sympad, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The token's backend (python.sh passes P11KMS_INTEROP_BACKEND): what KMS cannot do
# is checked to be refused with the right code instead.
BACKEND = os.environ.get("P11KMS_INTEROP_BACKEND", "local")
DATA = b"p11kms interop: the quick brown fox jumps over the lazy dog"
P256_OID = bytes.fromhex("06082a8648ce3d030107")  # DER OID prime256v1


class CheckFailed(Exception):
    pass


def check(ok, what):
    if not ok:
        raise CheckFailed(what)


def b(value):
    """PyKCS11 returns byte strings as lists of ints."""
    return bytes(value)


class Token:
    def __init__(self, module, label, pin, out):
        self.out = out
        self.lib = PyKCS11.PyKCS11Lib()
        self.lib.load(module)
        slots = [
            s
            for s in self.lib.getSlotList(tokenPresent=True)
            if self.lib.getTokenInfo(s).label.strip() == label
        ]
        if len(slots) != 1:
            raise CheckFailed(f"expected one token labelled {label!r}, found {len(slots)}")
        self.slot = slots[0]
        self.s = self.lib.openSession(self.slot, LL.CKF_SERIAL_SESSION | LL.CKF_RW_SESSION)
        self.s.login(pin)

    def close(self):
        try:
            self.s.logout()
            self.s.closeSession()
        except PyKCS11.PyKCS11Error:
            pass

    def find(self, cls, label):
        objs = self.s.findObjects([(LL.CKA_CLASS, cls), (LL.CKA_LABEL, label)])
        check(len(objs) == 1, f"expected one object of class {cls:#x} labelled {label!r}, found {len(objs)}")
        return objs[0]

    def attrs(self, obj, types):
        return self.s.getAttributeValue(obj, types, allAsBinary=True)

    # ---- key generation ----------------------------------------------------

    def absent(self, label):
        check(not self.s.findObjects([(LL.CKA_LABEL, label)]), f"{label!r} already exists")

    def genec(self):
        self.absent("py-ec")
        pub = [
            (LL.CKA_CLASS, LL.CKO_PUBLIC_KEY),
            (LL.CKA_KEY_TYPE, LL.CKK_EC),
            (LL.CKA_TOKEN, True),
            (LL.CKA_LABEL, "py-ec"),
            (LL.CKA_ID, (0x70, 0x01)),
            (LL.CKA_EC_PARAMS, P256_OID),
            (LL.CKA_VERIFY, True),
        ]
        priv = [
            (LL.CKA_CLASS, LL.CKO_PRIVATE_KEY),
            (LL.CKA_KEY_TYPE, LL.CKK_EC),
            (LL.CKA_TOKEN, True),
            (LL.CKA_PRIVATE, True),
            (LL.CKA_SENSITIVE, True),
            (LL.CKA_LABEL, "py-ec"),
            (LL.CKA_ID, (0x70, 0x01)),
            (LL.CKA_SIGN, True),
        ]
        self.s.generateKeyPair(pub, priv, mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
        self.find(LL.CKO_PRIVATE_KEY, "py-ec")
        self.find(LL.CKO_PUBLIC_KEY, "py-ec")
        return "token key pair py-ec"

    def genrsa(self):
        self.absent("py-rsa")
        pub = [
            (LL.CKA_CLASS, LL.CKO_PUBLIC_KEY),
            (LL.CKA_KEY_TYPE, LL.CKK_RSA),
            (LL.CKA_TOKEN, True),
            (LL.CKA_LABEL, "py-rsa"),
            (LL.CKA_ID, (0x70, 0x02)),
            (LL.CKA_MODULUS_BITS, 2048),
            (LL.CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01)),
            (LL.CKA_VERIFY, True),
            (LL.CKA_ENCRYPT, True),
        ]
        priv = [
            (LL.CKA_CLASS, LL.CKO_PRIVATE_KEY),
            (LL.CKA_KEY_TYPE, LL.CKK_RSA),
            (LL.CKA_TOKEN, True),
            (LL.CKA_PRIVATE, True),
            (LL.CKA_SENSITIVE, True),
            (LL.CKA_LABEL, "py-rsa"),
            (LL.CKA_ID, (0x70, 0x02)),
            (LL.CKA_SIGN, True),
            (LL.CKA_DECRYPT, True),
        ]
        self.s.generateKeyPair(pub, priv, mecha=PyKCS11.MechanismRSAGENERATEKEYPAIR)
        self.find(LL.CKO_PRIVATE_KEY, "py-rsa")
        self.find(LL.CKO_PUBLIC_KEY, "py-rsa")
        # A decryption-only pair: a KMS key has one usage (sign or decrypt), so an
        # application that decrypts asks for a decryption key.
        self.absent("py-rsa-dec")
        swap = {LL.CKA_LABEL: "py-rsa-dec", LL.CKA_ID: (0x70, 0x03)}
        pub = [(t, swap.get(t, v)) for t, v in pub if t != LL.CKA_VERIFY]
        priv = [(t, swap.get(t, v)) for t, v in priv if t != LL.CKA_SIGN]
        self.s.generateKeyPair(pub, priv, mecha=PyKCS11.MechanismRSAGENERATEKEYPAIR)
        self.find(LL.CKO_PRIVATE_KEY, "py-rsa-dec")
        return "token key pairs py-rsa (sign, decrypt) and py-rsa-dec (decrypt)"

    def genaes(self):
        for label, sensitive in (("py-aes", True), ("py-aes-x", False)):
            self.absent(label)
            tmpl = [
                (LL.CKA_CLASS, LL.CKO_SECRET_KEY),
                (LL.CKA_KEY_TYPE, LL.CKK_AES),
                (LL.CKA_TOKEN, True),
                (LL.CKA_PRIVATE, True),
                (LL.CKA_LABEL, label),
                (LL.CKA_VALUE_LEN, 32),
                (LL.CKA_ENCRYPT, True),
                (LL.CKA_DECRYPT, True),
                (LL.CKA_SENSITIVE, sensitive),
                (LL.CKA_EXTRACTABLE, not sensitive),
            ]
            self.s.generateKey(tmpl, mecha=PyKCS11.MechanismAESGENERATEKEY)
        # PyKCS11's getAttributeValue hides the return code (None): ask the C API.
        k = self.find(LL.CKO_SECRET_KEY, "py-aes")
        t = LL.ckattrlist(1)
        t[0].SetType(LL.CKA_VALUE)
        rv = self.s.lib.C_GetAttributeValue(self.s.session, k, t)
        check(rv == LL.CKR_ATTRIBUTE_SENSITIVE,
              f"C_GetAttributeValue(py-aes, CKA_VALUE) returned {PyKCS11.CKR.get(rv, hex(rv))},"
              " expected CKR_ATTRIBUTE_SENSITIVE")
        x = self.find(LL.CKO_SECRET_KEY, "py-aes-x")
        check(len(self.aes_x_value()) == 32, "py-aes-x's CKA_VALUE is not 32 bytes")
        (vlen,) = self.s.getAttributeValue(x, [LL.CKA_VALUE_LEN])
        check(vlen == 32, f"py-aes-x's CKA_VALUE_LEN is {vlen}")
        return "py-aes (sensitive) and py-aes-x (extractable), 32 bytes"

    def aes_x_value(self):
        (value,) = self.attrs(self.find(LL.CKO_SECRET_KEY, "py-aes-x"), [LL.CKA_VALUE])
        return b(value)

    # ---- public keys -------------------------------------------------------

    def ec_public(self):
        obj = self.find(LL.CKO_PUBLIC_KEY, "py-ec")
        point, params = (b(v) for v in self.attrs(obj, [LL.CKA_EC_POINT, LL.CKA_EC_PARAMS]))
        check(params == P256_OID, f"CKA_EC_PARAMS is {params.hex()}, not prime256v1")
        # CKA_EC_POINT is the DER OCTET STRING holding the uncompressed point.
        check(len(point) == 67 and point[:3] == b"\x04\x41\x04",
              f"CKA_EC_POINT is not a DER OCTET STRING of a P-256 point: {point.hex()}")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])

    def rsa_public(self, label="py-rsa"):
        obj = self.find(LL.CKO_PUBLIC_KEY, label)
        n, e = (b(v) for v in self.attrs(obj, [LL.CKA_MODULUS, LL.CKA_PUBLIC_EXPONENT]))
        key = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
        check(key.key_size == 2048, f"modulus has {key.key_size} bits")
        check(key.public_numbers().e == 65537, f"public exponent is {key.public_numbers().e}")
        return key

    def pubkeys(self):
        keys = (("py-ec", self.ec_public()), ("py-rsa", self.rsa_public()))
        for label, key in keys:
            pem = key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
            with open(os.path.join(self.out, f"{label}.pub.pem"), "wb") as f:
                f.write(pem)
        for label, key in keys:
            spki = key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
            for cls, name in ((LL.CKO_PUBLIC_KEY, "public"), (LL.CKO_PRIVATE_KEY, "private")):
                (info,) = self.attrs(self.find(cls, label), [LL.CKA_PUBLIC_KEY_INFO])
                check(info is not None and b(info) == spki,
                      f"{label} {name} key: CKA_PUBLIC_KEY_INFO differs from the key's SPKI"
                      f" ({None if info is None else b(info).hex()})")
        return "EC point and RSA modulus agree with CKA_PUBLIC_KEY_INFO of both halves"

    # ---- signatures --------------------------------------------------------

    def sign(self, label, mech, data):
        return b(self.s.sign(self.find(LL.CKO_PRIVATE_KEY, label), data, mech))

    def ecdsa(self):
        pub = self.ec_public()
        for name, mech, data in (
            ("CKM_ECDSA_SHA256", PyKCS11.Mechanism(LL.CKM_ECDSA_SHA256, None), DATA),
            ("CKM_ECDSA", PyKCS11.Mechanism(LL.CKM_ECDSA, None), hashlib.sha256(DATA).digest()),
        ):
            sig = self.sign("py-ec", mech, data)
            check(len(sig) == 64, f"{name}: signature has {len(sig)} bytes, not r||s = 64")
            der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                             int.from_bytes(sig[32:], "big"))
            try:
                pub.verify(der, DATA, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                raise CheckFailed(f"{name}: cryptography rejects the token's signature")
            try:
                pub.verify(der, DATA + b"!", ec.ECDSA(hashes.SHA256()))
                raise CheckFailed(f"{name}: the signature verifies for other data")
            except InvalidSignature:
                pass
        with open(os.path.join(self.out, "data"), "wb") as f:
            f.write(DATA)
        with open(os.path.join(self.out, "py-ec.sig.der"), "wb") as f:
            f.write(der)
        return "CKM_ECDSA_SHA256 and CKM_ECDSA, verified by cryptography"

    def rsa(self):
        pub = self.rsa_public()
        sig = self.sign("py-rsa", PyKCS11.Mechanism(LL.CKM_SHA256_RSA_PKCS, None), DATA)
        try:
            pub.verify(sig, DATA, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise CheckFailed("CKM_SHA256_RSA_PKCS: cryptography rejects the token's signature")
        with open(os.path.join(self.out, "py-rsa.sig"), "wb") as f:
            f.write(sig)
        return "CKM_SHA256_RSA_PKCS, verified by cryptography"

    def pss(self):
        label = "py-rsa"
        if BACKEND == "gcp":
            # A Cloud KMS version has one algorithm: py-rsa is RSA_SIGN_PKCS1_2048_SHA256
            # and refuses PSS; a pair whose CKA_ALLOWED_MECHANISMS name only PSS is an
            # RSA_SIGN_PSS_2048_SHA256 version, and signs.
            for mech in (LL.CKM_SHA256_RSA_PKCS_PSS, LL.CKM_RSA_PKCS_PSS):
                data = DATA if mech == LL.CKM_SHA256_RSA_PKCS_PSS else hashlib.sha256(DATA).digest()
                try:
                    self.sign("py-rsa", PyKCS11.RSA_PSS_Mechanism(
                        mech, LL.CKM_SHA256, LL.CKG_MGF1_SHA256, 32), data)
                except PyKCS11.PyKCS11Error as e:
                    check(e.value == LL.CKR_MECHANISM_INVALID,
                          f"PSS on py-rsa: {e} instead of CKR_MECHANISM_INVALID")
                    continue
                raise CheckFailed("PSS on py-rsa: signed, but py-rsa is a PKCS#1 v1.5 version")
            label = "py-rsa-pss"
            self.genrsa_pss(label)
        pub = self.rsa_public(label)
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        for name, mech, data in (
            ("CKM_SHA256_RSA_PKCS_PSS",
             PyKCS11.RSA_PSS_Mechanism(LL.CKM_SHA256_RSA_PKCS_PSS, LL.CKM_SHA256, LL.CKG_MGF1_SHA256, 32),
             DATA),
            ("CKM_RSA_PKCS_PSS",
             PyKCS11.RSA_PSS_Mechanism(LL.CKM_RSA_PKCS_PSS, LL.CKM_SHA256, LL.CKG_MGF1_SHA256, 32),
             hashlib.sha256(DATA).digest()),
        ):
            sig = self.sign(label, mech, data)
            try:
                pub.verify(sig, DATA, pad, hashes.SHA256())
            except InvalidSignature:
                raise CheckFailed(f"{name}: cryptography rejects the token's signature")
        extra = " (gcp: py-rsa refuses PSS, the PSS-only pair py-rsa-pss signs)" if BACKEND == "gcp" else ""
        return f"CKM_SHA256_RSA_PKCS_PSS and CKM_RSA_PKCS_PSS on {label}, salt 32, verified by cryptography{extra}"

    def genrsa_pss(self, label):
        """An RSA 2048 signing pair whose CKA_ALLOWED_MECHANISMS name only RSA-PSS."""
        self.absent(label)
        # A CK_MECHANISM_TYPE array: native unsigned longs, CK_ULONG (PyKCS11 passes
        # bytes as given; a tuple of ints would be one byte each).
        allowed = struct.pack("2L", LL.CKM_RSA_PKCS_PSS, LL.CKM_SHA256_RSA_PKCS_PSS)
        pub = [
            (LL.CKA_CLASS, LL.CKO_PUBLIC_KEY), (LL.CKA_KEY_TYPE, LL.CKK_RSA),
            (LL.CKA_TOKEN, True), (LL.CKA_LABEL, label), (LL.CKA_ID, (0x70, 0x04)),
            (LL.CKA_MODULUS_BITS, 2048), (LL.CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01)),
            (LL.CKA_VERIFY, True), (LL.CKA_ALLOWED_MECHANISMS, allowed),
        ]
        priv = [
            (LL.CKA_CLASS, LL.CKO_PRIVATE_KEY), (LL.CKA_KEY_TYPE, LL.CKK_RSA),
            (LL.CKA_TOKEN, True), (LL.CKA_PRIVATE, True), (LL.CKA_SENSITIVE, True),
            (LL.CKA_LABEL, label), (LL.CKA_ID, (0x70, 0x04)), (LL.CKA_SIGN, True),
            (LL.CKA_ALLOWED_MECHANISMS, allowed),
        ]
        self.s.generateKeyPair(pub, priv, mecha=PyKCS11.MechanismRSAGENERATEKEYPAIR)
        got = self.attrs(self.find(LL.CKO_PRIVATE_KEY, label), [LL.CKA_ALLOWED_MECHANISMS])[0]
        check(len(b(got)) > 0, f"{label} has no CKA_ALLOWED_MECHANISMS")

    # ---- RSA decryption ----------------------------------------------------

    def oaep(self):
        pub = self.rsa_public("py-rsa-dec")
        priv = self.find(LL.CKO_PRIVATE_KEY, "py-rsa-dec")
        for name, h, ck_hash, ck_mgf, label in (
            ("SHA-256", hashes.SHA256(), LL.CKM_SHA256, LL.CKG_MGF1_SHA256, None),
            ("SHA-1 with label", hashes.SHA1(), LL.CKM_SHA_1, LL.CKG_MGF1_SHA1, b"p11kms label"),
        ):
            ct = pub.encrypt(DATA, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=label))
            mech = PyKCS11.RSAOAEPMechanism(ck_hash, ck_mgf, label)
            if label and BACKEND in ("aws", "gcp"):
                # KMS's RSAES_OAEP (AWS and Cloud KMS) takes no label: the module says so
                # at C_DecryptInit. (On gcp py-rsa-dec is also a SHA-256 version.)
                print(f"    SKIPPED on {BACKEND}: OAEP {name}: KMS OAEP takes no label (not possible)")
                try:
                    self.s.decrypt(priv, ct, mech)
                except PyKCS11.PyKCS11Error as e:
                    check(e.value == LL.CKR_MECHANISM_PARAM_INVALID,
                          f"OAEP {name}: {e} instead of CKR_MECHANISM_PARAM_INVALID")
                    continue
                raise CheckFailed(f"OAEP {name}: decrypted, but KMS OAEP has no label")
            pt = b(self.s.decrypt(priv, ct, mech))
            check(pt == DATA, f"OAEP {name}: the token's plaintext differs")
        return "OAEP SHA-256 and SHA-1 with label on py-rsa-dec, cryptography encrypted"

    # ---- AES ---------------------------------------------------------------

    def gcm(self, key, iv, aad, data, encrypt):
        mech = PyKCS11.AES_GCM_Mechanism(iv, aad, 128)
        f = self.s.encrypt if encrypt else self.s.decrypt
        return b(f(key, data, mech))

    def aesgcm(self):
        aad = b"header"
        key = self.find(LL.CKO_SECRET_KEY, "py-aes")
        iv = os.urandom(12)
        ct = self.gcm(key, iv, aad, DATA, True)
        check(len(ct) == len(DATA) + 16, f"ciphertext||tag has {len(ct)} bytes")
        check(self.gcm(key, iv, aad, ct, False) == DATA, "round trip on the token differs")
        bad = ct[:-1] + bytes([ct[-1] ^ 1])
        try:
            self.gcm(key, iv, aad, bad, False)
            raise CheckFailed("the token decrypted a ciphertext with a bad tag")
        except PyKCS11.PyKCS11Error as e:
            bad_tag = PyKCS11.CKR[e.value] if e.value in PyKCS11.CKR else hex(e.value)

        x = self.find(LL.CKO_SECRET_KEY, "py-aes-x")
        soft = AESGCM(self.aes_x_value())
        iv = os.urandom(12)
        ct = self.gcm(x, iv, aad, DATA, True)
        try:
            check(soft.decrypt(iv, ct, aad) == DATA, "cryptography's plaintext differs")
        except InvalidTag:
            raise CheckFailed("cryptography rejects the token's GCM tag")
        iv = os.urandom(12)
        ct = soft.encrypt(iv, DATA, aad)
        check(self.gcm(x, iv, aad, ct, False) == DATA,
              "the token does not decrypt cryptography's ciphertext")
        return f"round trip, bad tag -> {bad_tag}, both ways against cryptography"

    def aescbc(self):
        x = self.find(LL.CKO_SECRET_KEY, "py-aes-x")
        keyval = self.aes_x_value()
        iv = os.urandom(16)
        mech = PyKCS11.Mechanism(LL.CKM_AES_CBC_PAD, iv)

        def soft_enc(data):
            p = sympad.PKCS7(128).padder()
            e = Cipher(algorithms.AES(keyval), modes.CBC(iv)).encryptor()
            return e.update(p.update(data) + p.finalize()) + e.finalize()

        def soft_dec(data):
            d = Cipher(algorithms.AES(keyval), modes.CBC(iv)).decryptor()
            u = sympad.PKCS7(128).unpadder()
            return u.update(d.update(data) + d.finalize()) + u.finalize()

        # (PyKCS11 refuses empty input itself, CKR_ARGUMENTS_BAD without calling C_Encrypt.)
        for data in (DATA, bytes(range(16)), bytes(range(48))):
            ct = b(self.s.encrypt(x, data, mech))
            check(ct == soft_enc(data), f"{len(data)} bytes: the token's ciphertext differs")
            check(soft_dec(ct) == data, f"{len(data)} bytes: cryptography's plaintext differs")
            check(b(self.s.decrypt(x, soft_enc(data), mech)) == data,
                  f"{len(data)} bytes: the token does not decrypt cryptography's ciphertext")

        # Multi-part: C_EncryptUpdate in odd-sized pieces, then C_EncryptFinal.
        data = bytes(range(256)) * 3
        self.s.encryptInit(mech, x)
        ct = b""
        for i in range(0, len(data), 37):
            ct += b(self.s.encryptUpdate(data[i:i + 37]))
        ct += b(self.s.encryptFinal())
        check(ct == soft_enc(data), "multi-part: the token's ciphertext differs")
        self.s.decryptInit(mech, x)
        pt = b""
        for i in range(0, len(ct), 50):
            pt += b(self.s.decryptUpdate(ct[i:i + 50]))
        pt += b(self.s.decryptFinal())
        check(pt == data, "multi-part: the token's plaintext differs")
        return "single-part (16, 48, 59 bytes) and multi-part, both ways"

    def aesimport(self):
        keyval = os.urandom(32)
        key = self.s.createObject([
            (LL.CKA_CLASS, LL.CKO_SECRET_KEY),
            (LL.CKA_KEY_TYPE, LL.CKK_AES),
            (LL.CKA_TOKEN, False),
            (LL.CKA_VALUE, keyval),
            (LL.CKA_ENCRYPT, True),
            (LL.CKA_DECRYPT, True),
        ])
        try:
            aad = b"header"
            iv = os.urandom(12)
            check(self.gcm(key, iv, aad, DATA, True) == AESGCM(keyval).encrypt(iv, DATA, aad),
                  "GCM: the token's ciphertext differs from cryptography's")
            iv = os.urandom(16)
            p = sympad.PKCS7(128).padder()
            e = Cipher(algorithms.AES(keyval), modes.CBC(iv)).encryptor()
            want = e.update(p.update(DATA) + p.finalize()) + e.finalize()
            got = b(self.s.encrypt(key, DATA, PyKCS11.Mechanism(LL.CKM_AES_CBC_PAD, iv)))
            check(got == want, "CBC-PAD: the token's ciphertext differs from cryptography's")
        finally:
            self.s.destroyObject(key)
        return "imported session key: GCM and CBC-PAD equal cryptography's"


    # ---- the other direction: cryptography's keys imported as public keys ----

    def verify(self):
        """C_Verify and C_Encrypt on public keys imported with C_CreateObject."""
        eck = ec.generate_private_key(ec.SECP256R1())
        point = eck.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        ecpub = self.s.createObject([
            (LL.CKA_CLASS, LL.CKO_PUBLIC_KEY), (LL.CKA_KEY_TYPE, LL.CKK_EC),
            (LL.CKA_TOKEN, False), (LL.CKA_VERIFY, True),
            (LL.CKA_EC_PARAMS, P256_OID), (LL.CKA_EC_POINT, b"\x04" + bytes([len(point)]) + point),
        ])
        rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = rk.public_key().public_numbers()
        rsapub = self.s.createObject([
            (LL.CKA_CLASS, LL.CKO_PUBLIC_KEY), (LL.CKA_KEY_TYPE, LL.CKK_RSA),
            (LL.CKA_TOKEN, False), (LL.CKA_VERIFY, True), (LL.CKA_ENCRYPT, True),
            (LL.CKA_MODULUS, nums.n.to_bytes(256, "big")),
            (LL.CKA_PUBLIC_EXPONENT, nums.e.to_bytes(3, "big")),
        ])
        try:
            r, s_ = utils.decode_dss_signature(eck.sign(DATA, ec.ECDSA(hashes.SHA256())))
            cases = [
                ("CKM_ECDSA_SHA256", ecpub, PyKCS11.Mechanism(LL.CKM_ECDSA_SHA256, None),
                 r.to_bytes(32, "big") + s_.to_bytes(32, "big")),
                ("CKM_SHA256_RSA_PKCS", rsapub, PyKCS11.Mechanism(LL.CKM_SHA256_RSA_PKCS, None),
                 rk.sign(DATA, padding.PKCS1v15(), hashes.SHA256())),
                ("CKM_SHA256_RSA_PKCS_PSS", rsapub,
                 PyKCS11.RSA_PSS_Mechanism(LL.CKM_SHA256_RSA_PKCS_PSS, LL.CKM_SHA256,
                                           LL.CKG_MGF1_SHA256, 32),
                 rk.sign(DATA, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                         hashes.SHA256())),
            ]
            for name, key, mech, sig in cases:
                check(self.s.verify(key, DATA, sig, mech),
                      f"{name}: the token rejects cryptography's signature")
                # PyKCS11's verify is False for CKR_SIGNATURE_INVALID and raises otherwise.
                try:
                    ok = self.s.verify(key, DATA + b"!", sig, mech)
                except PyKCS11.PyKCS11Error as e:
                    raise CheckFailed(f"{name}: a wrong signature gave {e},"
                                      " expected CKR_SIGNATURE_INVALID")
                check(ok is False, f"{name}: the token verified a signature for other data")
            ct = b(self.s.encrypt(rsapub, DATA,
                                  PyKCS11.RSAOAEPMechanism(LL.CKM_SHA256, LL.CKG_MGF1_SHA256)))
            pt = rk.decrypt(ct, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                             algorithm=hashes.SHA256(), label=None))
            check(pt == DATA, "OAEP: cryptography's plaintext of the token's ciphertext differs")
        finally:
            self.s.destroyObject(ecpub)
            self.s.destroyObject(rsapub)
        return ("ECDSA, PKCS#1 and PSS signatures verified on the token, wrong ones"
                " CKR_SIGNATURE_INVALID; OAEP encrypt decrypted by cryptography")


CHECKS = ["genec", "genrsa", "genaes", "pubkeys", "ecdsa", "rsa", "pss", "oaep",
          "aesgcm", "aescbc", "aesimport", "verify"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--module", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("checks", nargs="+", choices=CHECKS)
    args = ap.parse_args()

    try:
        tok = Token(args.module, args.token, args.pin, args.out)
    except Exception as e:  # noqa: BLE001 - any failure here is the check's result
        print(f"    check setup: FAILED: {e!r}")
        traceback.print_exc(file=sys.stdout)
        return 1
    failed = 0
    for name in args.checks:
        try:
            note = getattr(tok, name)()
            print(f"    check {name}: ok ({note})")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"    check {name}: FAILED: {e!r}")
            traceback.print_exc(file=sys.stdout)
    tok.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
