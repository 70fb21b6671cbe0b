//! The token decision: verification (ES256 on aws-lc-rs through `jsonwebtoken`), the
//! service's standing and the policy, warm (key set in memory) and cold (the key set
//! loaded from an inline JWKS first, as on a new Lambda instance), and the whole
//! handler from a token event's JSON text to its serialised response, next to the
//! work's floor: one raw aws-lc-rs ES256 verification of the same token's signature
//! (`authorizer/benches/ratios.py --floor 'floor: ES256'` prints each bench as a
//! multiple of it, from the same run). The warm and cold cases and `token handler,
//! uncached` run without the cache of verified tokens; `token decision, cached` and
//! `token handler` (the same token each time) answer from it. The cache itself is
//! timed full: an insert that evicts, and a lookup.

use test_support::token_signer as signer;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use authorizer::config::{JwksConfig, TokenConfig};
use authorizer::token::{
    JwksSource, StandingSource, StandingUnavailable, VerifiedTokens,
    DEFAULT_VERIFIED_CACHE_CAPACITY,
};
use authorizer::{Accept, Authorizer, TokenAuth};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use service_auth::cache::RefreshPolicy;
use service_auth::{ApiGrant, MethodArn, ServiceDocument, Standing, UnixTime};
use service_token::{KeySet, Proof, TokenClaims, VerifiedToken};
use signer::{good_claims, TestKey, ISSUER, NOW};

const METHOD_ARN: &str =
    "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/42";

/// The token's service in good standing, still granted the token's routes: the token
/// decision alone, without a store (a standing read from a store is shared, as here).
struct Active(Arc<Standing>);

impl Active {
    fn new() -> Self {
        let doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /internal/users/*"])],
        );
        Self(Arc::new(Standing {
            document: Some(doc),
            proof_key_revoked: false,
        }))
    }
}

impl StandingSource for Active {
    async fn standing(
        &self,
        _: &str,
        _: Option<&str>,
        _: UnixTime,
    ) -> Result<Arc<Standing>, StandingUnavailable> {
        Ok(self.0.clone())
    }
}

fn config(jwks: &str) -> TokenConfig {
    TokenConfig {
        issuer: ISSUER.into(),
        jwks: JwksConfig::Inline(jwks.into()),
        min_remaining_secs: 60,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = TestKey::new("key-2026-12");
    let jwks = serde_json::to_string(&key.jwks()).unwrap();
    let mut claims = good_claims();
    claims["proof"] = json!({"method": "iam", "roleArn": "arn:aws:iam::123456789012:role/t"});
    let token = key.token(&claims);
    let arn = MethodArn::parse(METHOD_ARN).unwrap();
    let now = UnixTime(NOW);
    let active = Active::new();

    // The floor: the signature check alone, with the raw aws-lc-rs API, over the
    // token's own signing input (`header.claims`) and signature (64 bytes, r||s).
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(signature.len(), 64);
    let spki = key.spki_der();
    // An uncompressed P-256 point ends the SubjectPublicKeyInfo.
    let point = &spki[spki.len() - 65..];
    let check = || {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(point))
            .verify(black_box(signing_input.as_bytes()), black_box(&signature))
    };
    assert!(check().is_ok());
    c.bench_function(
        "floor: ES256 verify (aws-lc-rs, 64-byte signature, the token's signing input)",
        |b| b.iter(check),
    );

    // The parts of a first presentation, for where the time above the floor goes: the
    // verifier alone (header, signature, claims) and the cache key (SHA-256).
    let verifier = service_token::Verifier::new({
        let mut vc = service_token::VerifierConfig::new(ISSUER);
        vc.min_remaining_secs = 60;
        vc
    });
    let keys = key.key_set();
    c.bench_function(
        "token: Verifier::verify alone (header, ES256, claims)",
        |b| {
            b.iter(|| {
                verifier
                    .verify(black_box(&token), &keys, "identity", now)
                    .unwrap()
            })
        },
    );
    c.bench_function(
        "token: SHA-256 of the token (the verified-token cache key)",
        |b| b.iter(|| VerifiedTokens::digest(black_box(&token))),
    );

    // Without the cache of verified tokens: every decision verifies the signature.
    let warm =
        TokenAuth::new(&config(&jwks), JwksSource::Inline(key.key_set())).with_verified_cache(0);
    rt.block_on(warm.prefetch(now));
    c.bench_function("token decision (verify + standing + policy), warm", |b| {
        b.iter(|| {
            rt.block_on(warm.decide(black_box(&token), Some("identity"), &arn, &active, now))
                .unwrap()
        })
    });

    // The same token again: its signature verified once, the rest checked each time.
    let cached = TokenAuth::new(&config(&jwks), JwksSource::Inline(key.key_set()));
    rt.block_on(cached.prefetch(now));
    rt.block_on(cached.decide(&token, Some("identity"), &arn, &active, now))
        .unwrap();
    c.bench_function("token decision, cached", |b| {
        b.iter(|| {
            rt.block_on(cached.decide(black_box(&token), Some("identity"), &arn, &active, now))
                .unwrap()
        })
    });
    assert_eq!(cached.verifications(), 1, "the cached case verified once");

    c.bench_function(
        "token decision, cold (parse the inline JWKS, load the key set, then decide)",
        |b| {
            b.iter_batched(
                || jwks.clone(),
                |jwks| {
                    let keys = KeySet::from_json(jwks.as_bytes()).unwrap();
                    let auth = TokenAuth::new(&config(&jwks), JwksSource::Inline(keys));
                    rt.block_on(auth.decide(
                        black_box(&token),
                        Some("identity"),
                        &arn,
                        &active,
                        now,
                    ))
                    .unwrap()
                },
                BatchSize::SmallInput,
            )
        },
    );

    // The whole handler over the development store (tutor-service's standing is read
    // from it), from the event's JSON text to the serialised response.
    let path =
        std::env::temp_dir().join(format!("svcauth-bench-token-{}.json", std::process::id()));
    std::fs::write(&path, service_auth::dev::DEV_STORE_JSON).unwrap();
    let store = authorizer::CachedStore::new(
        authorizer::KeySource::File(path.clone()),
        RefreshPolicy::default(),
        Duration::from_secs(5),
        Arc::new(move || now),
    )
    .with_api_names(authorizer::ApiNames::fixed(
        authorizer::apis::parse_api_names(service_auth::dev::DEV_API_NAMES).unwrap(),
    ));
    let tokens = TokenAuth::new(&config(&jwks), JwksSource::Inline(key.key_set()));
    let authz = Authorizer::new(store, Accept::Token, Some(tokens));
    rt.block_on(authz.init());
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../events/authorizer-token-bearer.json")).unwrap();
    event["headers"]["Authorization"] = json!(format!("Bearer {token}"));
    event["multiValueHeaders"]["Authorization"] = json!([format!("Bearer {token}")]);
    let text = serde_json::to_vec(&event).unwrap();
    // Warm the store (a token-only authorizer loads it on the first token).
    rt.block_on(authz.handle(text.as_slice())).unwrap();
    c.bench_function(
        "token handler: event JSON to serialised response (dev store)",
        |b| {
            b.iter(|| {
                let resp = rt
                    .block_on(authz.handle(black_box(text.as_slice())))
                    .unwrap();
                serde_json::to_vec(&resp).unwrap()
            })
        },
    );
    // The same without the cache of verified tokens: a token the instance has not seen.
    let tokens =
        TokenAuth::new(&config(&jwks), JwksSource::Inline(key.key_set())).with_verified_cache(0);
    let uncached = Authorizer::new(
        authorizer::CachedStore::new(
            authorizer::KeySource::File(path.clone()),
            RefreshPolicy::default(),
            Duration::from_secs(5),
            Arc::new(move || now),
        )
        .with_api_names(authorizer::ApiNames::fixed(
            authorizer::apis::parse_api_names(service_auth::dev::DEV_API_NAMES).unwrap(),
        )),
        Accept::Token,
        Some(tokens),
    );
    rt.block_on(uncached.init());
    rt.block_on(uncached.handle(text.as_slice())).unwrap();
    c.bench_function(
        "token handler, uncached: event JSON to serialised response (dev store)",
        |b| {
            b.iter(|| {
                let resp = rt
                    .block_on(uncached.handle(black_box(text.as_slice())))
                    .unwrap();
                serde_json::to_vec(&resp).unwrap()
            })
        },
    );

    cache_full(c, now);
}

/// The cache of verified tokens when full: an insert (of a token not held, so it
/// evicts one) and a lookup, at the default capacity.
fn cache_full(c: &mut Criterion, now: UnixTime) {
    let verified = |n: usize| {
        Arc::new(VerifiedToken {
            kid: "key-2026-12".into(),
            claims: TokenClaims {
                iss: ISSUER.into(),
                sub: "tutor-service".into(),
                aud: vec!["identity".into()],
                exp: now.0 + 600,
                nbf: now.0,
                iat: now.0,
                jti: format!("jti-{n}"),
                permissions: Vec::new(),
                proof: Proof::Iam {
                    role_arn: "arn:aws:iam::123456789012:role/t".into(),
                },
            },
        })
    };
    let capacity = DEFAULT_VERIFIED_CACHE_CAPACITY;
    // Four times the capacity of distinct tokens, inserted in turn: every insert
    // after the first `capacity` evicts one.
    let entries: Vec<([u8; 32], Arc<VerifiedToken>)> = (0..capacity * 4)
        .map(|n| (VerifiedTokens::digest(&format!("token-{n}")), verified(n)))
        .collect();
    let cache = VerifiedTokens::new(capacity, 30);
    for (d, v) in &entries[..capacity] {
        cache.insert(*d, v.clone(), now);
    }
    assert_eq!(cache.len(), capacity);
    let mut next = capacity;
    c.bench_function(
        "verified-token cache, full (1,024): insert a new token",
        |b| {
            b.iter(|| {
                let (d, v) = &entries[next % entries.len()];
                next += 1;
                cache.insert(*d, v.clone(), now);
            })
        },
    );
    assert_eq!(cache.len(), capacity);
    let held = entries[(next - 1) % entries.len()].0;
    c.bench_function("verified-token cache, full (1,024): look a token up", |b| {
        b.iter(|| cache.get(black_box(&held)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
