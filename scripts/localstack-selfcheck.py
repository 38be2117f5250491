#!/usr/bin/env python3
"""Check that the KMS emulator behaves like AWS KMS where p11kms relies on it.

Run with the LocalStack virtualenv's python (it has boto3), against a running
emulator: `scripts/localstack.sh start && scripts/localstack.sh selfcheck`, or
`eval "$(scripts/localstack.sh env)"; $VENV/bin/python scripts/localstack-selfcheck.py`.

Signatures and OAEP ciphertexts are checked with the `openssl` command against the
DER SubjectPublicKeyInfo from GetPublicKey, so the emulator's answers are judged by
an independent implementation, not by itself. Exits 1 when any check fails.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

FAILED = []
PASSED = []
NOTES = []


def check(name, ok, detail=""):
    (PASSED if ok else FAILED).append(name)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def note(text):
    NOTES.append(text)
    print(f"note {text}", flush=True)


def error_code(fn, **kwargs):
    """The AWS error code of a call expected to fail, or None when it succeeds."""
    try:
        fn(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace").strip()


def mgf1(seed, length, hash_fn=hashlib.sha256):
    out = b""
    counter = 0
    while len(out) < length:
        out += hash_fn(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def pss_salt_len(sig, spki_der, mod_bits, h_len=32):
    """Recover the salt length of an RSASSA-PSS (SHA-256, MGF1-SHA-256) signature
    (RFC 8017 §9.1.2) by the public-key operation; None when it is not PSS-shaped."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    pub = load_der_public_key(spki_der).public_numbers()
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    em = pow(int.from_bytes(sig, "big"), pub.e, pub.n).to_bytes(em_len, "big")
    if em[-1] != 0xBC:
        return None
    masked_db, h = em[: em_len - h_len - 1], em[em_len - h_len - 1 : -1]
    db = bytearray(a ^ b for a, b in zip(masked_db, mgf1(h, len(masked_db))))
    db[0] &= 0xFF >> (8 * em_len - em_bits)
    i = 0
    while i < len(db) and db[i] == 0:
        i += 1
    if i == len(db) or db[i] != 0x01:
        return None
    return len(db) - i - 1


def main():
    kms = boto3.client(
        "kms",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        # No retries: the emulator answers an internal error at once, and retrying
        # only slows the check down.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    tmp = tempfile.mkdtemp(prefix="p11kms-kms-selfcheck-")
    tag = uuid.uuid4().hex[:8]
    created = []
    alias = f"alias/p11kms-selfcheck-{tag}"

    def path(name):
        return os.path.join(tmp, name)

    def write(name, data):
        with open(path(name), "wb") as f:
            f.write(data)
        return path(name)

    def create(spec, usage):
        k = kms.create_key(KeySpec=spec, KeyUsage=usage, Description=f"p11kms selfcheck {tag} {spec} {usage}")
        meta = k["KeyMetadata"]
        created.append(meta["KeyId"])
        return meta

    # --- symmetric: alias, GenerateDataKey with context, Decrypt, context enforced
    sym = create("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    check("CreateKey SYMMETRIC_DEFAULT", sym["KeySpec"] == "SYMMETRIC_DEFAULT" and sym["KeyState"] == "Enabled",
          f"{sym['KeyId']} state {sym['KeyState']}")
    kms.create_alias(AliasName=alias, TargetKeyId=sym["KeyId"])
    ctx = {"p11kms": "selfcheck", "token": tag}
    dk = kms.generate_data_key(KeyId=alias, KeySpec="AES_256", EncryptionContext=ctx)
    check("GenerateDataKey via alias", len(dk["Plaintext"]) == 32 and dk["KeyId"].endswith(sym["KeyId"]),
          f"KeyId {dk['KeyId']}, ciphertext {len(dk['CiphertextBlob'])} bytes")
    dec = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)
    check("Decrypt data key with its context", dec["Plaintext"] == dk["Plaintext"] and dec["KeyId"].endswith(sym["KeyId"]))
    code = error_code(kms.decrypt, CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"p11kms": "other"})
    check("Decrypt with a wrong context fails", code == "InvalidCiphertextException", f"error {code}")
    code = error_code(kms.decrypt, CiphertextBlob=dk["CiphertextBlob"])
    check("Decrypt without the context fails", code == "InvalidCiphertextException", f"error {code}")

    # --- ReEncrypt with SourceKeyId
    sym2 = create("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    ct = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"re-encrypt me", EncryptionContext=ctx)["CiphertextBlob"]
    re = kms.re_encrypt(CiphertextBlob=ct, SourceKeyId=sym["KeyId"], SourceEncryptionContext=ctx,
                        DestinationKeyId=sym2["KeyId"], DestinationEncryptionContext={"moved": "yes"})
    dec = kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"moved": "yes"})
    check("ReEncrypt with SourceKeyId", dec["Plaintext"] == b"re-encrypt me" and dec["KeyId"].endswith(sym2["KeyId"])
          and re["SourceKeyId"].endswith(sym["KeyId"]), f"SourceKeyId {re['SourceKeyId']}")
    code = error_code(kms.re_encrypt, CiphertextBlob=ct, SourceKeyId=sym2["KeyId"], SourceEncryptionContext=ctx,
                      DestinationKeyId=sym2["KeyId"])
    check("ReEncrypt with the wrong SourceKeyId fails", code is not None, f"error {code}")
    if code != "IncorrectKeyException":
        note(f"ReEncrypt with the wrong SourceKeyId: {code} (AWS documents IncorrectKeyException)")

    # --- asymmetric keys and their public keys
    keys = {}
    for name, spec, usage in [
        ("rsa-sign", "RSA_2048", "SIGN_VERIFY"),
        ("rsa-enc", "RSA_2048", "ENCRYPT_DECRYPT"),
        ("p256", "ECC_NIST_P256", "SIGN_VERIFY"),
        ("k256", "ECC_SECG_P256K1", "SIGN_VERIFY"),
    ]:
        meta = create(spec, usage)
        pub = kms.get_public_key(KeyId=meta["KeyId"])
        der = write(f"{name}.spki.der", pub["PublicKey"])
        rc, out, err = openssl("pkey", "-pubin", "-inform", "DER", "-in", der, "-noout", "-text")
        algs = pub.get("SigningAlgorithms") or pub.get("EncryptionAlgorithms")
        check(f"CreateKey/GetPublicKey {spec} {usage}",
              rc == 0 and pub["KeySpec"] == spec and pub["KeyUsage"] == usage,
              f"{len(pub['PublicKey'])}-byte SPKI, {out.decode().splitlines()[0] if rc == 0 else err}; {algs}")
        keys[name] = (meta["KeyId"], der, pub["PublicKey"])

    # --- Sign (DIGEST and RAW), verified by openssl
    msg = b"p11kms selfcheck message " + tag.encode()
    digest = hashlib.sha256(msg).digest()
    write("msg.bin", msg)
    write("digest.bin", digest)
    padding = {
        "ECDSA_SHA_256": [],
        "RSASSA_PKCS1_V1_5_SHA_256": ["-pkeyopt", "rsa_padding_mode:pkcs1"],
        "RSASSA_PSS_SHA_256": ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:auto"],
    }
    for name, alg in [("p256", "ECDSA_SHA_256"), ("k256", "ECDSA_SHA_256"),
                      ("rsa-sign", "RSASSA_PSS_SHA_256"), ("rsa-sign", "RSASSA_PKCS1_V1_5_SHA_256")]:
        key_id, der, der_bytes = keys[name]
        for mtype, data, ossl in [
            ("DIGEST", "digest.bin", ["pkeyutl", "-verify", "-pkeyopt", "digest:sha256"]),
            ("RAW", "msg.bin", ["pkeyutl", "-verify", "-rawin", "-digest", "sha256"]),
        ]:
            sig = kms.sign(KeyId=key_id, Message=msg if mtype == "RAW" else digest,
                           MessageType=mtype, SigningAlgorithm=alg)["Signature"]
            sigf = write(f"{name}.{alg}.{mtype}.sig", sig)
            args = [*ossl, "-pubin", "-keyform", "DER", "-inkey", der, "-in", path(data), "-sigfile", sigf,
                    *padding[alg]]
            rc, out, err = openssl(*args)
            check(f"Sign {name} {alg} {mtype} verified by openssl", rc == 0,
                  f"{len(sig)}-byte signature; openssl: {(out.decode().strip() or err)[:200]}")
            if mtype == "DIGEST":
                ok = kms.verify(KeyId=key_id, Message=digest, MessageType="DIGEST", Signature=sig,
                                SigningAlgorithm=alg)["SignatureValid"]
                check(f"Verify {name} {alg} DIGEST via KMS", ok)
            if alg == "RSASSA_PSS_SHA_256":
                salt = pss_salt_len(sig, der_bytes, 2048)
                rc32, _, _ = openssl(*args[:-2], "-pkeyopt", "rsa_pss_saltlen:32")
                check(f"PSS {mtype} salt length is the digest length (32)", salt == 32 and rc32 == 0,
                      f"recovered salt length {salt}; openssl with rsa_pss_saltlen:32 rc={rc32}")
                note(f"RSASSA_PSS_SHA_256 {mtype}: salt length {salt} bytes")

    # A message signed as DIGEST must not be hashed again: openssl must reject it as a
    # signature over the message.
    key_id, der, _ = keys["p256"]
    sig = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    sigf = write("p256.double.sig", sig)
    rc, _, _ = openssl("pkeyutl", "-verify", "-pkeyopt", "digest:sha256", "-pubin", "-keyform", "DER", "-inkey", der,
                       "-in", write("digest2.bin", hashlib.sha256(digest).digest()), "-sigfile", sigf)
    check("DIGEST is not hashed again by the emulator", rc != 0)
    code = error_code(kms.sign, KeyId=key_id, Message=digest[:20], MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    note(f"Sign DIGEST with a 20-byte digest for ECDSA_SHA_256: {code}")
    code = error_code(kms.sign, KeyId=key_id, Message=msg, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_384")
    note(f"Sign P-256 with ECDSA_SHA_384: {code} (AWS accepts only ECDSA_SHA_256 for ECC_NIST_P256)")

    # --- RSAES_OAEP: encrypt locally with openssl, Decrypt via KMS
    key_id, der, _ = keys["rsa-enc"]
    secret = b"oaep secret " + tag.encode()
    write("secret.bin", secret)
    for alg, md in [("RSAES_OAEP_SHA_256", "sha256"), ("RSAES_OAEP_SHA_1", "sha1")]:
        rc, ct, err = openssl("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", der, "-in",
                              path("secret.bin"), "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt",
                              f"rsa_oaep_md:{md}", "-pkeyopt", f"rsa_mgf1_md:{md}")
        if not check(f"openssl OAEP {md} encrypt", rc == 0, err):
            continue
        try:
            pt = kms.decrypt(KeyId=key_id, CiphertextBlob=ct, EncryptionAlgorithm=alg)["Plaintext"]
            ok, detail = pt == secret, ""
        except ClientError as e:
            ok, detail = False, e.response["Error"]["Code"]
        if alg == "RSAES_OAEP_SHA_1":
            # LocalStack (2026.3) decrypts every RSA ciphertext as OAEP with SHA-256 and
            # MGF1-SHA-256, whatever EncryptionAlgorithm says: known, not p11kms's fault.
            note(f"Decrypt {alg} of openssl's OAEP-SHA-1 ciphertext: {'works' if ok else 'fails, ' + detail}"
                 " (LocalStack ignores EncryptionAlgorithm and always uses OAEP-SHA-256)")
        else:
            check(f"Decrypt {alg} of openssl's ciphertext", ok, detail)
    code = error_code(kms.decrypt, KeyId=key_id, CiphertextBlob=os.urandom(256), EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    note(f"Decrypt RSAES_OAEP_SHA_256 of random bytes: {code} (AWS: InvalidCiphertextException)")

    # --- ListAliases, tags
    aliases = kms.list_aliases(KeyId=sym["KeyId"])["Aliases"]
    check("ListAliases(KeyId) lists the alias", any(a["AliasName"] == alias for a in aliases),
          str([a["AliasName"] for a in aliases]))
    all_aliases = [a for p in kms.get_paginator("list_aliases").paginate() for a in p["Aliases"]]
    check("ListAliases (all) has it with TargetKeyId",
          any(a["AliasName"] == alias and a.get("TargetKeyId") == sym["KeyId"] for a in all_aliases),
          f"{len(all_aliases)} aliases")
    kms.tag_resource(KeyId=sym["KeyId"], Tags=[{"TagKey": "p11kms:token", "TagValue": tag},
                                               {"TagKey": "p11kms:label", "TagValue": "selfcheck"}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=sym["KeyId"])["Tags"]}
    check("TagResource + ListResourceTags", tags == {"p11kms:token": tag, "p11kms:label": "selfcheck"}, str(tags))
    kms.untag_resource(KeyId=sym["KeyId"], TagKeys=["p11kms:label"])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=sym["KeyId"])["Tags"]}
    check("UntagResource", tags == {"p11kms:token": tag}, str(tags))
    k = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY",
                       Tags=[{"TagKey": "p11kms:token", "TagValue": tag}])["KeyMetadata"]
    created.append(k["KeyId"])
    tags = kms.list_resource_tags(KeyId=k["KeyId"])["Tags"]
    check("CreateKey with Tags", tags == [{"TagKey": "p11kms:token", "TagValue": tag}], str(tags))

    # --- DisableKey, then Sign
    key_id = keys["k256"][0]
    kms.disable_key(KeyId=key_id)
    state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
    code = error_code(kms.sign, KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    check("Sign with a disabled key fails with DisabledException", code == "DisabledException",
          f"KeyState {state}, error {code}")
    note(f"Sign on a disabled key: {code}")
    code = error_code(kms.get_public_key, KeyId=key_id)
    note(f"GetPublicKey on a disabled key: {code} (AWS lists DisabledException for GetPublicKey)")
    kms.enable_key(KeyId=key_id)
    code = error_code(kms.sign, KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    check("Sign works again after EnableKey", code is None, f"error {code}")

    # --- ScheduleKeyDeletion, then Sign
    key_id = keys["p256"][0]
    r = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
    check("ScheduleKeyDeletion 7 days", state == "PendingDeletion",
          f"KeyState {state}, DeletionDate {r.get('DeletionDate')}, PendingWindowInDays {r.get('PendingWindowInDays')}")
    code = error_code(kms.sign, KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    check("Sign with a key pending deletion fails with KMSInvalidStateException",
          code == "KMSInvalidStateException", f"error {code}")
    note(f"Sign on a key pending deletion: {code}")
    code = error_code(kms.get_public_key, KeyId=key_id)
    note(f"GetPublicKey on a key pending deletion: {code}")
    kms.cancel_key_deletion(KeyId=key_id)
    state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
    note(f"KeyState after CancelKeyDeletion: {state} (AWS: Disabled)")
    code = error_code(kms.sign, KeyId="11111111-2222-3333-4444-555555555555", Message=digest, MessageType="DIGEST",
                      SigningAlgorithm="ECDSA_SHA_256")
    check("Sign with an unknown key fails with NotFoundException", code == "NotFoundException", f"error {code}")

    # --- clean up: the emulator keeps no state across restarts, but be tidy
    kms.delete_alias(AliasName=alias)
    for key_id in created:
        if kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] != "PendingDeletion":
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)

    print()
    for n in NOTES:
        print(f"  note: {n}")
    for f in FAILED:
        print(f"  failed: {f}")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # an unexpected error is a failure, with its trace
        import traceback

        traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
