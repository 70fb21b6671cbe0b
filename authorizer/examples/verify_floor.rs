//! The floor of a token seen for the first time: one raw aws-lc-rs ES256 verification
//! (`UnparsedPublicKey::verify`, a 64-byte signature over a message of the given
//! length), built with the same profile as the authorizer it is compared with.
//!
//! `authorizer/benches/startup.py --token-fresh` runs it in the same run as the
//! authorizer: a token the instance has not seen costs this verification more than
//! one it has (the cache of verified tokens), plus what the path adds around it.
//!
//! usage: verify_floor MESSAGE_LEN COUNT
//! Prints `{"median_us": .., "p90_us": .., "count": ..}`.

use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let len: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(700);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a P-256 key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .expect("the key just made");
    // Base64url text, as a token's signing input is.
    let message: Vec<u8> = (0..len).map(|i| b"abcdefghijklmnop"[i % 16]).collect();
    let signature = pair.sign(&rng, &message).expect("a signature");
    let public = pair.public_key().as_ref().to_vec();
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let ok = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(&public))
            .verify(black_box(&message), black_box(signature.as_ref()))
            .is_ok();
        times.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(ok, "the signature verifies");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"median_us\": {:.1}, \"p90_us\": {:.1}, \"count\": {count}}}",
        times[count / 2],
        times[count * 9 / 10]
    );
}
