//! `local-gateway sign`: a `curl` line signed with SigV4 the way the AWS SDKs sign it,
//! for paths `curl --aws-sigv4` signs differently from AWS.
//!
//! AWS (and `aws-sigv4`, botocore) build the canonical URI of an `execute-api` request
//! from the path as sent, percent-encoded once more: a path sent as
//! `/by-email/ada%40example.com` is signed as `/by-email/ada%2540example.com`. curl
//! sends an `@` as it is and signs its own canonical form, so API Gateway (and this
//! gateway) compute another signature and answer 403. This module encodes the path
//! first (every byte but `A-Z a-z 0-9 - . _ ~ /`, keeping `%XX` escapes already there),
//! signs that exact target with `aws-sigv4`, and prints a `curl` line that sends it
//! unchanged with the signature headers.

use aws_credential_types::Credentials;
use service_auth::UnixTime;

use crate::sigv4::{sign_headers, LocalCredentials};

/// What to sign.
#[derive(Debug, Clone)]
pub struct SignRequest<'a> {
    pub method: &'a str,
    /// `http://127.0.0.1:PORT/path?query`.
    pub url: &'a str,
    pub body: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub region: &'a str,
    /// The signing time; the gateway accepts it for 15 minutes.
    pub at: UnixTime,
}

/// Splits `http://host[:port]/path?query` into the host (with port) and the target.
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?} is not an http:// URL of the gateway, e.g. http://127.0.0.1:3000/identityiam/v1/internal/users/by-email/ada@example.com")
    })?;
    let (host, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "{url:?} has no host (or user information, which is not signed): write http://127.0.0.1:PORT/..."
        ));
    }
    Ok((host, target))
}

/// The path as an SDK sends it: each byte outside `A-Z a-z 0-9 - . _ ~ /` as `%XX`; a
/// valid `%XX` escape stays as written (it is already encoded). The query is kept.
pub fn encode_target(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let escape = c == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if escape {
            out.push_str(&path[i..i + 3]);
            i += 3;
            continue;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
        i += 1;
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `curl` line for `req`, signed with `credentials`.
pub fn curl_line(req: &SignRequest<'_>, credentials: &Credentials) -> Result<String, String> {
    let (host, target) = split_url(req.url)?;
    let target = encode_target(target);
    let method = req.method.to_ascii_uppercase();
    let mut headers = vec![("host".to_owned(), host.to_owned())];
    if let Some(ct) = req.content_type {
        headers.push(("content-type".to_owned(), ct.to_owned()));
    }
    let body = req.body.unwrap_or("");
    sign_headers(
        &method,
        &target,
        &mut headers,
        body.as_bytes(),
        credentials,
        req.region,
        req.at,
    )?;
    let mut line = format!(
        "curl -i -X {method} {}",
        quote(&format!("http://{host}{target}"))
    );
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        line.push_str(&format!(" -H {}", quote(&format!("{k}: {v}"))));
    }
    if let Some(b) = req.body {
        line.push_str(&format!(" --data-binary {}", quote(b)));
    }
    Ok(line)
}

/// The credentials to sign with: `--access-key-id` if given, else the role's.
pub fn pick_credentials(
    all: &LocalCredentials,
    access_key_id: Option<&str>,
    role: &str,
) -> Result<(String, Credentials), String> {
    let akid = match access_key_id {
        Some(a) => a.to_owned(),
        None => all
            .for_role(role)
            .map(|(a, _)| a.to_owned())
            .ok_or_else(|| {
                format!(
                    "no credentials for role {role} in the credentials file; the roles there: {}",
                    all.by_access_key
                        .values()
                        .map(|c| c.role_arn.rsplit('/').next().unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
    };
    let creds = all
        .credentials(&akid)
        .ok_or_else(|| format!("access key id {akid} is not in the credentials file"))?;
    Ok((akid, creds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Request;
    use crate::sigv4::verify;

    #[test]
    fn paths_are_encoded_as_an_sdk_sends_them() {
        assert_eq!(
            encode_target("/v1/internal/users/by-email/ada@example.com"),
            "/v1/internal/users/by-email/ada%40example.com"
        );
        assert_eq!(encode_target("/a%40b/c d?x=1&y=@"), "/a%40b/c%20d?x=1&y=@");
        assert_eq!(encode_target("/a%4"), "/a%254");
        assert_eq!(encode_target("/ä+"), "/%C3%A4%2B");
    }

    #[test]
    fn the_printed_request_passes_the_gateways_own_verification() {
        let all = LocalCredentials::dev();
        let (_, creds) = pick_credentials(&all, None, "TutorServiceRole").unwrap();
        let at = UnixTime(1_795_947_342);
        let url = "http://127.0.0.1:3000/identityiam/v1/internal/users/by-email/ada@example.com";
        let line = curl_line(
            &SignRequest {
                method: "get",
                url,
                body: None,
                content_type: None,
                region: "us-east-1",
                at,
            },
            &creds,
        )
        .unwrap();
        assert!(line.contains("ada%40example.com"), "{line}");
        // Rebuild the request curl would send from the printed line.
        let header = |name: &str| {
            let start = line.find(&format!("'{name}: ")).unwrap() + name.len() + 3;
            line[start..].split('\'').next().unwrap().to_owned()
        };
        let req = Request {
            method: "GET".into(),
            target: "/identityiam/v1/internal/users/by-email/ada%40example.com".into(),
            headers: vec![
                ("Host".into(), "127.0.0.1:3000".into()),
                ("authorization".into(), header("authorization")),
                ("x-amz-date".into(), header("x-amz-date")),
                ("User-Agent".into(), "curl/8".into()),
            ],
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        let caller = verify(&req, &all, "us-east-1", at).unwrap();
        assert_eq!(caller.role_name, "TutorServiceRole");
        // The raw `@` (what curl sends) does not verify against this signature.
        let mut raw = req.clone();
        raw.target = "/identityiam/v1/internal/users/by-email/ada@example.com".into();
        assert!(verify(&raw, &all, "us-east-1", at).is_err());
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let all = LocalCredentials::dev();
        assert!(pick_credentials(&all, None, "NoSuchRole")
            .unwrap_err()
            .contains("TutorServiceRole"));
        assert!(pick_credentials(&all, Some("AKIANOPE"), "x").is_err());
        let (_, creds) = pick_credentials(&all, None, "TutorServiceRole").unwrap();
        for url in [
            "https://x/y",
            "127.0.0.1:3000/a",
            "http:///a",
            "http://u@h/a",
        ] {
            let r = SignRequest {
                method: "GET",
                url,
                body: None,
                content_type: None,
                region: "us-east-1",
                at: UnixTime(1),
            };
            assert!(curl_line(&r, &creds).is_err(), "{url}");
        }
    }
}
