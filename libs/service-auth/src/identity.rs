//! Who called a backend, whatever authenticated the call.
//!
//! A backend behind API Gateway learns its caller from the request context, which API
//! Gateway fills and a caller cannot write:
//!
//! * on a route protected by the authorizer, from its context
//!   (`requestContext.authorizer.serviceId`, `authenticatedBy`, and `keyId` for an API
//!   key, or `tokenId`, `tokenExpiresAt`, `tokenProof` (and `keyId` when the token was
//!   obtained with a key) for a signed token: see [`crate::context`]);
//! * on an `AWS_IAM` route, from the SigV4-verified caller
//!   (`requestContext.identity.userArn`), an assumed-role ARN such as
//!   `arn:aws:sts::123456789012:assumed-role/tutor-task-role/5f2b…`, mapped to a service
//!   by configuration ([`IamRoleMap`], from `SVCAUTH_IAM_ROLES`), never by guessing from
//!   the role's name.
//!
//! [`identify`] turns those plain strings into a [`ServiceIdentity`] or says why it
//! cannot. A request with neither source is refused ([`IdentityError::Missing`]): it
//! was not routed through an authenticated API Gateway method (the function was invoked
//! directly, or a route was wired without auth). Headers are never read here, so a
//! caller cannot claim an identity by sending one.
//!
//! The correlation id (which request chain, not which caller) is
//! [`crate::correlation`]'s.
//!
//! No HTTP, Lambda or AWS SDK types: the glue (`service-identity-http`) hands in strings.

use std::collections::BTreeMap;
use std::fmt;

use crate::context;
use crate::key::KeyId;
use crate::record::{valid_service_name, UnixTime};

/// The calling service and how it proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    /// Calling service name, e.g. `tutor-service`.
    pub service: String,
    pub method: AuthMethod,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// The API-key authorizer accepted the key with this (non-secret) id.
    ApiKey { key_id: KeyId },
    /// API Gateway verified a SigV4 signature made with credentials of this role.
    Iam {
        /// The role, as configured when it was matched by ARN, else derived from the
        /// caller (without a path: assumed-role ARNs do not carry it).
        role_arn: RoleArn,
        /// The session that signed, as API Gateway reported it.
        caller_arn: AssumedRoleArn,
    },
    /// The authorizer verified a signed service token.
    Token {
        /// The token's id (`jti`): what logs name it by.
        token_id: String,
        expires_at: UnixTime,
        /// How the caller proved itself to the token issuer.
        proof: TokenProof,
    },
}

/// How a token's holder proved itself to the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProof {
    /// With the API key of this id.
    ApiKey { key_id: KeyId },
    /// With a SigV4 signature of its IAM role.
    Iam,
}

impl ServiceIdentity {
    /// `api-key` or `iam`, as in the authorizer context's `authenticatedBy`.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            AuthMethod::ApiKey { .. } => context::AUTHENTICATED_BY_API_KEY,
            AuthMethod::Iam { .. } => context::AUTHENTICATED_BY_IAM,
            AuthMethod::Token { .. } => context::AUTHENTICATED_BY_TOKEN,
        }
    }

    /// The non-secret credential id for logs: the key id, the role ARN or the token
    /// id.
    pub fn credential_id(&self) -> String {
        match &self.method {
            AuthMethod::ApiKey { key_id } => key_id.to_string(),
            AuthMethod::Iam { role_arn, .. } => role_arn.to_string(),
            AuthMethod::Token { token_id, .. } => token_id.clone(),
        }
    }
}

/// Why no identity could be established. Carries no secret: key ids and ARNs are not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("the request carries no caller identity (no authorizer context, no IAM caller): it did not come through an authenticated API Gateway route")]
    Missing,
    #[error("the authorizer context is malformed: {0}")]
    MalformedContext(&'static str),
    #[error(
        "the request carries both an authorizer context and an IAM caller; refusing to choose"
    )]
    Ambiguous,
    #[error("the IAM caller ARN is malformed: {0}")]
    MalformedCaller(ArnError),
    #[error("the IAM caller is {0}; only assumed roles map to services")]
    NotARole(&'static str),
    #[error("IAM role {0} is not mapped to a service; add it to SVCAUTH_IAM_ROLES")]
    UnknownRole(RoleArn),
}

impl IdentityError {
    /// Stable code for logs, metrics and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "no_identity",
            Self::MalformedContext(_) => "malformed_identity",
            Self::Ambiguous => "ambiguous_identity",
            Self::MalformedCaller(_) => "malformed_caller",
            Self::NotARole(_) => "caller_not_a_role",
            Self::UnknownRole(_) => "unknown_role",
        }
    }

    /// True when the caller is authenticated but is not a known service (HTTP 403);
    /// false when no valid identity was established at all (HTTP 401).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::NotARole(_) | Self::UnknownRole(_))
    }
}

/// The caller's identity from the request context.
///
/// * `authorizer`: looks up a key of `requestContext.authorizer` (string values only).
/// * `user_arn`: `requestContext.identity.userArn`, set by API Gateway on `AWS_IAM`
///   routes.
pub fn identify<'a>(
    authorizer: impl Fn(&str) -> Option<&'a str>,
    user_arn: Option<&str>,
    roles: &IamRoleMap,
) -> Result<ServiceIdentity, IdentityError> {
    let non_empty = |v: Option<&'a str>| v.filter(|s| !s.is_empty());
    let field = |k: &str| non_empty(authorizer(k));
    let service = field(context::SERVICE_ID);
    let by = field(context::AUTHENTICATED_BY);
    let key_id = field(context::KEY_ID);
    let user_arn = user_arn.filter(|s| !s.is_empty());
    let has_context = service.is_some() || by.is_some() || key_id.is_some();

    match (has_context, user_arn) {
        (true, Some(_)) => Err(IdentityError::Ambiguous),
        (true, None) => from_authorizer(service, by, key_id, |k| field(k)),
        (false, Some(arn)) => from_iam(arn, roles),
        (false, None) => Err(IdentityError::Missing),
    }
}

fn from_authorizer<'a>(
    service: Option<&str>,
    by: Option<&str>,
    key_id: Option<&str>,
    field: impl Fn(&str) -> Option<&'a str>,
) -> Result<ServiceIdentity, IdentityError> {
    use IdentityError::MalformedContext as M;
    let service = service.ok_or(M("serviceId is missing"))?;
    if !valid_service_name(service) {
        return Err(M("serviceId is not a valid service name"));
    }
    let key_id_present = key_id.is_some();
    let key_id = || {
        KeyId::parse(key_id.ok_or(M("keyId is missing"))?)
            .ok_or(M("keyId is not kid_ and 16 hex digits"))
    };
    let method = match by {
        Some(context::AUTHENTICATED_BY_API_KEY) => AuthMethod::ApiKey { key_id: key_id()? },
        Some(context::AUTHENTICATED_BY_TOKEN) => {
            let token_id = field(context::TOKEN_ID).ok_or(M("tokenId is missing"))?;
            if !valid_token_id(token_id) {
                return Err(M(
                    "tokenId is not 1-128 printable characters without spaces",
                ));
            }
            let expires_at = field(context::TOKEN_EXPIRES_AT)
                .ok_or(M("tokenExpiresAt is missing"))
                .and_then(|t| {
                    UnixTime::parse_rfc3339(t).ok_or(M("tokenExpiresAt is not an RFC 3339 time"))
                })?;
            let proof = match field(context::TOKEN_PROOF) {
                Some(context::AUTHENTICATED_BY_API_KEY) => TokenProof::ApiKey { key_id: key_id()? },
                Some(context::AUTHENTICATED_BY_IAM) if !key_id_present => TokenProof::Iam,
                Some(context::AUTHENTICATED_BY_IAM) => {
                    return Err(M("keyId is set for a token obtained with IAM"))
                }
                _ => return Err(M("tokenProof is not \"api-key\" or \"iam\"")),
            };
            AuthMethod::Token {
                token_id: token_id.to_owned(),
                expires_at,
                proof,
            }
        }
        _ => return Err(M("authenticatedBy is not \"api-key\" or \"token\"")),
    };
    Ok(ServiceIdentity {
        service: service.to_owned(),
        method,
    })
}

/// A token id is logged: keep it short and plain.
fn valid_token_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

fn from_iam(user_arn: &str, roles: &IamRoleMap) -> Result<ServiceIdentity, IdentityError> {
    let caller = match Caller::parse(user_arn).map_err(IdentityError::MalformedCaller)? {
        Caller::AssumedRole(a) => a,
        Caller::Other(kind) => return Err(IdentityError::NotARole(kind)),
    };
    match roles.lookup(&caller) {
        Some((role_arn, service)) => Ok(ServiceIdentity {
            service: service.to_owned(),
            method: AuthMethod::Iam {
                role_arn,
                caller_arn: caller,
            },
        }),
        None => Err(IdentityError::UnknownRole(caller.role_arn())),
    }
}

// ---------------------------------------------------------------------------------
// ARNs

/// Why a string is not a usable ARN. Names the rule broken, not the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArnError {
    #[error("not of the form arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE")]
    Shape,
    #[error("unknown partition")]
    Partition,
    #[error("the account is not 12 digits")]
    Account,
    #[error("IAM and STS ARNs have no region")]
    Region,
    #[error("not an IAM role or STS assumed-role ARN")]
    Resource,
    #[error("the role name is not 1-64 characters of A-Z a-z 0-9 + = , . @ _ -")]
    RoleName,
    #[error("the role path is not /, or /segments/ of printable ASCII, at most 512 characters")]
    RolePath,
    #[error("the session name is not 2-64 characters of A-Z a-z 0-9 + = , . @ _ -")]
    SessionName,
}

const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];
const MAX_ARN_LEN: usize = 2048;

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`. The path is `/` for most roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    pub partition: String,
    pub account: String,
    /// `/` or `/a/b/`.
    pub path: String,
    pub name: String,
}

/// `arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION`: a role session, as API
/// Gateway reports an IAM caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRoleArn {
    pub partition: String,
    pub account: String,
    pub role_name: String,
    pub session: String,
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.path, self.name
        )
    }
}

impl fmt::Display for AssumedRoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:sts::{}:assumed-role/{}/{}",
            self.partition, self.account, self.role_name, self.session
        )
    }
}

struct ArnParts<'a> {
    partition: &'a str,
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn split_arn(s: &str) -> Result<ArnParts<'_>, ArnError> {
    if s.len() > MAX_ARN_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ArnError::Shape);
    }
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(ArnError::Shape);
    };
    if !PARTITIONS.contains(&partition) {
        return Err(ArnError::Partition);
    }
    if !region.is_empty() {
        return Err(ArnError::Region);
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ArnError::Account);
    }
    Ok(ArnParts {
        partition,
        service,
        account,
        resource,
    })
}

/// IAM role names and STS session names share this alphabet (`[\w+=,.@-]`).
fn iam_name_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn valid_role_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && iam_name_chars(s)
}

fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && iam_name_chars(s)
}

impl RoleArn {
    /// Parses `arn:aws:iam::123456789012:role/NAME` or `…:role/path/to/NAME`.
    pub fn parse(s: &str) -> Result<Self, ArnError> {
        let p = split_arn(s)?;
        if p.service != "iam" {
            return Err(ArnError::Resource);
        }
        let rest = p.resource.strip_prefix("role/").ok_or(ArnError::Resource)?;
        let (path, name) = match rest.rfind('/') {
            Some(i) => (&rest[..=i], &rest[i + 1..]),
            None => ("", rest),
        };
        if !valid_role_name(name) {
            return Err(ArnError::RoleName);
        }
        let path = format!("/{path}");
        // `path` is `/` or `/a/b/`: an empty segment shows as `//`.
        if path.len() > 512 || path.contains("//") {
            return Err(ArnError::RolePath);
        }
        Ok(Self {
            partition: p.partition.to_owned(),
            account: p.account.to_owned(),
            path,
            name: name.to_owned(),
        })
    }
}

impl AssumedRoleArn {
    /// Parses `arn:aws:sts::123456789012:assumed-role/NAME/SESSION`.
    pub fn parse(s: &str) -> Result<Self, ArnError> {
        match Caller::parse(s)? {
            Caller::AssumedRole(a) => Ok(a),
            Caller::Other(_) => Err(ArnError::Resource),
        }
    }

    /// The role this session belongs to, without a path (the session ARN has none).
    pub fn role_arn(&self) -> RoleArn {
        RoleArn {
            partition: self.partition.clone(),
            account: self.account.clone(),
            path: "/".to_owned(),
            name: self.role_name.clone(),
        }
    }
}

/// What kind of principal an IAM caller ARN names.
enum Caller {
    AssumedRole(AssumedRoleArn),
    /// A valid-looking principal that is not a role session.
    Other(&'static str),
}

impl Caller {
    fn parse(s: &str) -> Result<Self, ArnError> {
        let p = split_arn(s)?;
        match (p.service, p.resource) {
            ("sts", r) if r.starts_with("assumed-role/") => {
                let mut it = r["assumed-role/".len()..].split('/');
                let (Some(name), Some(session), None) = (it.next(), it.next(), it.next()) else {
                    return Err(ArnError::Resource);
                };
                if !valid_role_name(name) {
                    return Err(ArnError::RoleName);
                }
                if !valid_session_name(session) {
                    return Err(ArnError::SessionName);
                }
                Ok(Caller::AssumedRole(AssumedRoleArn {
                    partition: p.partition.to_owned(),
                    account: p.account.to_owned(),
                    role_name: name.to_owned(),
                    session: session.to_owned(),
                }))
            }
            ("sts", r) if r.starts_with("federated-user/") => Ok(Caller::Other("a federated user")),
            ("iam", r) if r.starts_with("user/") => Ok(Caller::Other("an IAM user")),
            ("iam", "root") => Ok(Caller::Other("an account root user")),
            ("iam", r) if r.starts_with("role/") => {
                Ok(Caller::Other("a role ARN, not a role session"))
            }
            _ => Err(ArnError::Resource),
        }
    }
}

// ---------------------------------------------------------------------------------
// Role map

/// Most entries in `SVCAUTH_IAM_ROLES`.
pub const MAX_ROLE_ENTRIES: usize = 64;

/// Why `SVCAUTH_IAM_ROLES` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleMapError {
    #[error("entry {index} ({entry:?}) is not ROLE=SERVICE")]
    Entry { index: usize, entry: String },
    #[error("entry {index}: {role:?} is not a role name or role ARN: {reason}")]
    Role {
        index: usize,
        role: String,
        reason: ArnError,
    },
    #[error(
        "entry {index}: service name {service:?} is invalid: use 1-64 characters of a-z, 0-9 and -"
    )]
    Service { index: usize, service: String },
    #[error("entry {index}: role {role:?} is listed twice (role names are unique per account, whatever their case or path)")]
    Duplicate { index: usize, role: String },
    #[error("more than {MAX_ROLE_ENTRIES} entries")]
    TooMany,
}

/// Configured IAM role to service map, parsed from `SVCAUTH_IAM_ROLES`:
/// `role-name-or-arn=service,...`.
///
/// * An ARN entry (`arn:aws:iam::123456789012:role/path/NAME=svc`) matches sessions of
///   that role in that account. Assumed-role ARNs carry the role name but not its path,
///   and IAM role names are unique per account, so the match is on partition, account
///   and name.
/// * A bare name entry (`NAME=svc`) matches a role of that name in any account the
///   API's resource policy and IAM let in. Prefer ARNs when more than one account can
///   call.
///
/// ARN entries win over name entries. Role names are compared without regard to ASCII
/// case, as IAM does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamRoleMap {
    /// (partition, account, lowercase name) → (configured ARN, service)
    by_arn: BTreeMap<(String, String, String), (RoleArn, String)>,
    /// lowercase name → service
    by_name: BTreeMap<String, String>,
}

impl IamRoleMap {
    /// Parses `role-name-or-arn=service,...`. Whitespace around entries is ignored and
    /// so are empty entries; an empty string is an empty map (every IAM caller is then
    /// refused).
    pub fn parse(spec: &str) -> Result<Self, RoleMapError> {
        let mut map = Self::default();
        let entries: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.len() > MAX_ROLE_ENTRIES {
            return Err(RoleMapError::TooMany);
        }
        for (index, entry) in entries.into_iter().enumerate() {
            // Role names may contain '=', service names cannot: split at the last one.
            let Some((role, service)) = entry.rsplit_once('=') else {
                return Err(RoleMapError::Entry {
                    index,
                    entry: entry.to_owned(),
                });
            };
            let (role, service) = (role.trim(), service.trim());
            if !valid_service_name(service) {
                return Err(RoleMapError::Service {
                    index,
                    service: service.to_owned(),
                });
            }
            let duplicate = || RoleMapError::Duplicate {
                index,
                role: role.to_owned(),
            };
            if role.starts_with("arn:") {
                let arn = RoleArn::parse(role).map_err(|reason| RoleMapError::Role {
                    index,
                    role: role.to_owned(),
                    reason,
                })?;
                let k = (
                    arn.partition.clone(),
                    arn.account.clone(),
                    arn.name.to_ascii_lowercase(),
                );
                if map.by_arn.contains_key(&k) {
                    return Err(duplicate());
                }
                map.by_arn.insert(k, (arn, service.to_owned()));
            } else {
                if !valid_role_name(role) {
                    return Err(RoleMapError::Role {
                        index,
                        role: role.to_owned(),
                        reason: ArnError::RoleName,
                    });
                }
                if map
                    .by_name
                    .insert(role.to_ascii_lowercase(), service.to_owned())
                    .is_some()
                {
                    return Err(duplicate());
                }
            }
        }
        Ok(map)
    }

    pub fn is_empty(&self) -> bool {
        self.by_arn.is_empty() && self.by_name.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_arn.len() + self.by_name.len()
    }

    /// Every entry as configured: (role ARN, or role name in lower case; service). For
    /// tools that list who is mapped (`svcauth access`), not for deciding.
    pub fn entries(&self) -> impl Iterator<Item = (String, &str)> + '_ {
        self.by_arn
            .values()
            .map(|(arn, service)| (arn.to_string(), service.as_str()))
            .chain(
                self.by_name
                    .iter()
                    .map(|(name, service)| (name.clone(), service.as_str())),
            )
    }

    /// The role and service a session maps to.
    pub fn lookup(&self, caller: &AssumedRoleArn) -> Option<(RoleArn, &str)> {
        let name = caller.role_name.to_ascii_lowercase();
        let k = (caller.partition.clone(), caller.account.clone(), name);
        if let Some((arn, service)) = self.by_arn.get(&k) {
            return Some((arn.clone(), service));
        }
        self.by_name
            .get(&k.2)
            .map(|service| (caller.role_arn(), service.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KID: &str = "kid_0123456789abcdef";

    fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ident(
        c: &HashMap<String, String>,
        user_arn: Option<&str>,
        roles: &IamRoleMap,
    ) -> Result<ServiceIdentity, IdentityError> {
        identify(|k| c.get(k).map(String::as_str), user_arn, roles)
    }

    fn roles() -> IamRoleMap {
        IamRoleMap::parse(
            "tutor-task-role=tutor-service, \
             arn:aws:iam::123456789012:role/platform/internal/admin-task-role=admin-service,\
             arn:aws:iam::123456789012:role/Billing=billing-service",
        )
        .unwrap()
    }

    #[test]
    fn api_key_context_gives_the_service_and_key_id() {
        let c = ctx(&[
            ("serviceId", "tutor-service"),
            ("authenticatedBy", "api-key"),
            ("keyId", KID),
            ("principalId", "tutor-service"),
        ]);
        let id = ident(&c, None, &IamRoleMap::default()).unwrap();
        assert_eq!(id.service, "tutor-service");
        assert_eq!(
            id.method,
            AuthMethod::ApiKey {
                key_id: KeyId::parse(KID).unwrap()
            }
        );
        assert_eq!(id.method_name(), "api-key");
        assert_eq!(id.credential_id(), KID);
        // An empty userArn (API Gateway sends null or "") is not an IAM caller.
        assert!(ident(&c, Some(""), &IamRoleMap::default()).is_ok());
    }

    #[test]
    fn token_context_gives_the_service_token_id_and_proof() {
        let exp = "2026-12-01T10:10:00Z";
        let base = [
            ("serviceId", "tutor-service"),
            ("authenticatedBy", "token"),
            ("tokenId", "0f8e6b2c-jti"),
            ("tokenExpiresAt", exp),
            ("principalId", "tutor-service"),
        ];
        let mut with_key = base.to_vec();
        with_key.extend([("tokenProof", "api-key"), ("keyId", KID)]);
        let id = ident(&ctx(&with_key), None, &IamRoleMap::default()).unwrap();
        assert_eq!(id.service, "tutor-service");
        assert_eq!(
            id.method,
            AuthMethod::Token {
                token_id: "0f8e6b2c-jti".into(),
                expires_at: UnixTime::parse_rfc3339(exp).unwrap(),
                proof: TokenProof::ApiKey {
                    key_id: KeyId::parse(KID).unwrap()
                },
            }
        );
        assert_eq!(id.method_name(), "token");
        assert_eq!(id.credential_id(), "0f8e6b2c-jti");
        let mut with_iam = base.to_vec();
        with_iam.push(("tokenProof", "iam"));
        let id = ident(&ctx(&with_iam), None, &IamRoleMap::default()).unwrap();
        assert!(matches!(
            id.method,
            AuthMethod::Token {
                proof: TokenProof::Iam,
                ..
            }
        ));
        // Broken token contexts.
        let broken: Vec<Vec<(&str, &str)>> = vec![
            base.to_vec(),
            [base.to_vec(), vec![("tokenProof", "password")]].concat(),
            [base.to_vec(), vec![("tokenProof", "api-key")]].concat(),
            [base.to_vec(), vec![("tokenProof", "iam"), ("keyId", KID)]].concat(),
            [
                base.to_vec(),
                vec![("tokenProof", "api-key"), ("keyId", "svcauth_secret")],
            ]
            .concat(),
            with_iam
                .iter()
                .map(|&(k, v)| if k == "tokenId" { (k, "a b") } else { (k, v) })
                .collect(),
            with_iam
                .iter()
                .map(|&(k, v)| {
                    if k == "tokenExpiresAt" {
                        (k, "soon")
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            with_iam
                .iter()
                .copied()
                .filter(|(k, _)| *k != "tokenExpiresAt")
                .collect(),
            with_iam
                .iter()
                .copied()
                .filter(|(k, _)| *k != "tokenId")
                .collect(),
        ];
        for c in broken {
            let err = ident(&ctx(&c), None, &roles()).unwrap_err();
            assert!(
                matches!(err, IdentityError::MalformedContext(_)),
                "{c:?}: {err}"
            );
        }
    }

    #[test]
    fn broken_authorizer_context_is_refused() {
        let cases: &[&[(&str, &str)]] = &[
            &[("serviceId", "tutor-service"), ("keyId", KID)],
            &[
                ("serviceId", "tutor-service"),
                ("authenticatedBy", "iam"),
                ("keyId", KID),
            ],
            &[("authenticatedBy", "api-key"), ("keyId", KID)],
            &[
                ("serviceId", "Tutor Service"),
                ("authenticatedBy", "api-key"),
                ("keyId", KID),
            ],
            &[
                ("serviceId", "tutor-service"),
                ("authenticatedBy", "api-key"),
            ],
            &[
                ("serviceId", "tutor-service"),
                ("authenticatedBy", "api-key"),
                ("keyId", "svcauth_secret"),
            ],
        ];
        for c in cases {
            let err = ident(&ctx(c), None, &roles()).unwrap_err();
            assert!(
                matches!(err, IdentityError::MalformedContext(_)),
                "{c:?}: {err}"
            );
            assert!(!err.is_forbidden());
        }
    }

    #[test]
    fn no_identity_at_all_is_refused() {
        let err = ident(&ctx(&[]), None, &roles()).unwrap_err();
        assert_eq!(err, IdentityError::Missing);
        assert_eq!(err.code(), "no_identity");
        // Other authorizer keys (a different authorizer, API Gateway's own) are not an identity.
        let err = ident(
            &ctx(&[("principalId", "x"), ("integrationLatency", "3")]),
            None,
            &roles(),
        );
        assert_eq!(err.unwrap_err(), IdentityError::Missing);
    }

    #[test]
    fn both_sources_at_once_are_refused() {
        let c = ctx(&[
            ("serviceId", "tutor-service"),
            ("authenticatedBy", "api-key"),
            ("keyId", KID),
        ]);
        let arn = "arn:aws:sts::123456789012:assumed-role/tutor-task-role/s1";
        assert_eq!(
            ident(&c, Some(arn), &roles()).unwrap_err(),
            IdentityError::Ambiguous
        );
    }

    #[test]
    fn assumed_role_maps_by_name() {
        let arn = "arn:aws:sts::123456789012:assumed-role/tutor-task-role/8f2a4c1e9b7d4e0fa1b2c3d4e5f60718";
        let id = ident(&ctx(&[]), Some(arn), &roles()).unwrap();
        assert_eq!(id.service, "tutor-service");
        let AuthMethod::Iam {
            role_arn,
            caller_arn,
        } = &id.method
        else {
            panic!("not IAM: {id:?}")
        };
        assert_eq!(
            role_arn.to_string(),
            "arn:aws:iam::123456789012:role/tutor-task-role"
        );
        assert_eq!(caller_arn.to_string(), arn);
        assert_eq!(caller_arn.session, "8f2a4c1e9b7d4e0fa1b2c3d4e5f60718");
        assert_eq!(id.method_name(), "iam");
        assert_eq!(
            id.credential_id(),
            "arn:aws:iam::123456789012:role/tutor-task-role"
        );
    }

    #[test]
    fn role_with_a_path_matches_its_session_and_reports_the_configured_arn() {
        // The session ARN drops the path: .../assumed-role/NAME/SESSION.
        let arn = "arn:aws:sts::123456789012:assumed-role/admin-task-role/admin-fn";
        let id = ident(&ctx(&[]), Some(arn), &roles()).unwrap();
        assert_eq!(id.service, "admin-service");
        let AuthMethod::Iam { role_arn, .. } = &id.method else {
            panic!()
        };
        assert_eq!(
            role_arn.to_string(),
            "arn:aws:iam::123456789012:role/platform/internal/admin-task-role"
        );
        assert_eq!(role_arn.path, "/platform/internal/");
        // The same role name in another account does not match an ARN entry.
        let other = "arn:aws:sts::210987654321:assumed-role/admin-task-role/admin-fn";
        let err = ident(&ctx(&[]), Some(other), &roles()).unwrap_err();
        assert_eq!(
            err,
            IdentityError::UnknownRole(
                RoleArn::parse("arn:aws:iam::210987654321:role/admin-task-role").unwrap()
            )
        );
        assert!(err.is_forbidden());
        // Role names are case-insensitive in IAM.
        let upper = "arn:aws:sts::123456789012:assumed-role/BILLING/s1";
        assert_eq!(
            ident(&ctx(&[]), Some(upper), &roles()).unwrap().service,
            "billing-service"
        );
    }

    #[test]
    fn unknown_role_is_forbidden_and_no_name_pattern_is_guessed() {
        // The original design would have guessed "tutor-service" from this name.
        let arn = "arn:aws:sts::123456789012:assumed-role/edtech-dev-tutor-task-role/s1";
        let err = ident(&ctx(&[]), Some(arn), &roles()).unwrap_err();
        assert_eq!(err.code(), "unknown_role");
        assert!(err
            .to_string()
            .contains("arn:aws:iam::123456789012:role/edtech-dev-tutor-task-role"));
        assert!(ident(&ctx(&[]), Some(arn), &IamRoleMap::default()).is_err());
    }

    #[test]
    fn principals_that_are_not_role_sessions_are_forbidden() {
        for (arn, kind) in [
            (
                "arn:aws:iam::123456789012:user/tutor-task-role",
                "an IAM user",
            ),
            ("arn:aws:iam::123456789012:root", "an account root user"),
            (
                "arn:aws:sts::123456789012:federated-user/bob",
                "a federated user",
            ),
            (
                "arn:aws:iam::123456789012:role/tutor-task-role",
                "a role ARN, not a role session",
            ),
        ] {
            let err = ident(&ctx(&[]), Some(arn), &roles()).unwrap_err();
            assert_eq!(err, IdentityError::NotARole(kind), "{arn}");
            assert!(err.is_forbidden());
        }
    }

    #[test]
    fn malformed_caller_arns_are_refused() {
        for (arn, why) in [
            ("tutor-task-role", ArnError::Shape),
            ("arn:aws:sts::123456789012", ArnError::Shape),
            (
                "arn:aws:sts::123456789012:assumed-role/a b/s1",
                ArnError::Shape,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s1\n",
                ArnError::Shape,
            ),
            (
                "arn:evil:sts::123456789012:assumed-role/r/s1",
                ArnError::Partition,
            ),
            (
                "arn:aws:sts::12345678901:assumed-role/r/s1",
                ArnError::Account,
            ),
            (
                "arn:aws:sts::12345678901x:assumed-role/r/s1",
                ArnError::Account,
            ),
            (
                "arn:aws:sts:us-east-1:123456789012:assumed-role/r/s1",
                ArnError::Region,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/r",
                ArnError::Resource,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s1/extra",
                ArnError::Resource,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role//s1",
                ArnError::RoleName,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s",
                ArnError::SessionName,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s!",
                ArnError::SessionName,
            ),
            ("arn:aws:s3:::bucket", ArnError::Account),
            (
                "arn:aws:lambda::123456789012:function:f",
                ArnError::Resource,
            ),
        ] {
            let err = ident(&ctx(&[]), Some(arn), &roles()).unwrap_err();
            assert_eq!(err, IdentityError::MalformedCaller(why), "{arn:?}");
            assert!(!err.is_forbidden());
        }
        let long = format!(
            "arn:aws:sts::123456789012:assumed-role/r/{}",
            "s".repeat(3000)
        );
        assert!(ident(&ctx(&[]), Some(&long), &roles()).is_err());
    }

    #[test]
    fn role_arns_parse_strictly() {
        let a = RoleArn::parse("arn:aws:iam::123456789012:role/path/to/NAME").unwrap();
        assert_eq!((a.path.as_str(), a.name.as_str()), ("/path/to/", "NAME"));
        assert_eq!(a.to_string(), "arn:aws:iam::123456789012:role/path/to/NAME");
        let b = RoleArn::parse("arn:aws-us-gov:iam::123456789012:role/r+=,.@_-").unwrap();
        assert_eq!(b.path, "/");
        for bad in [
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role//NAME",
            "arn:aws:iam::123456789012:role/a//NAME",
            "arn:aws:iam::123456789012:user/NAME",
            "arn:aws:sts::123456789012:assumed-role/NAME/s1",
            "arn:aws:iam::123456789012:role/NAME*",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
        assert!(RoleArn::parse(&format!(
            "arn:aws:iam::123456789012:role/{}",
            "n".repeat(65)
        ))
        .is_err());
        assert!(RoleArn::parse(&format!(
            "arn:aws:iam::123456789012:role/{}/n",
            "p".repeat(520)
        ))
        .is_err());
        let s = AssumedRoleArn::parse("arn:aws:sts::123456789012:assumed-role/NAME/sess").unwrap();
        assert_eq!(
            s.role_arn().to_string(),
            "arn:aws:iam::123456789012:role/NAME"
        );
        assert!(AssumedRoleArn::parse("arn:aws:iam::123456789012:user/u").is_err());
    }

    #[test]
    fn role_map_parsing() {
        assert!(IamRoleMap::parse("").unwrap().is_empty());
        assert!(IamRoleMap::parse(" , ").unwrap().is_empty());
        assert_eq!(roles().len(), 3);
        // Role names may contain '='.
        let m = IamRoleMap::parse("a=b=svc").unwrap();
        let s = AssumedRoleArn::parse("arn:aws:sts::123456789012:assumed-role/a=b/x1").unwrap();
        assert_eq!(m.lookup(&s).map(|(_, svc)| svc), Some("svc"));

        let err = |spec: &str| IamRoleMap::parse(spec).unwrap_err();
        assert!(matches!(
            err("tutor-role"),
            RoleMapError::Entry { index: 0, .. }
        ));
        assert!(matches!(
            err("r=svc,tutor-role=Tutor"),
            RoleMapError::Service { index: 1, .. }
        ));
        assert!(matches!(err("=svc"), RoleMapError::Role { .. }));
        assert!(matches!(err("a role=svc"), RoleMapError::Role { .. }));
        assert!(matches!(
            err("arn:aws:iam::123456789012:user/u=svc"),
            RoleMapError::Role {
                reason: ArnError::Resource,
                ..
            }
        ));
        assert!(matches!(
            err("r=a,R=b"),
            RoleMapError::Duplicate { index: 1, .. }
        ));
        assert!(matches!(
            err("arn:aws:iam::123456789012:role/x/r=a,arn:aws:iam::123456789012:role/r=b"),
            RoleMapError::Duplicate { .. }
        ));
        let many: Vec<String> = (0..=MAX_ROLE_ENTRIES).map(|i| format!("r{i}=s")).collect();
        assert_eq!(err(&many.join(",")), RoleMapError::TooMany);
    }

    #[test]
    fn arn_entries_win_over_name_entries() {
        let m = IamRoleMap::parse("r=by-name,arn:aws:iam::123456789012:role/r=by-arn").unwrap();
        let here = AssumedRoleArn::parse("arn:aws:sts::123456789012:assumed-role/r/s1").unwrap();
        let there = AssumedRoleArn::parse("arn:aws:sts::111122223333:assumed-role/r/s1").unwrap();
        assert_eq!(m.lookup(&here).unwrap().1, "by-arn");
        assert_eq!(m.lookup(&there).unwrap().1, "by-name");
    }
}
