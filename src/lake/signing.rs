//! Signing the digest chain (Ed25519, with aws-lc-rs: already linked for TLS). The private key
//! comes from a file (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it) and never
//! appears in a log, an error or a file of the lake; verifying needs only the public key (SPKI
//! PEM, as `openssl pkey -pubout` writes it). A key is known by its fingerprint: the SHA-256 of
//! its 32 raw public-key bytes, in hex.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::Engine as _;

/// A private key that signs links. Its `Debug` shows the fingerprint only.
pub struct Signer {
    pair: Ed25519KeyPair,
    fingerprint: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.fingerprint)
    }
}

impl Signer {
    /// The key of a PKCS#8 PEM file's text. The error says what is wrong, never the key.
    pub fn from_pem(text: &str) -> Result<Signer, String> {
        let der = pem_body(text, "PRIVATE KEY")?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| format!("not an Ed25519 private key in PKCS#8 ({e})"))?;
        let fingerprint = fingerprint(pair.public_key().as_ref());
        Ok(Signer { pair, fingerprint })
    }

    /// The fingerprint of the key's public half.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The key's public half, to check what it signed.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            raw: self.pair.public_key().as_ref().to_vec(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// `message`'s signature, in base64.
    pub fn sign(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

/// A public key that checks links.
#[derive(Clone, Debug)]
pub struct Verifier {
    raw: Vec<u8>,
    fingerprint: String,
}

impl Verifier {
    /// The key of an SPKI PEM file's text (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(text: &str) -> Result<Verifier, String> {
        let der = pem_body(text, "PUBLIC KEY")?;
        // An Ed25519 SubjectPublicKeyInfo is a 12-byte header and the 32 key bytes.
        if der.len() != 44
            || !der.starts_with(&[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70])
        {
            return Err("not an Ed25519 public key (SubjectPublicKeyInfo)".into());
        }
        let raw = der[12..].to_vec();
        let fingerprint = fingerprint(&raw);
        Ok(Verifier { raw, fingerprint })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, &signature)
            .is_ok()
    }
}

/// A key's fingerprint: the SHA-256 of its raw public-key bytes.
pub fn fingerprint(raw_public_key: &[u8]) -> String {
    // The SHA-256 of the key, as the chain hashes its files (`chain::sha256_hex`, which
    // signs with this module: so the digest is spelled here, not imported).
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw_public_key);
    format!("ed25519:{}", crate::table::encode::hex(digest.as_ref()))
}

/// The DER bytes of a PEM block labelled `label`.
fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no {begin} block"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| format!("no {end} line"))?
        + start;
    let body: String = text[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "the PEM block is not base64".to_string())
}

/// A new private key as PKCS#8 PEM (for tests and `auditlake`-less key making alike).
pub fn generate_pem() -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's randomness works");
    pem("PRIVATE KEY", pkcs8.as_ref())
}

/// The SPKI PEM of a signer's public key.
pub fn public_pem(signer: &Signer) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(signer.pair.public_key().as_ref());
    pem("PUBLIC KEY", &der)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_public_key_only() {
        let private = generate_pem();
        let signer = Signer::from_pem(&private).unwrap();
        let signature = signer.sign(b"link");
        let body = private.lines().nth(1).unwrap();
        assert!(!format!("{signer:?}").contains(body), "the key never shows");
        let verifier = Verifier::from_pem(&public_pem(&signer)).unwrap();
        assert_eq!(verifier.fingerprint(), signer.fingerprint());
        assert!(verifier.verifies(b"link", &signature));
        assert!(!verifier.verifies(b"link!", &signature));
        let other = Signer::from_pem(&generate_pem()).unwrap();
        assert!(!verifier.verifies(b"link", &other.sign(b"link")));
        assert!(Signer::from_pem("nonsense").is_err());
    }
}
