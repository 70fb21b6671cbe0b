//! KMS's ECDSA signature (DER, X9.62 `SEQUENCE { INTEGER r, INTEGER s }`) to the JOSE
//! form JWS ES256 wants: `r || s`, each a 32-byte big-endian number (RFC 7518 3.4).
//!
//! This is a format change, not signature code: the signature is checked by aws-lc-rs
//! through `jsonwebtoken` when the token is verified. It is written here (about 40
//! lines, strict DER, bounded reads, no panics) rather than taken from the `p256`
//! crate because `p256` brings a second, pure-Rust elliptic-curve implementation and
//! about a dozen crates into a build that already links aws-lc-rs, for one split.

/// Bytes of one P-256 scalar.
const SCALAR_LEN: usize = 32;

/// Why bytes are not a DER ECDSA P-256 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFormatError {
    #[error("the signature is not a DER SEQUENCE of two INTEGERs")]
    NotDer,
    #[error("the signature's integers are not minimally encoded, positive P-256 scalars")]
    BadInteger,
    #[error("the signature has bytes after its DER SEQUENCE")]
    TrailingBytes,
}

/// `SEQUENCE { INTEGER r, INTEGER s }` (strict DER, as KMS returns) to 64 bytes `r||s`.
pub fn der_to_jose(der: &[u8]) -> Result<[u8; 64], SignatureFormatError> {
    let body = match der {
        // A P-256 signature body is at most 2 * (2 + 33) = 70 bytes: short-form length.
        [0x30, len, rest @ ..] if *len < 0x80 => {
            let len = usize::from(*len);
            if rest.len() < len {
                return Err(SignatureFormatError::NotDer);
            }
            if rest.len() > len {
                return Err(SignatureFormatError::TrailingBytes);
            }
            rest
        }
        _ => return Err(SignatureFormatError::NotDer),
    };
    let (r, rest) = der_integer(body)?;
    let (s, rest) = der_integer(rest)?;
    if !rest.is_empty() {
        return Err(SignatureFormatError::TrailingBytes);
    }
    let mut out = [0u8; 2 * SCALAR_LEN];
    out[SCALAR_LEN - r.len()..SCALAR_LEN].copy_from_slice(r);
    out[2 * SCALAR_LEN - s.len()..].copy_from_slice(s);
    Ok(out)
}

/// One DER INTEGER that is a positive scalar of at most 32 bytes: its magnitude bytes
/// (no leading zero) and the input after it.
fn der_integer(input: &[u8]) -> Result<(&[u8], &[u8]), SignatureFormatError> {
    let [0x02, len, rest @ ..] = input else {
        return Err(SignatureFormatError::NotDer);
    };
    let len = usize::from(*len);
    if len == 0 || len > SCALAR_LEN + 1 || rest.len() < len {
        return Err(SignatureFormatError::NotDer);
    }
    let (value, rest) = rest.split_at(len);
    let magnitude = match value {
        // Negative numbers are not scalars.
        [first, ..] if first & 0x80 != 0 => return Err(SignatureFormatError::BadInteger),
        // A leading zero is allowed only to keep the next byte's high bit from
        // reading as a sign bit (minimal encoding).
        [0, next, ..] if next & 0x80 == 0 => return Err(SignatureFormatError::BadInteger),
        [0, tail @ ..] if !tail.is_empty() => tail,
        v => v,
    };
    if magnitude.len() > SCALAR_LEN || magnitude.iter().all(|b| *b == 0) {
        return Err(SignatureFormatError::BadInteger);
    }
    Ok((magnitude, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1_SIGNING,
        ECDSA_P256_SHA256_FIXED,
    };
    use proptest::prelude::*;

    fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut body = vec![0x02, r.len() as u8];
        body.extend_from_slice(r);
        body.extend_from_slice(&[0x02, s.len() as u8]);
        body.extend_from_slice(s);
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn a_real_der_signature_converts_to_one_that_verifies_as_jose() {
        // aws-lc-rs signs DER exactly as KMS does; the converted signature must verify
        // with the fixed-width (JOSE) algorithm, over many signatures so that short
        // and 33-byte (leading zero) integers both occur.
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        for i in 0..200u32 {
            let msg = i.to_be_bytes();
            let sig = pair.sign(&rng, &msg).unwrap();
            let jose = der_to_jose(sig.as_ref()).unwrap();
            public.verify(&msg, &jose).unwrap();
            assert!(public.verify(b"other", &jose).is_err());
        }
    }

    #[test]
    fn encodings_of_r_and_s() {
        let one = der(&[1], &[2]);
        let j = der_to_jose(&one).unwrap();
        assert_eq!(j[31], 1);
        assert_eq!(j[63], 2);
        assert!(j[..31].iter().all(|b| *b == 0));
        let mut high = vec![0];
        high.extend([0xff; 32]);
        let j = der_to_jose(&der(&high, &high)).unwrap();
        assert_eq!(j, [0xff; 64]);
    }

    #[test]
    fn malformed_der_is_refused() {
        use SignatureFormatError::*;
        let mut high = vec![0];
        high.extend([0xff; 32]);
        let cases: Vec<(&str, Vec<u8>, SignatureFormatError)> = vec![
            ("empty", vec![], NotDer),
            ("jose instead of der", vec![0x11; 64], NotDer),
            ("r = s = 0", der(&[0], &[0]), BadInteger),
            ("r = 0 padded", der(&[0, 0], &[1]), BadInteger),
            ("negative r", der(&[0x80], &[1]), BadInteger),
            ("non-minimal leading zero", der(&[0, 1], &[1]), BadInteger),
            (
                "r of 33 bytes without zero",
                der(&[1; 33], &[1]),
                BadInteger,
            ),
            ("r of 34 bytes", der(&[1; 34], &[1]), NotDer),
            ("empty integer", der(&[], &[1]), NotDer),
            ("one integer", vec![0x30, 0x03, 0x02, 0x01, 0x01], NotDer),
            (
                "long-form length",
                vec![0x30, 0x81, 0x06, 2, 1, 1, 2, 1, 1],
                NotDer,
            ),
            (
                "length past end",
                vec![0x30, 0x09, 2, 1, 1, 2, 1, 1],
                NotDer,
            ),
            ("wrong tag", vec![0x31, 0x06, 2, 1, 1, 2, 1, 1], NotDer),
            (
                "integer tag wrong",
                vec![0x30, 0x06, 3, 1, 1, 2, 1, 1],
                NotDer,
            ),
            (
                "trailing after sequence",
                [der(&[1], &[1]), vec![0]].concat(),
                TrailingBytes,
            ),
            (
                "third integer",
                vec![0x30, 0x09, 2, 1, 1, 2, 1, 1, 2, 1, 1],
                TrailingBytes,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(der_to_jose(&bytes), Err(want), "{name}");
        }
        assert!(der_to_jose(&der(&high, &[1])).is_ok());
    }

    proptest! {
        /// Any positive r, s of up to 32 bytes round-trips: minimal DER in, the same
        /// numbers out, right-aligned.
        #[test]
        fn round_trip(r in prop::collection::vec(any::<u8>(), 1..=32),
                      s in prop::collection::vec(any::<u8>(), 1..=32)) {
            fn minimal(v: &[u8]) -> Vec<u8> {
                let trimmed: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
                let mut out = trimmed.clone();
                if trimmed.first().is_some_and(|b| b & 0x80 != 0) { out.insert(0, 0); }
                out
            }
            prop_assume!(r.iter().any(|b| *b != 0) && s.iter().any(|b| *b != 0));
            let jose = der_to_jose(&der(&minimal(&r), &minimal(&s))).unwrap();
            let mut want = [0u8; 64];
            want[32 - r.len()..32].copy_from_slice(&r);
            want[64 - s.len()..].copy_from_slice(&s);
            prop_assert_eq!(jose, want);
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = der_to_jose(&bytes);
        }
    }
}
