//! Every bad input of issue 10 gets a deliberate, typed refusal (table-driven), and no
//! refusal carries any part of the token.

use serde_json::{json, Value};
use service_auth::UnixTime;
use service_auth::{ServiceDocument, Standing};
use service_token::{check_standing, Rejection};
use test_support::token_signer::*;

/// Name, token, the service's standing, the expected outcome.
type Row = (&'static str, String, Standing, Result<(), Rejection>);

/// tutor-service with the good token's proof key active, and the brake given.
fn standing(proof_key_revoked: bool, brake: Option<u64>) -> Standing {
    let json = json!({
        "schema": 2, "service": "tutor-service",
        "grants": [{"apis": [AUDIENCE], "routes": ["GET /internal/users/*"]}],
        "keys": [{"keyId": "kid_0123456789abcdef", "sha256": "0".repeat(64),
                  "created": "2025-01-01T00:00:00Z", "expires": null, "status": "active"}],
        "tokensNotBefore": brake.map(|b| UnixTime(b).to_rfc3339()),
    });
    Standing {
        document: Some(ServiceDocument::from_json(&json.to_string()).unwrap()),
        proof_key_revoked,
    }
}

#[test]
fn every_bad_input_is_refused_with_its_reason() {
    let key = TestKey::new("key-2026-12");
    let other = TestKey::new("key-2026-12");
    let keys = key.key_set();
    let v = verifier();
    let good = key.token(&good_claims());
    let active = standing(false, None);
    let good_claims_text = good_claims().to_string();
    let dup_sub = good_claims_text.replacen(
        "\"sub\":\"tutor-service\"",
        "\"sub\":\"tutor-service\",\"sub\":\"admin-service\"",
        1,
    );
    assert_ne!(dup_sub, good_claims_text);
    let dup_perms = good_claims_text.replacen(
        "\"permissions\":[",
        "\"permissions\":[{\"apis\":[\"identity\"],\"routes\":[\"* /*\"]}],\"permissions\":[",
        1,
    );
    assert_ne!(dup_perms, good_claims_text);
    let header = key.header();
    let hdr = |extra: Value| {
        let mut h = header.clone();
        for (k, val) in extra.as_object().unwrap() {
            h[k] = val.clone();
        }
        h
    };
    let gc = good_claims;
    use Rejection::*;
    let rows: Vec<Row> = vec![
        ("good", good.clone(), active.clone(), Ok(())),
        // Algorithms and headers.
        (
            "alg none",
            format!(
                "{}.",
                TestKey::signing_input(&hdr(json!({"alg": "none"})).to_string(), &good_claims_text)
            ),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "alg none signed",
            key.sign(&hdr(json!({"alg": "none"})), &gc()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "HS256 keyed with the public key",
            hs256_with_public_key(&key, &good_claims()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "RS256",
            key.sign(&hdr(json!({"alg": "RS256"})), &gc()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "ES384",
            key.sign(&hdr(json!({"alg": "ES384"})), &gc()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "PS256",
            key.sign(&hdr(json!({"alg": "PS256"})), &gc()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "EdDSA",
            key.sign(&hdr(json!({"alg": "EdDSA"})), &gc()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "lower-case es256",
            key.sign(&hdr(json!({"alg": "es256"})), &gc()),
            active.clone(),
            Err(UnsupportedAlgorithm),
        ),
        (
            "unknown kid",
            key.sign(&hdr(json!({"kid": "key-1999"})), &gc()),
            active.clone(),
            Err(UnknownKid),
        ),
        (
            "no kid",
            key.sign(&json!({"alg": "ES256", "typ": "at+jwt"}), &gc()),
            active.clone(),
            Err(MissingKid),
        ),
        // Explicit typing (issue 19 A5): at+jwt, long form and any case accepted; a
        // missing typ, a plain JWT or another media type refused.
        (
            "typ application/at+jwt",
            key.sign(&hdr(json!({"typ": "application/at+jwt"})), &gc()),
            active.clone(),
            Ok(()),
        ),
        (
            "typ AT+JWT",
            key.sign(&hdr(json!({"typ": "AT+JWT"})), &gc()),
            active.clone(),
            Ok(()),
        ),
        (
            "no typ",
            key.sign(&without(header.clone(), "typ"), &gc()),
            active.clone(),
            Err(WrongType),
        ),
        (
            "typ JWT",
            key.sign(&hdr(json!({"typ": "JWT"})), &gc()),
            active.clone(),
            Err(WrongType),
        ),
        (
            "typ application/jwt",
            key.sign(&hdr(json!({"typ": "application/jwt"})), &gc()),
            active.clone(),
            Err(WrongType),
        ),
        (
            "typ id-token like",
            key.sign(&hdr(json!({"typ": "secevent+jwt"})), &gc()),
            active.clone(),
            Err(WrongType),
        ),
        (
            "typ with a prefix only",
            key.sign(&hdr(json!({"typ": "application/"})), &gc()),
            active.clone(),
            Err(WrongType),
        ),
        (
            "typ at+jwt with a space",
            key.sign(&hdr(json!({"typ": "at+jwt "})), &gc()),
            active.clone(),
            Err(WrongType),
        ),
        (
            "typ not a string",
            key.sign(&hdr(json!({"typ": 1})), &gc()),
            active.clone(),
            Err(UnsupportedHeader),
        ),
        (
            "empty kid",
            key.sign(&hdr(json!({"kid": ""})), &gc()),
            active.clone(),
            Err(MissingKid),
        ),
        (
            "kid with a space",
            key.sign(&hdr(json!({"kid": "key 1"})), &gc()),
            active.clone(),
            Err(MissingKid),
        ),
        (
            "crit b64",
            key.sign(&hdr(json!({"crit": ["b64"], "b64": true})), &gc()),
            active.clone(),
            Err(CritHeader),
        ),
        (
            "b64 without crit",
            key.sign(&hdr(json!({"b64": false})), &gc()),
            active.clone(),
            Err(UnsupportedHeader),
        ),
        (
            "crit exp",
            key.sign(&hdr(json!({"crit": ["exp"]})), &gc()),
            active.clone(),
            Err(CritHeader),
        ),
        (
            "jku header",
            key.sign(&hdr(json!({"jku": "https://evil.example/jwks"})), &gc()),
            active.clone(),
            Err(UnsupportedHeader),
        ),
        (
            "embedded jwk header",
            key.sign(&hdr(json!({"jwk": {"kty": "EC"}})), &gc()),
            active.clone(),
            Err(UnsupportedHeader),
        ),
        (
            "header not an object",
            key.sign_raw("[\"ES256\"]", &good_claims_text),
            active.clone(),
            Err(UnsupportedHeader),
        ),
        (
            "header not json",
            key.sign_raw("{alg", &good_claims_text),
            active.clone(),
            Err(Malformed),
        ),
        // Claims.
        (
            "missing exp",
            key.token(&without(gc(), "exp")),
            active.clone(),
            Err(MissingClaim("exp")),
        ),
        (
            "missing aud",
            key.token(&without(gc(), "aud")),
            active.clone(),
            Err(MissingClaim("aud")),
        ),
        (
            "missing iss",
            key.token(&without(gc(), "iss")),
            active.clone(),
            Err(MissingClaim("iss")),
        ),
        (
            "missing sub",
            key.token(&without(gc(), "sub")),
            active.clone(),
            Err(MissingClaim("sub")),
        ),
        (
            "missing nbf",
            key.token(&without(gc(), "nbf")),
            active.clone(),
            Err(MissingClaim("nbf")),
        ),
        (
            "missing iat",
            key.token(&without(gc(), "iat")),
            active.clone(),
            Err(MissingClaim("iat")),
        ),
        (
            "missing jti",
            key.token(&without(gc(), "jti")),
            active.clone(),
            Err(MissingClaim("jti")),
        ),
        (
            "missing permissions",
            key.token(&without(gc(), "permissions")),
            active.clone(),
            Err(MissingClaim("permissions")),
        ),
        (
            "missing proof",
            key.token(&without(gc(), "proof")),
            active.clone(),
            Err(MissingClaim("proof")),
        ),
        (
            "expired beyond leeway",
            key.token(&with(
                with(with(gc(), "exp", json!(NOW - 30)), "iat", json!(NOW - 600)),
                "nbf",
                json!(NOW - 600),
            )),
            active.clone(),
            Err(Expired),
        ),
        (
            "nbf not before exp",
            key.token(&with(gc(), "nbf", json!(NOW + 600))),
            active.clone(),
            Err(BadLifetime),
        ),
        (
            "nbf in the future beyond leeway",
            key.token(&with(gc(), "nbf", json!(NOW + 31))),
            active.clone(),
            Err(NotYetValid),
        ),
        (
            "iat in the future beyond leeway",
            key.token(&with(
                with(gc(), "iat", json!(NOW + 31)),
                "nbf",
                json!(NOW - 1),
            )),
            active.clone(),
            Err(IssuedInFuture),
        ),
        (
            "lifetime over 60 minutes",
            key.token(&with(gc(), "exp", json!(NOW + 3601))),
            active.clone(),
            Err(BadLifetime),
        ),
        (
            "exp before iat",
            key.token(&with(gc(), "exp", json!(NOW - 1))),
            active.clone(),
            Err(BadLifetime),
        ),
        (
            "wrong aud",
            key.token(&with(gc(), "aud", json!(["billing"]))),
            active.clone(),
            Err(WrongAudience),
        ),
        (
            "empty aud",
            key.token(&with(gc(), "aud", json!([]))),
            active.clone(),
            Err(WrongAudience),
        ),
        (
            "aud naming the API by a prefix",
            key.token(&with(gc(), "aud", json!(["identity-api", "identit"]))),
            active.clone(),
            Err(WrongAudience),
        ),
        (
            "permissions as plain route strings (the old shape)",
            key.token(&with(gc(), "permissions", json!(["GET /internal/users/*"]))),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "grant with an unknown field",
            key.token(&with(
                gc(),
                "permissions",
                json!([{"apis": [AUDIENCE], "routes": ["GET /x"], "effect": "allow"}]),
            )),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "grant without apis",
            key.token(&with(gc(), "permissions", json!([{"routes": ["GET /x"]}]))),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "aud as a string",
            key.token(&with(gc(), "aud", json!(AUDIENCE))),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "wrong iss",
            key.token(&with(gc(), "iss", json!("https://evil.example"))),
            active.clone(),
            Err(WrongIssuer),
        ),
        (
            "exp as a string",
            key.token(&with(gc(), "exp", json!("soon"))),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "unknown claim",
            key.token(&with(gc(), "admin", json!(true))),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "duplicate registered claim",
            key.sign_raw(&header.to_string(), &dup_sub),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "duplicate custom claim",
            key.sign_raw(&header.to_string(), &dup_perms),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "sub not a service name",
            key.token(&with(gc(), "sub", json!("Tutor Service"))),
            active.clone(),
            Err(MalformedClaims),
        ),
        (
            "unknown proof method",
            key.token(&with(gc(), "proof", json!({"method": "password"}))),
            active.clone(),
            Err(MalformedClaims),
        ),
        // Signatures.
        (
            "tampered payload",
            tampered(
                &good,
                &with(
                    gc(),
                    "permissions",
                    json!([{"apis": [AUDIENCE], "routes": ["* /*"]}]),
                ),
            ),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "signed by another key with the same kid",
            other.token(&gc()),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "r = s = 0",
            with_signature(&good, &[0; 64]),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "r = s = n-1 pattern",
            with_signature(&good, &[0xff; 64]),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "63-byte signature",
            with_signature(&good, &[1; 63]),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "empty signature",
            with_signature(&good, &[]),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "DER signature",
            key.sign_raw_der(&header.to_string(), &good_claims_text),
            active.clone(),
            Err(BadSignature),
        ),
        (
            "signature not base64url",
            format!("{}!!", &good[..good.len() - 2]),
            active.clone(),
            Err(Malformed),
        ),
        // Shape and size.
        ("empty", String::new(), active.clone(), Err(Malformed)),
        (
            "two parts",
            good.rsplit_once('.').unwrap().0.to_owned(),
            active.clone(),
            Err(Malformed),
        ),
        (
            "four parts",
            format!("{good}.x"),
            active.clone(),
            Err(Malformed),
        ),
        (
            "over the length cap",
            "a".repeat(8 * 1024 + 1),
            active.clone(),
            Err(TooLong),
        ),
        (
            "signed but over the cap",
            key.token(&with(gc(), "jti", json!("j".repeat(8 * 1024)))),
            active.clone(),
            Err(TooLong),
        ),
        // Standing of the service.
        (
            "unknown service",
            good.clone(),
            Standing::default(),
            Err(UnknownService),
        ),
        (
            "revoked key",
            good.clone(),
            standing(true, None),
            Err(KeyRevoked),
        ),
        (
            "braked service",
            good.clone(),
            standing(false, Some(NOW + 1)),
            Err(Braked),
        ),
    ];
    for (name, token, standing, want) in rows {
        let got = v
            .verify(&token, &keys, AUDIENCE, UnixTime(NOW))
            .and_then(|t| check_standing(&t.claims, &standing, UnixTime(NOW)));
        assert_eq!(got, want, "{name}");
        if let Err(e) = got {
            // The reason never carries the token or any part of it.
            let shown = format!("{e} {e:?} {}", e.code());
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!shown.contains(part), "{name}: {shown}");
            }
        }
    }
}

#[test]
fn leeway_edges() {
    let key = TestKey::new("k");
    let keys = key.key_set();
    let v = verifier();
    let token = key.token(&good_claims());
    let at = |t: u64| v.verify(&token, &keys, AUDIENCE, UnixTime(t)).map(|_| ());
    assert_eq!(at(NOW + 600 + 29), Ok(()));
    assert_eq!(at(NOW + 600 + 30), Err(Rejection::Expired));
    assert_eq!(at(NOW - 30), Ok(()));
    assert_eq!(at(NOW - 31), Err(Rejection::NotYetValid));
}

#[test]
fn a_token_must_outlive_the_authorizer_result_cache() {
    let key = TestKey::new("k");
    let keys = key.key_set();
    let mut config = service_token::VerifierConfig::new(ISSUER);
    config.min_remaining_secs = 300;
    let v = service_token::Verifier::new(config);
    let token = key.token(&good_claims());
    // exp = NOW + 600: a cache entry made at NOW + 300 lives until exactly exp.
    assert!(v
        .verify(&token, &keys, AUDIENCE, UnixTime(NOW + 300))
        .is_ok());
    assert_eq!(
        v.verify(&token, &keys, AUDIENCE, UnixTime(NOW + 301))
            .map(|_| ()),
        Err(Rejection::ExpiresWithinCacheTtl)
    );
}

#[test]
fn a_good_token_yields_its_claims() {
    let key = TestKey::new("k");
    let t = verifier()
        .verify(
            &key.token(&good_claims()),
            &key.key_set(),
            AUDIENCE,
            UnixTime(NOW),
        )
        .unwrap();
    assert_eq!(t.kid, "k");
    assert_eq!(serde_json::to_value(&t.claims).unwrap(), good_claims());
    // Debug shows ids, not the permissions or proof.
    let shown = format!("{t:?}");
    assert!(
        shown.contains("0f8e6b2c-jti") && !shown.contains("kid_0123"),
        "{shown}"
    );
}

#[test]
fn codes_are_distinct_token_reasons() {
    use Rejection::*;
    let all = [
        TooLong,
        Malformed,
        UnsupportedAlgorithm,
        CritHeader,
        UnsupportedHeader,
        MissingKid,
        WrongType,
        UnknownKid,
        KeySetUnavailable,
        BadSignature,
        MalformedClaims,
        MissingClaim("exp"),
        WrongIssuer,
        WrongAudience,
        Expired,
        ExpiresWithinCacheTtl,
        NotYetValid,
        IssuedInFuture,
        BadLifetime,
        UnknownService,
        KeyRevoked,
        Braked,
    ];
    let codes: std::collections::BTreeSet<&str> = all.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), all.len());
    // Each is a token reason of the one reason table, with its code.
    for r in all {
        assert_eq!(
            r.reason().path(),
            service_auth::refusal::Path::Token,
            "{r:?}"
        );
        assert_eq!(r.code(), r.reason().code());
    }
}

#[test]
fn without_audience_every_other_check_still_applies() {
    let key = TestKey::new("k");
    let keys = key.key_set();
    let v = verifier();
    let other_api = key.token(&with(good_claims(), "aud", json!(["billing"])));
    assert!(v
        .verify_without_audience(&other_api, &keys, UnixTime(NOW))
        .is_ok());
    let expired = v.verify_without_audience(&other_api, &keys, UnixTime(NOW + 700));
    assert_eq!(expired.map(|_| ()), Err(Rejection::Expired));
    let wrong_iss = key.token(&with(good_claims(), "iss", json!("other")));
    assert_eq!(
        v.verify_without_audience(&wrong_iss, &keys, UnixTime(NOW))
            .map(|_| ()),
        Err(Rejection::WrongIssuer)
    );
    let tampered = tampered(
        &other_api,
        &with(good_claims(), "sub", json!("admin-service")),
    );
    assert_eq!(
        v.verify_without_audience(&tampered, &keys, UnixTime(NOW))
            .map(|_| ()),
        Err(Rejection::BadSignature)
    );
}
