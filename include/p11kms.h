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
 * No vendor-defined attribute exists yet: the module implements standard
 * PKCS#11 2.40 / 3.0 only, and answers any attribute in this block with
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

#ifdef __cplusplus
}
#endif

#endif /* P11KMS_H */
