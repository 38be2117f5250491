// P11Check — drives a PKCS#11 token through Java's SunPKCS11 provider, as a Java
// application would, and checks every result with the JDK's software providers
// (SunEC, SunRsaSign, SunJCE), never with the token itself.
//
// Used by scripts/interop/java.sh, compiled with javac at run time:
//
//   java -cp DIR P11Check CONFIG PIN CHECK...
//
// CONFIG is a SunPKCS11 configuration file, PIN the user PIN. The token must hold the
// keytool entries "ec1" (EC P-256) and "rsa1" (RSA 2048), each a private key with its
// self-signed certificate. CHECK is one or more of:
//
//   ecdsa       SHA256withECDSA signed on the token, verified by SunEC
//   rsa         SHA256withRSA signed on the token, verified by SunRsaSign
//   pss         RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signed on the token,
//               verified by SunRsaSign
//   oaep        RSA OAEP (SHA-256) decrypt on the token of SunJCE's ciphertext;
//               when SunPKCS11 offers no OAEP cipher, RSA/ECB/PKCS1Padding instead
//   rsagen      RSA 2048 key pair generated on the token (KeyPairGenerator), signs
//               SHA256withRSA and decrypts PKCS#1 v1.5; SunRsaSign/SunJCE check it
//   aes         AES-256 key generated on the token and stored as token key "aes1"
//               (KeyStore.setEntry with a SecretKeyEntry), reloaded from a fresh
//               KeyStore; AES/GCM/NoPadding encrypt and decrypt on the token
//   aesx        AES/GCM/NoPadding and AES/CBC/PKCS5Padding with a known key on the
//               token, cross-checked against SunJCE in both directions
//
// Prints "    check NAME: ok" or "    check NAME: FAILED: why" per check; exits 1 if
// any check failed, 2 on bad usage.

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;
import javax.crypto.spec.SecretKeySpec;

public final class P11Check {
    private static final byte[] DATA =
            "p11kms interop: the quick brown fox jumps over the lazy dog"
                    .getBytes(StandardCharsets.UTF_8);
    private static final SecureRandom RNG = new SecureRandom();

    private final Provider p11;
    private final char[] pin;
    private final KeyStore ks;

    private P11Check(String config, char[] pin) throws Exception {
        Provider base = Security.getProvider("SunPKCS11");
        if (base == null) {
            throw new IllegalStateException("this JDK has no SunPKCS11 provider");
        }
        this.p11 = base.configure(config);
        this.pin = pin;
        this.ks = KeyStore.getInstance("PKCS11", p11);
        ks.load(null, pin);
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: java P11Check CONFIG PIN CHECK...");
            System.exit(2);
        }
        int failed = 0;
        P11Check c;
        try {
            c = new P11Check(args[0], args[1].toCharArray());
        } catch (Exception e) {
            System.out.println("    check setup: FAILED: " + describe(e));
            e.printStackTrace(System.out);
            System.exit(1);
            return;
        }
        System.out.println("    provider " + c.p11.getName() + ", keystore entries "
                + c.aliases());
        for (int i = 2; i < args.length; i++) {
            String name = args[i];
            try {
                String note = c.run(name);
                System.out.println("    check " + name + ": ok" + (note.isEmpty() ? "" : " (" + note + ")"));
            } catch (Exception | AssertionError e) {
                failed++;
                System.out.println("    check " + name + ": FAILED: " + describe(e));
                e.printStackTrace(System.out);
            }
        }
        System.exit(failed == 0 ? 0 : 1);
    }

    private static String describe(Throwable e) {
        StringBuilder b = new StringBuilder(e.toString());
        for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
            b.append(" <- ").append(t);
        }
        return b.toString();
    }

    private String aliases() {
        try {
            return String.join(",", java.util.Collections.list(ks.aliases()));
        } catch (java.security.KeyStoreException e) {
            return "(unreadable: " + e + ")";
        }
    }

    private String run(String name) throws Exception {
        switch (name) {
            case "ecdsa": return ecdsa();
            case "rsa": return rsa();
            case "pss": return pss();
            case "oaep": return oaep();
            case "rsagen": return rsagen();
            case "aes": return aes();
            case "aesx": return aesx();
            default: throw new IllegalArgumentException("unknown check " + name);
        }
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    private PrivateKey privateKey(String alias) throws Exception {
        Key k = ks.getKey(alias, null);
        check(k instanceof PrivateKey, "keystore entry " + alias + " is not a private key: " + k);
        return (PrivateKey) k;
    }

    private PublicKey certKey(String alias) throws Exception {
        Certificate cert = ks.getCertificate(alias);
        check(cert != null, "keystore entry " + alias + " has no certificate");
        // Re-parse through the default X.509 factory so no token object is involved.
        java.security.cert.CertificateFactory cf =
                java.security.cert.CertificateFactory.getInstance("X.509", "SUN");
        Certificate soft = cf.generateCertificate(
                new java.io.ByteArrayInputStream(cert.getEncoded()));
        return soft.getPublicKey();
    }

    // Sign on the token with `alg`, verify with `verifier` on the public key.
    private void signVerify(String alg, PrivateKey priv, PublicKey pub, String verifier,
            java.security.spec.AlgorithmParameterSpec params) throws Exception {
        Signature s = Signature.getInstance(alg, p11);
        if (params != null) {
            s.setParameter(params);
        }
        s.initSign(priv);
        s.update(DATA);
        byte[] sig = s.sign();
        check(s.getProvider() == p11, alg + " did not run on the token");

        Signature v = Signature.getInstance(alg, verifier);
        if (params != null) {
            v.setParameter(params);
        }
        v.initVerify(pub);
        v.update(DATA);
        check(v.verify(sig), alg + ": " + verifier + " rejects the token's signature");

        byte[] other = DATA.clone();
        other[0] ^= 1;
        v.initVerify(pub);
        v.update(other);
        check(!v.verify(sig), alg + ": " + verifier + " accepts the signature for other data");
    }

    private String ecdsa() throws Exception {
        signVerify("SHA256withECDSA", privateKey("ec1"), certKey("ec1"), "SunEC", null);
        return "verified by SunEC";
    }

    private String rsa() throws Exception {
        signVerify("SHA256withRSA", privateKey("rsa1"), certKey("rsa1"), "SunRsaSign", null);
        return "verified by SunRsaSign";
    }

    private String pss() throws Exception {
        PSSParameterSpec spec = new PSSParameterSpec("SHA-256", "MGF1",
                MGF1ParameterSpec.SHA256, 32, PSSParameterSpec.TRAILER_FIELD_BC);
        String alg = "RSASSA-PSS";
        try {
            Signature.getInstance(alg, p11);
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("SunPKCS11 offers no RSASSA-PSS for this token", e);
        }
        signVerify(alg, privateKey("rsa1"), certKey("rsa1"), "SunRsaSign", spec);
        return "SHA-256/MGF1-SHA-256/salt 32, verified by SunRsaSign";
    }

    private String oaep() throws Exception {
        PrivateKey priv = privateKey("rsa1");
        PublicKey pub = certKey("rsa1");
        String[] oaeps = {"RSA/ECB/OAEPWithSHA-256AndMGF1Padding", "RSA/ECB/OAEPPadding"};
        for (String t : oaeps) {
            Cipher dec;
            try {
                dec = Cipher.getInstance(t, p11);
            } catch (NoSuchAlgorithmException | javax.crypto.NoSuchPaddingException e) {
                continue;
            }
            OAEPParameterSpec spec = new OAEPParameterSpec("SHA-256", "MGF1",
                    MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT);
            Cipher enc = Cipher.getInstance("RSA/ECB/OAEPPadding", "SunJCE");
            enc.init(Cipher.ENCRYPT_MODE, pub, spec);
            byte[] ct = enc.doFinal(DATA);
            dec.init(Cipher.DECRYPT_MODE, priv, spec);
            byte[] pt = dec.doFinal(ct);
            check(Arrays.equals(pt, DATA), t + ": the token's plaintext differs");
            return t + " on the token, SunJCE encrypted";
        }
        // JDK 17's SunPKCS11 has no OAEP cipher: check PKCS#1 v1.5 decryption instead.
        rsaDecrypt(priv, pub);
        return "SunPKCS11 offers no OAEP cipher; RSA/ECB/PKCS1Padding decrypt instead";
    }

    private void rsaDecrypt(PrivateKey priv, PublicKey pub) throws Exception {
        String t = "RSA/ECB/PKCS1Padding";
        Cipher enc = Cipher.getInstance(t, "SunJCE");
        enc.init(Cipher.ENCRYPT_MODE, pub);
        byte[] ct = enc.doFinal(DATA);
        Cipher dec = Cipher.getInstance(t, p11);
        dec.init(Cipher.DECRYPT_MODE, priv);
        byte[] pt = dec.doFinal(ct);
        check(Arrays.equals(pt, DATA), t + ": the token's plaintext differs");
    }

    private String rsagen() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("RSA", p11);
        g.initialize(2048);
        KeyPair kp = g.generateKeyPair();
        check(kp.getPrivate().getClass().getName().startsWith("sun.security.pkcs11."),
                "the key pair is not a token key: " + kp.getPrivate().getClass());
        // The software providers get the public key only as its encoding.
        PublicKey pub = KeyFactory.getInstance("RSA", "SunRsaSign")
                .generatePublic(new X509EncodedKeySpec(kp.getPublic().getEncoded()));
        BigInteger n = ((java.security.interfaces.RSAPublicKey) pub).getModulus();
        check(n.bitLength() == 2048, "modulus has " + n.bitLength() + " bits, not 2048");
        signVerify("SHA256withRSA", kp.getPrivate(), pub, "SunRsaSign", null);
        rsaDecrypt(kp.getPrivate(), pub);
        return "SHA256withRSA and PKCS1Padding decrypt, checked by SunRsaSign/SunJCE";
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        RNG.nextBytes(b);
        return b;
    }

    private byte[] gcm(int mode, Key key, byte[] iv, byte[] aad, byte[] in, Provider p)
            throws Exception {
        Cipher c = Cipher.getInstance("AES/GCM/NoPadding", p);
        c.init(mode, key, new GCMParameterSpec(128, iv));
        c.updateAAD(aad);
        return c.doFinal(in);
    }

    private String aes() throws Exception {
        String alias = "aes1";
        KeyGenerator g = KeyGenerator.getInstance("AES", p11);
        g.init(256);
        SecretKey session = g.generateKey();
        ks.setEntry(alias, new KeyStore.SecretKeyEntry(session), null);

        // A fresh KeyStore sees only what is on the token.
        KeyStore fresh = KeyStore.getInstance("PKCS11", p11);
        fresh.load(null, pin);
        check(fresh.entryInstanceOf(alias, KeyStore.SecretKeyEntry.class),
                "entry " + alias + " is not a SecretKeyEntry after reloading the keystore");
        Key key = fresh.getKey(alias, null);
        check(key instanceof SecretKey && "AES".equals(key.getAlgorithm()),
                "entry " + alias + " is not an AES key: " + key);

        byte[] iv = randomBytes(12);
        byte[] aad = "header".getBytes(StandardCharsets.UTF_8);
        byte[] ct = gcm(Cipher.ENCRYPT_MODE, key, iv, aad, DATA, p11);
        check(ct.length == DATA.length + 16, "ciphertext+tag has " + ct.length + " bytes");
        check(!Arrays.equals(Arrays.copyOf(ct, DATA.length), DATA), "ciphertext equals the plaintext");
        byte[] pt = gcm(Cipher.DECRYPT_MODE, key, iv, aad, ct, p11);
        check(Arrays.equals(pt, DATA), "AES-GCM round trip on the token differs");

        byte[] bad = ct.clone();
        bad[bad.length - 1] ^= 1;
        try {
            gcm(Cipher.DECRYPT_MODE, key, iv, aad, bad, p11);
            throw new AssertionError("AES-GCM decrypt on the token accepted a bad tag");
        } catch (javax.crypto.AEADBadTagException e) {
            // expected
        }
        return "token key " + alias + " stored and reloaded; GCM round trip and bad tag";
    }

    private String aesx() throws Exception {
        Provider sunjce = Security.getProvider("SunJCE");
        SecretKeySpec key = new SecretKeySpec(randomBytes(32), "AES");
        byte[] aad = "header".getBytes(StandardCharsets.UTF_8);

        byte[] iv = randomBytes(12);
        byte[] ct = gcm(Cipher.ENCRYPT_MODE, key, iv, aad, DATA, p11);
        byte[] ref = gcm(Cipher.ENCRYPT_MODE, key, iv, aad, DATA, sunjce);
        check(Arrays.equals(ct, ref), "AES-GCM: the token's ciphertext differs from SunJCE's");
        iv = randomBytes(12);
        ct = gcm(Cipher.ENCRYPT_MODE, key, iv, aad, DATA, sunjce);
        check(Arrays.equals(gcm(Cipher.DECRYPT_MODE, key, iv, aad, ct, p11), DATA),
                "AES-GCM: the token does not decrypt SunJCE's ciphertext");

        byte[] cbcIv = randomBytes(16);
        Cipher t = Cipher.getInstance("AES/CBC/PKCS5Padding", p11);
        t.init(Cipher.ENCRYPT_MODE, key, new IvParameterSpec(cbcIv));
        byte[] cbc = t.doFinal(DATA);
        Cipher s = Cipher.getInstance("AES/CBC/PKCS5Padding", sunjce);
        s.init(Cipher.DECRYPT_MODE, key, new IvParameterSpec(cbcIv));
        check(Arrays.equals(s.doFinal(cbc), DATA), "AES-CBC-PAD: SunJCE does not decrypt the token's ciphertext");
        s.init(Cipher.ENCRYPT_MODE, key, new IvParameterSpec(cbcIv));
        cbc = s.doFinal(DATA);
        t.init(Cipher.DECRYPT_MODE, key, new IvParameterSpec(cbcIv));
        check(Arrays.equals(t.doFinal(cbc), DATA), "AES-CBC-PAD: the token does not decrypt SunJCE's ciphertext");
        return "GCM and CBC/PKCS5Padding both ways against SunJCE";
    }
}
