/*
 * p11kms.h - vendor-defined PKCS#11 constants of the p11kms module.
 *
 * Needs CKA_VENDOR_DEFINED from the PKCS#11 headers (pkcs11.h / pkcs11t.h)
 * wherever the macros below are used.
 *
 * p11kms reserves one block of 65536 vendor-defined values tagged 0x504B ("PK")
 * under the vendor bit, apart from other modules' vendor attributes (OpenSC's,
 * which pkcs11-tool probes, are 0xCF5343xx, "OSC"). Values inside the block
 * are assigned here, and only here, as features need them.
 *
 * Values of the block not assigned below are answered with
 * CKR_ATTRIBUTE_TYPE_INVALID.
 */
#ifndef P11KMS_H
#define P11KMS_H

#ifdef __cplusplus
extern "C" {
#endif

/* First value of the p11kms block: CKA_VENDOR_DEFINED | 0x504B0000. */
#define CKA_P11KMS_VENDOR_BASE (CKA_VENDOR_DEFINED | 0x504B0000UL)

/* Block size: values CKA_P11KMS_VENDOR_BASE .. CKA_P11KMS_VENDOR_BASE + 0xFFFF. */
#define CKA_P11KMS_VENDOR_SPAN 0x10000UL

/*
 * CKA_P11KMS_KEY_ARN (byte array, read-only, set by the token): the ARN of the
 * AWS KMS key behind a private or public key object of an "aws" token, e.g.
 * "arn:aws:kms:us-east-1:111122223333:key/1234abcd-...". Absent
 * (CKR_ATTRIBUTE_TYPE_INVALID) on other keys. Usable in a C_FindObjects template.
 */
#define CKA_P11KMS_KEY_ARN (CKA_VENDOR_DEFINED | 0x504B0001UL)

/*
 * Cloud KMS ("gcp" tokens), all byte arrays (ASCII), read-only, set by the token on
 * both objects of a key version, absent (CKR_ATTRIBUTE_TYPE_INVALID) elsewhere,
 * usable in a C_FindObjects template:
 *
 * CKA_P11KMS_KEY_VERSION: the CryptoKeyVersion's resource name,
 *   "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N".
 * CKA_P11KMS_KEY_ALGORITHM: its algorithm, e.g. "EC_SIGN_P256_SHA256".
 * CKA_P11KMS_PROTECTION_LEVEL: its protection level, "HSM" or "SOFTWARE".
 */
#define CKA_P11KMS_KEY_VERSION (CKA_VENDOR_DEFINED | 0x504B0002UL)
#define CKA_P11KMS_KEY_ALGORITHM (CKA_VENDOR_DEFINED | 0x504B0003UL)
#define CKA_P11KMS_PROTECTION_LEVEL (CKA_VENDOR_DEFINED | 0x504B0004UL)

#ifdef __cplusplus
}
#endif

#endif /* P11KMS_H */
