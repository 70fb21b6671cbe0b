//! The token decision: verification (ES256 on aws-lc-rs through `jsonwebtoken`), the
//! service's standing and the policy, warm (key set in memory) and cold (the key set
//! loaded from an inline JWKS first, as on a new Lambda instance), and the whole
//! handler from a token event's JSON text to its serialised response. The warm and
//! cold cases run without the cache of verified tokens; `token decision, cached` and
//! the handler (the same token each time) answer from it.

use test_support::token_signer as signer;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authorizer::config::{JwksConfig, TokenConfig};
use authorizer::token::{JwksSource, StandingSource, StandingUnavailable};
use authorizer::{Accept, Authorizer, TokenAuth};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use service_auth::cache::RefreshPolicy;
use service_auth::{ApiGrant, MethodArn, ServiceDocument, Standing, UnixTime};
use service_token::KeySet;
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
        authorizer::KeySource::File(path),
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
    rt.block_on(authz.handle_json(&text)).unwrap();
    c.bench_function(
        "token handler: event JSON to serialised response (dev store)",
        |b| {
            b.iter(|| {
                let resp = rt.block_on(authz.handle_json(black_box(&text))).unwrap();
                serde_json::to_vec(&resp).unwrap()
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
