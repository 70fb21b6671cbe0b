//! SigV4 verification for `AWS_IAM` routes, with credentials from a local file.
//!
//! The received request is signed again with `aws-sigv4` (the signer the AWS SDKs use)
//! with the stored secret, at the request's own `X-Amz-Date` and over exactly the
//! headers it says it signed; the two signatures are compared in constant time. The
//! credential scope must name this gateway's region and `execute-api`, the date must
//! be within 15 minutes of the gateway's clock, and `host` and `x-amz-date` must be
//! signed. The answers are API Gateway's for `AWS_IAM` methods.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::Deserialize;
use service_auth::UnixTime;
use subtle::ConstantTimeEq;

use crate::http::Request;
use crate::util::{amz_date, parse_amz_date};

/// The service name in the credential scope.
pub const SERVICE: &str = "execute-api";
/// How far `X-Amz-Date` may be from the gateway's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The session name in the caller's assumed-role ARN.
pub const SESSION_NAME: &str = "local-session";

/// One development credential.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalCredential {
    pub secret_access_key: String,
    /// `arn:aws:iam::123456789012:role/NAME`
    pub role_arn: String,
    #[serde(default)]
    pub session_token: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl std::fmt::Debug for LocalCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCredential")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

/// Access key id → credential. Development only.
#[derive(Debug, Clone, Default)]
pub struct LocalCredentials {
    pub by_access_key: BTreeMap<String, LocalCredential>,
}

/// The embedded development credentials (`dev/local-credentials.json`).
pub const DEV_CREDENTIALS_JSON: &str = include_str!("../../../dev/local-credentials.json");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the credentials file is not a JSON object of access key id to {{secretAccessKey, roleArn}}: {0}")]
    Json(String),
    #[error("credential {0}: roleArn is not arn:aws:iam::<12 digits>:role/<name>")]
    RoleArn(String),
}

impl LocalCredentials {
    /// Parses `{"AKID": {"secretAccessKey": ..., "roleArn": ...}, "_comment": "..."}`;
    /// keys starting with `_` are comments.
    pub fn from_json(text: &str) -> Result<Self, CredentialsError> {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| CredentialsError::Json(e.to_string()))?;
        let mut by_access_key = BTreeMap::new();
        for (k, v) in raw {
            if k.starts_with('_') {
                continue;
            }
            let c: LocalCredential = serde_json::from_value(v)
                .map_err(|e| CredentialsError::Json(format!("{k}: {e}")))?;
            if service_auth::identity::RoleArn::parse(&c.role_arn).is_err() {
                return Err(CredentialsError::RoleArn(k));
            }
            by_access_key.insert(k, c);
        }
        Ok(Self { by_access_key })
    }

    pub fn dev() -> Self {
        Self::from_json(DEV_CREDENTIALS_JSON).expect("dev/local-credentials.json is valid")
    }

    /// The first credential of a role (by role name).
    pub fn for_role(&self, role_name: &str) -> Option<(&str, &LocalCredential)> {
        self.by_access_key
            .iter()
            .find(|(_, c)| role_name_of(&c.role_arn) == Some(role_name))
            .map(|(k, c)| (k.as_str(), c))
    }

    /// As `aws-credential-types` credentials, for a signing client.
    pub fn credentials(&self, access_key: &str) -> Option<Credentials> {
        let c = self.by_access_key.get(access_key)?;
        Some(Credentials::new(
            access_key,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "local-gateway",
        ))
    }
}

fn role_name_of(arn: &str) -> Option<&str> {
    arn.rsplit_once(":role/")
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(p))
}

/// Who signed, as API Gateway reports an IAM caller to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key: String,
    pub account: String,
    pub role_name: String,
    /// `arn:aws:sts::{account}:assumed-role/{role}/local-session`
    pub user_arn: String,
    /// `AROA…:local-session`
    pub caller: String,
}

/// Why a request was refused (HTTP 403 in every case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
    #[error("{0}")]
    Time(String),
    #[error("{0}")]
    Scope(String),
}

impl SigError {
    /// `$context.error.responseType`.
    pub fn response_type(&self) -> &'static str {
        match self {
            SigError::Missing => "MISSING_AUTHENTICATION_TOKEN",
            SigError::UnknownKey => "UNAUTHORIZED",
            _ => "INVALID_SIGNATURE",
        }
    }

    /// The `x-amzn-ErrorType` header.
    pub fn error_type(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::UnknownKey => "UnrecognizedClientException",
            SigError::Incomplete(_) => "IncompleteSignatureException",
            _ => "InvalidSignatureException",
        }
    }
}

struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(SigError::Incomplete(format!(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={}",
            value.split(' ').next().unwrap_or("")
        )));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if !missing.is_empty() {
        return Err(SigError::Incomplete(format!(
            "{} Authorization=AWS4-HMAC-SHA256",
            missing.join(" ")
        )));
    }
    let credential = credential.unwrap_or_default();
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped to a valid region, not ''. Credential should be scoped with a valid terminator: 'aws4_request', not ''. Authorization=AWS4-HMAC-SHA256 Credential={}",
            parts.first().unwrap_or(&"")
        )));
    }
    Ok(Authorization {
        access_key: parts[0],
        date: parts[1],
        region: parts[2],
        service: parts[3],
        terminator: parts[4],
        signed_headers: signed.unwrap_or_default().split(';').collect(),
        signature: signature.unwrap_or_default(),
    })
}

/// Verifies the request's SigV4 signature. `now` is the gateway's clock.
pub fn verify(
    req: &Request,
    credentials: &LocalCredentials,
    region: &str,
    now: UnixTime,
) -> Result<Caller, SigError> {
    let Some(auth_value) = req.header("authorization") else {
        if req
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature=") || q.contains("X-Amz-Credential="))
        {
            return Err(SigError::Incomplete(
                "presigned URLs are not emulated by the local gateway; sign with the Authorization header".into(),
            ));
        }
        return Err(SigError::Missing);
    };
    let auth = parse_authorization(auth_value)?;
    let Some(date_value) = req.header("x-amz-date") else {
        return Err(SigError::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256".into(),
        ));
    };
    let Some(date) = parse_amz_date(date_value) else {
        return Err(SigError::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{date_value}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    let mut scope_errors = Vec::new();
    if auth.region != region {
        scope_errors.push(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            auth.region
        ));
    }
    if auth.service != SERVICE {
        scope_errors.push(format!(
            "Credential should be scoped to correct service: '{SERVICE}'."
        ));
    }
    if auth.terminator != "aws4_request" {
        scope_errors.push(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            auth.terminator
        ));
    }
    if auth.date != &date_value[..8] {
        scope_errors.push(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{date_value}'.",
            auth.date,
            &date_value[..8]
        ));
    }
    if !scope_errors.is_empty() {
        return Err(SigError::Scope(scope_errors.join(" ")));
    }
    let signed: Vec<String> = auth
        .signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if !signed.iter().any(|h| h == "host") {
        return Err(SigError::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if !signed.iter().any(|h| h == "x-amz-date") {
        return Err(SigError::Incomplete(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let skew = MAX_SKEW.as_secs();
    if date.0 + skew < now.0 {
        return Err(SigError::Time(format!(
            "Signature expired: {date_value} is now earlier than {} ({} - 15 min.)",
            amz_date(UnixTime(now.0 - skew)),
            amz_date(now)
        )));
    }
    if date.0 > now.0 + skew {
        return Err(SigError::Time(format!(
            "Signature not yet current: {date_value} is still later than {} ({} + 15 min.)",
            amz_date(UnixTime(now.0 + skew)),
            amz_date(now)
        )));
    }
    let Some(cred) = credentials.by_access_key.get(auth.access_key) else {
        return Err(SigError::UnknownKey);
    };
    let token_ok = match (
        req.header("x-amz-security-token"),
        cred.session_token.as_deref(),
    ) {
        (None, None) => true,
        (Some(sent), Some(stored)) => sent.as_bytes().ct_eq(stored.as_bytes()).into(),
        _ => false,
    };
    if !token_ok {
        return Err(SigError::UnknownKey);
    }

    // Sign again, over exactly the headers the caller signed.
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            signed.contains(&k) && k != "x-amz-security-token"
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let identity: Identity = credentials
        .credentials(auth.access_key)
        .ok_or(SigError::UnknownKey)?
        .into();
    let mut settings = SigningSettings::default();
    // Only what was signed: aws-sigv4 adds the token itself when the credential has one.
    if cred.session_token.is_some() && !signed.iter().any(|h| h == "x-amz-security-token") {
        settings.session_token_mode = aws_sigv4::http_request::SessionTokenMode::Exclude;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(UNIX_EPOCH + Duration::from_secs(date.0))
        .settings(settings)
        .build()
        .map_err(|_| SigError::Mismatch)?
        .into();
    let signable = SignableRequest::new(
        &req.method,
        req.target.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|_| SigError::Mismatch)?;
    let expected = sign(signable, &params)
        .map_err(|_| SigError::Mismatch)?
        .signature()
        .to_owned();
    let ok: bool = expected.as_bytes().ct_eq(auth.signature.as_bytes()).into();
    if !ok {
        return Err(SigError::Mismatch);
    }

    let role =
        service_auth::identity::RoleArn::parse(&cred.role_arn).map_err(|_| SigError::UnknownKey)?;
    let role_id = {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(role.name.as_bytes());
        let b32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let body: String = h[..17]
            .iter()
            .map(|b| b32[(*b as usize) % 32] as char)
            .collect();
        format!("AROA{body}")
    };
    Ok(Caller {
        access_key: auth.access_key.to_owned(),
        account: role.account.clone(),
        role_name: role.name.clone(),
        user_arn: format!(
            "arn:aws:sts::{}:assumed-role/{}/{SESSION_NAME}",
            role.account, role.name
        ),
        caller: format!("{role_id}:{SESSION_NAME}"),
    })
}

/// Signs a request the way an AWS SDK does, for tests and tools: adds `x-amz-date`
/// and `authorization` to `headers` (which must hold `host`).
pub fn sign_headers(
    method: &str,
    target: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    at: UnixTime,
) -> Result<(), String> {
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(UNIX_EPOCH + Duration::from_secs(at.0))
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        method,
        target,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_owned(), v.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_795_947_342);

    fn creds() -> LocalCredentials {
        LocalCredentials::from_json(
            r#"{"_comment": "test", "AKIAIOSFODNN7EXAMPLE": {"secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "roleArn": "arn:aws:iam::123456789012:role/TutorServiceRole"}}"#,
        )
        .unwrap()
    }

    fn signed(target: &str, body: &[u8], at: UnixTime) -> Request {
        let mut headers = vec![
            ("Host".to_owned(), "127.0.0.1:3000".to_owned()),
            ("X-Correlation-Id".to_owned(), "c-1".to_owned()),
        ];
        let c = creds().credentials("AKIAIOSFODNN7EXAMPLE").unwrap();
        sign_headers("POST", target, &mut headers, body, &c, "us-east-1", at).unwrap();
        Request {
            method: "POST".into(),
            target: target.into(),
            headers,
            body: body.to_vec(),
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    fn set(req: &mut Request, name: &str, value: &str) {
        req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        req.headers.push((name.into(), value.into()));
    }

    #[test]
    fn a_good_signature_gives_the_role_session() {
        let req = signed("/identityiam/v1/internal/users/a%40b.com?x=1", b"{}", NOW);
        let c = verify(&req, &creds(), "us-east-1", NOW).unwrap();
        assert_eq!(
            c.user_arn,
            "arn:aws:sts::123456789012:assumed-role/TutorServiceRole/local-session"
        );
        assert!(c.caller.starts_with("AROA") && c.caller.ends_with(":local-session"));
        assert_eq!(c.role_name, "TutorServiceRole");
        // Within the skew, either way.
        verify(&req, &creds(), "us-east-1", UnixTime(NOW.0 + 899)).unwrap();
        verify(&req, &creds(), "us-east-1", UnixTime(NOW.0 - 899)).unwrap();
    }

    #[test]
    fn every_tampering_is_refused() {
        let good = signed("/p/v1/x", b"body", NOW);
        let check = |req: &Request| verify(req, &creds(), "us-east-1", NOW);

        let mut r = good.clone();
        r.body = b"Body".to_vec();
        assert_eq!(check(&r), Err(SigError::Mismatch));
        let mut r = good.clone();
        r.target = "/p/v1/y".into();
        assert_eq!(check(&r), Err(SigError::Mismatch));
        let mut r = good.clone();
        set(&mut r, "X-Correlation-Id", "c-2");
        assert_eq!(check(&r), Err(SigError::Mismatch));
        let mut r = good.clone();
        r.method = "GET".into();
        assert_eq!(check(&r), Err(SigError::Mismatch));
        // An unsigned header may change.
        let mut r = good.clone();
        r.headers.push(("User-Agent".into(), "x".into()));
        assert!(check(&r).is_ok());

        let auth = good.header("authorization").unwrap().to_owned();
        let mut r = good.clone();
        set(
            &mut r,
            "Authorization",
            &auth.replace("AKIAIOSFODNN7EXAMPLE", "AKIAUNKNOWN0EXAMPLE"),
        );
        assert_eq!(check(&r), Err(SigError::UnknownKey));
        let mut r = good.clone();
        set(
            &mut r,
            "Authorization",
            &auth.replace("us-east-1", "eu-west-1"),
        );
        assert!(matches!(check(&r), Err(SigError::Scope(_))));
        let mut r = good.clone();
        set(&mut r, "Authorization", &auth.replace("execute-api", "s3"));
        assert!(matches!(check(&r), Err(SigError::Scope(_))));
        let mut r = good.clone();
        set(&mut r, "Authorization", &auth.replace("host;", ""));
        assert!(matches!(check(&r), Err(SigError::Incomplete(m)) if m.contains("'Host'")));
        let mut r = good.clone();
        set(&mut r, "Authorization", &auth.replace(";x-amz-date", ""));
        assert!(matches!(check(&r), Err(SigError::Incomplete(m)) if m.contains("X-Amz-Date")));
        let mut r = good.clone();
        set(&mut r, "Authorization", "Basic abc");
        assert!(matches!(check(&r), Err(SigError::Incomplete(_))));
        let mut r = good.clone();
        r.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        assert_eq!(check(&r), Err(SigError::Missing));
        let mut r = good.clone();
        r.headers
            .push(("X-Amz-Security-Token".into(), "tok".into()));
        assert_eq!(check(&r), Err(SigError::UnknownKey));

        // Too old, too new.
        let err = verify(&good, &creds(), "us-east-1", UnixTime(NOW.0 + 901)).unwrap_err();
        assert!(err.to_string().starts_with("Signature expired"), "{err}");
        let err = verify(&good, &creds(), "us-east-1", UnixTime(NOW.0 - 901)).unwrap_err();
        assert!(
            err.to_string().starts_with("Signature not yet current"),
            "{err}"
        );
        // A wrong secret.
        let other = LocalCredentials::from_json(
            r#"{"AKIAIOSFODNN7EXAMPLE": {"secretAccessKey": "another", "roleArn": "arn:aws:iam::123456789012:role/TutorServiceRole"}}"#,
        )
        .unwrap();
        assert_eq!(
            verify(&good, &other, "us-east-1", NOW),
            Err(SigError::Mismatch)
        );
    }

    #[test]
    fn the_dev_credentials_file_is_valid() {
        let c = LocalCredentials::dev();
        assert!(c.for_role("TutorServiceRole").is_some());
        assert!(c.for_role("AdminServiceRole").is_some());
        for k in c.by_access_key.keys() {
            assert!(k.starts_with("AKIA") && k.ends_with("EXAMPLE"), "{k}");
        }
        assert!(LocalCredentials::from_json("[]").is_err());
        assert!(LocalCredentials::from_json(
            r#"{"A": {"secretAccessKey": "s", "roleArn": "arn:aws:iam::1:user/x"}}"#
        )
        .is_err());
    }
}
