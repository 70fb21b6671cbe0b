//! The authorizer's decision, from plain inputs: the header values presented, the
//! method ARN, the key store and the time. No AWS types, no I/O.

use std::sync::Arc;

use crate::key::{KeyFormatError, KeyId, PresentedKey};
use crate::method_arn::{MethodArn, MethodArnError};
use crate::permissions::RoutePattern;
use crate::policy::{Policy, StagePolicy};
use crate::record::{KeyStatus, UnixTime};
use crate::refusal::Reason;
use crate::store::{KeyStore, ServiceGrant};

/// What the authorizer was asked.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// Every value of the API key header in the event, whatever the case of its name,
    /// from both `headers` and `multiValueHeaders`.
    pub api_key_values: &'a [&'a str],
    /// The event's `methodArn`, if any.
    pub method_arn: Option<&'a str>,
    /// The name the method ARN's API id is registered under (`{SVCAUTH_API_PATH}/{apiId}`,
    /// see `docs/contracts.md`); `None` when it is not registered, and then the policy
    /// allows nothing on that API.
    pub api_name: Option<&'a str>,
}

/// Why a request is answered `Unauthorized` (API Gateway's 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnauthorizedReason {
    MissingKey,
    DuplicateKey,
    MalformedKey(KeyFormatError),
    UnknownKey,
    RevokedKey,
    ExpiredKey,
    StoreUnavailable,
    MalformedEvent,
    MalformedMethodArn(MethodArnError),
}

impl UnauthorizedReason {
    /// The refusal reason, whose code logs and metrics carry.
    pub fn reason(&self) -> Reason {
        match self {
            Self::MissingKey => Reason::MissingKey,
            Self::DuplicateKey => Reason::DuplicateKey,
            Self::MalformedKey(_) => Reason::MalformedKey,
            Self::UnknownKey => Reason::UnknownKey,
            Self::RevokedKey => Reason::RevokedKey,
            Self::ExpiredKey => Reason::ExpiredKey,
            Self::StoreUnavailable => Reason::StoreUnavailable,
            Self::MalformedEvent => Reason::MalformedEvent,
            Self::MalformedMethodArn(_) => Reason::MalformedMethodArn,
        }
    }

    /// Stable code for logs and metrics ([`Reason::code`]).
    pub fn code(&self) -> &'static str {
        self.reason().code()
    }
}

/// An authenticated caller and what it may call.
#[derive(Debug, Clone)]
pub struct Grant {
    pub service: Arc<ServiceGrant>,
    pub key_id: KeyId,
    pub expires: Option<UnixTime>,
    pub legacy: bool,
    pub method_arn: MethodArn,
    /// Where the called API's routes are in the service's grant
    /// ([`ServiceGrant::api_index`]); `None` when it may call nothing on this API.
    pub api_index: Option<usize>,
    /// Whether the policy covers the route being called: false means API Gateway
    /// will answer 403. Logged only: the policy never depends on it.
    pub route_permitted: bool,
}

impl Grant {
    /// The routes this caller may call on the called API.
    pub fn routes(&self) -> &[RoutePattern] {
        self.service.routes_at(self.api_index)
    }

    /// The policy for this caller on this API stage: the same for every route, and
    /// an explicit Deny of the stage on an API the caller is not granted.
    pub fn policy(&self) -> Policy {
        self.stage_policy().build()
    }

    /// [`Grant::policy`], not built (written straight into a response).
    pub fn stage_policy(&self) -> StagePolicy<'_> {
        StagePolicy::new(self.routes(), &self.method_arn)
    }
}

#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Grant),
    Unauthorized {
        reason: UnauthorizedReason,
        /// Id of the presented key when it was well-formed (never the key).
        key_id: Option<KeyId>,
        /// The service the key belongs to, when it is known but unusable.
        service: Option<String>,
    },
}

impl Decision {
    fn unauthorized(reason: UnauthorizedReason) -> Self {
        Self::Unauthorized {
            reason,
            key_id: None,
            service: None,
        }
    }

    /// A refusal of a well-formed key: names its id (never the key) and, when known,
    /// its service. The presented key's id costs a second SHA-256: computed only when
    /// refusing (an allowed key's id comes from its record).
    pub fn refused(
        reason: UnauthorizedReason,
        key: &PresentedKey<'_>,
        service: Option<&str>,
    ) -> Self {
        Self::Unauthorized {
            reason,
            key_id: Some(key.key_id()),
            service: service.map(str::to_owned),
        }
    }
}

/// Decides one request. `store` is `None` when no usable store is loaded: fail closed.
pub fn decide(store: Option<&KeyStore>, req: &AuthRequest<'_>, now: UnixTime) -> Decision {
    let key = match presented_key(req.api_key_values) {
        Ok(k) => k,
        Err(reason) => return Decision::unauthorized(reason),
    };
    match MethodArn::parse(req.method_arn.unwrap_or_default()) {
        Ok(arn) => decide_key(store, &key, arn, req.api_name, now),
        Err(e) => Decision::refused(UnauthorizedReason::MalformedMethodArn(e), &key, None),
    }
}

/// [`decide`] for a key and a method ARN already read: the authorizer reads both once,
/// before it loads anything ([`presented_key`], [`MethodArn::parse_owned`]), and a
/// malformed one is refused there as [`decide`] refuses it.
pub fn decide_key(
    store: Option<&KeyStore>,
    key: &PresentedKey<'_>,
    method_arn: MethodArn,
    api_name: Option<&str>,
    now: UnixTime,
) -> Decision {
    let Some(store) = store else {
        return Decision::refused(UnauthorizedReason::StoreUnavailable, key, None);
    };
    let Some(entry) = store.lookup(&key.hash()) else {
        return Decision::refused(UnauthorizedReason::UnknownKey, key, None);
    };
    let service = Some(entry.grant.service.as_str());
    if entry.status == KeyStatus::Revoked {
        return Decision::refused(UnauthorizedReason::RevokedKey, key, service);
    }
    if entry.expires.is_some_and(|e| now >= e) {
        return Decision::refused(UnauthorizedReason::ExpiredKey, key, service);
    }
    let api_index = api_name.and_then(|a| entry.grant.api_index(a));
    let suffix = method_arn.route_suffix();
    let route_permitted = entry
        .grant
        .routes_at(api_index)
        .iter()
        .any(|p| p.matches_suffix(suffix));
    Decision::Allow(Grant {
        service: entry.grant.clone(),
        key_id: entry.key_id.clone(),
        expires: entry.expires,
        legacy: entry.legacy,
        method_arn,
        api_index,
        route_permitted,
    })
}

/// The one key presented, parsed (format, length, checksum), or the refusal when
/// there is none, two, or one that is not a key. No store is needed for this: the
/// authorizer calls it before it loads anything, so a malformed key costs no SSM call.
pub fn presented_key<'a>(values: &[&'a str]) -> Result<PresentedKey<'a>, UnauthorizedReason> {
    let presented = match distinct_value(values) {
        Ok(Some(v)) => v,
        Ok(None) => return Err(UnauthorizedReason::MissingKey),
        Err(()) => return Err(UnauthorizedReason::DuplicateKey),
    };
    PresentedKey::parse(presented).map_err(UnauthorizedReason::MalformedKey)
}

/// The one non-empty value presented, `Ok(None)` when there is none, `Err` when two
/// different values were presented. Repeats of the same value count as one (proxies
/// sometimes copy a header into both maps).
fn distinct_value<'a>(values: &[&'a str]) -> Result<Option<&'a str>, ()> {
    let mut found: Option<&'a str> = None;
    for v in values {
        let v = v.trim_matches(|c| c == ' ' || c == '\t');
        if v.is_empty() {
            continue;
        }
        match found {
            None => found = Some(v),
            Some(f) if f == v => {}
            Some(_) => return Err(()),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ApiKey;
    use crate::record::{ApiGrant, KeyRecord, ServiceDocument};

    const ARN: &str =
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/internal/users/42";
    const ADMIN_ARN: &str =
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/internal/users";

    struct Fixture {
        store: KeyStore,
        active: ApiKey,
        revoked: ApiKey,
        expiring: ApiKey,
        unknown: ApiKey,
    }

    fn fixture() -> Fixture {
        let active = ApiKey::generate(Some("test")).unwrap();
        let revoked = ApiKey::generate(Some("test")).unwrap();
        let expiring = ApiKey::generate(Some("test")).unwrap();
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(
                &["identity"],
                &["GET /internal/users/*", "GET /internal/users/by-email/*"],
            )],
        );
        doc.usage_plan_key = Some("tutor-usage-plan-key".into());
        doc.keys
            .push(KeyRecord::for_key(&active, UnixTime(100), None));
        let mut r = KeyRecord::for_key(&revoked, UnixTime(100), None);
        r.status = KeyStatus::Revoked;
        doc.keys.push(r);
        doc.keys.push(KeyRecord::for_key(
            &expiring,
            UnixTime(100),
            Some(UnixTime(1000)),
        ));
        Fixture {
            store: KeyStore::build(&[doc], &[]).unwrap(),
            active,
            revoked,
            expiring,
            unknown: ApiKey::generate(Some("test")).unwrap(),
        }
    }

    fn run(f: &Fixture, values: &[&str], arn: &str, now: u64) -> Decision {
        run_on(f, values, arn, Some("identity"), now)
    }

    fn run_on(f: &Fixture, values: &[&str], arn: &str, api: Option<&str>, now: u64) -> Decision {
        decide(
            Some(&f.store),
            &AuthRequest {
                api_key_values: values,
                method_arn: Some(arn),
                api_name: api,
            },
            UnixTime(now),
        )
    }

    fn reason(d: Decision) -> UnauthorizedReason {
        match d {
            Decision::Unauthorized { reason, .. } => reason,
            Decision::Allow(g) => panic!("allowed {}", g.service.service),
        }
    }

    #[test]
    fn valid_key_is_allowed_with_the_services_grant() {
        let f = fixture();
        let Decision::Allow(g) = run(&f, &[f.active.expose_secret()], ARN, 500) else {
            panic!("not allowed")
        };
        assert_eq!(g.service.service, "tutor-service");
        assert_eq!(g.key_id, f.active.key_id());
        assert!(g.route_permitted);
        assert_eq!(
            g.service.usage_plan_key.as_deref(),
            Some("tutor-usage-plan-key")
        );
    }

    #[test]
    fn route_outside_permissions_is_allowed_but_not_permitted_and_the_policy_is_unchanged() {
        let f = fixture();
        let Decision::Allow(inside) = run(&f, &[f.active.expose_secret()], ARN, 500) else {
            panic!()
        };
        let Decision::Allow(outside) = run(&f, &[f.active.expose_secret()], ADMIN_ARN, 500) else {
            panic!()
        };
        assert!(!outside.route_permitted);
        // The cache-safety property: same caller, same policy, whatever the route.
        assert_eq!(inside.policy(), outside.policy());
    }

    /// Issue 9 item 4: permissions used to apply on every API the authorizer was
    /// attached to. On an API the caller is not granted (or one whose id is not
    /// registered under a name), the policy now allows nothing, for every route.
    #[test]
    fn a_caller_is_allowed_nothing_on_an_api_it_is_not_granted() {
        let f = fixture();
        let key = f.active.expose_secret();
        for api in [Some("billing"), None] {
            let Decision::Allow(g) = run_on(&f, &[key], ARN, api, 500) else {
                panic!("the key itself is valid")
            };
            assert!(!g.route_permitted, "{api:?}");
            assert!(g.routes().is_empty());
            assert_eq!(
                g.policy(),
                Policy::deny_stage(&MethodArn::parse(ARN).unwrap()),
                "{api:?}"
            );
        }
        // The same caller on the API it is granted: its routes, whatever the route.
        let Decision::Allow(g) = run_on(&f, &[key], ADMIN_ARN, Some("identity"), 500) else {
            panic!()
        };
        assert_eq!(g.routes().len(), 2);
        assert_eq!(
            g.policy().statements[0].effect,
            crate::policy::Effect::Allow
        );
    }

    #[test]
    fn every_unauthorized_outcome() {
        let f = fixture();
        let active = f.active.expose_secret();
        assert_eq!(
            reason(run(&f, &[], ARN, 500)),
            UnauthorizedReason::MissingKey
        );
        assert_eq!(
            reason(run(&f, &[""], ARN, 500)),
            UnauthorizedReason::MissingKey
        );
        assert_eq!(
            reason(run(&f, &["  "], ARN, 500)),
            UnauthorizedReason::MissingKey
        );
        assert_eq!(
            reason(run(&f, &[active, f.unknown.expose_secret()], ARN, 500)),
            UnauthorizedReason::DuplicateKey
        );
        assert!(matches!(
            reason(run(&f, &["svcauth_test_nope"], ARN, 500)),
            UnauthorizedReason::MalformedKey(_)
        ));
        // A typo fails the checksum before any lookup.
        let mut typo = active.to_owned();
        typo.replace_range(20..21, if &typo[20..21] == "x" { "y" } else { "x" });
        assert_eq!(
            reason(run(&f, &[&typo], ARN, 500)),
            UnauthorizedReason::MalformedKey(KeyFormatError::BadChecksum)
        );
        assert_eq!(
            reason(run(&f, &[f.unknown.expose_secret()], ARN, 500)),
            UnauthorizedReason::UnknownKey
        );
        assert_eq!(
            reason(run(&f, &[f.revoked.expose_secret()], ARN, 500)),
            UnauthorizedReason::RevokedKey
        );
        assert_eq!(
            reason(run(&f, &[f.expiring.expose_secret()], ARN, 1000)),
            UnauthorizedReason::ExpiredKey
        );
        assert!(matches!(
            run(&f, &[f.expiring.expose_secret()], ARN, 999),
            Decision::Allow(_)
        ));
        assert!(matches!(
            reason(run(&f, &[active], "arn:aws:execute-api:nope", 500)),
            UnauthorizedReason::MalformedMethodArn(_)
        ));
        assert!(matches!(
            reason(decide(
                Some(&f.store),
                &AuthRequest {
                    api_key_values: &[active],
                    method_arn: None,
                    api_name: Some("identity"),
                },
                UnixTime(500)
            )),
            UnauthorizedReason::MalformedMethodArn(MethodArnError::Missing)
        ));
        assert_eq!(
            reason(decide(
                None,
                &AuthRequest {
                    api_key_values: &[active],
                    method_arn: Some(ARN),
                    api_name: Some("identity"),
                },
                UnixTime(500)
            )),
            UnauthorizedReason::StoreUnavailable
        );
    }

    #[test]
    fn the_same_value_twice_is_one_value() {
        let f = fixture();
        let k = f.active.expose_secret();
        assert!(matches!(run(&f, &[k, k], ARN, 500), Decision::Allow(_)));
    }

    #[test]
    fn unauthorized_names_key_id_and_service_when_known() {
        let f = fixture();
        match run(&f, &[f.revoked.expose_secret()], ARN, 500) {
            Decision::Unauthorized {
                key_id, service, ..
            } => {
                assert_eq!(key_id, Some(f.revoked.key_id()));
                assert_eq!(service.as_deref(), Some("tutor-service"));
            }
            Decision::Allow(_) => panic!(),
        }
    }
}
