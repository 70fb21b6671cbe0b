//! A service's permissions: `METHOD /path` patterns, the same shape as the
//! `execute-api:Invoke` resources of the original design's IAM policies.
//!
//! `GET /internal/users/*` lets a service call every GET below `/internal/users/`;
//! `* /internal/*` lets it call every method below `/internal/`.
//!
//! **`*` and `{param}` cross `/`.** A pattern becomes an IAM policy resource, and IAM
//! has only two wildcards: `*` (any run of characters, `/` included) and `?`. A
//! `{param}` segment therefore becomes `*` too: `GET /internal/users/{id}` grants
//! `GET /internal/users/42` *and* `GET /internal/users/42/anything/below`. The
//! effective resource ([`RoutePattern::effective`]) is what `svcauth keys list` and
//! `keys check` show next to what was written.
//!
//! Patterns are parsed strictly so they never grant more than they read: braces must
//! close within one whole segment (`{id}`, or `{proxy+}` as the last segment), no
//! segment is empty (`//`, a trailing `/`) or `.`/`..`, `%` is followed by two hex
//! digits, and only characters an API Gateway resource path can hold are accepted.

use std::fmt;

use crate::method_arn::MethodArn;

/// Longest policy resource ARN API Gateway accepts.
pub const MAX_RESOURCE_ARN_LEN: usize = 512;
/// Longest path in a pattern; with the longest ARN prefix it stays under 512.
pub const MAX_PATTERN_PATH_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    #[error("a permission is `METHOD /path`, e.g. `GET /internal/users/*`")]
    Shape,
    #[error("unknown HTTP method in a permission (use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *)")]
    Method,
    #[error("a permission's path must start with `/`, be at most {MAX_PATTERN_PATH_LEN} characters, and use only A-Z a-z 0-9 - . _ ~ % + @ : = , and `*`")]
    Path,
    #[error("a path parameter must be a whole segment with balanced braces, `/users/{{id}}` (or `{{proxy+}}` as the last segment), named with A-Z a-z 0-9 _ -")]
    Brace,
    #[error("a permission's path has an empty segment (`//` or a trailing `/`) or a `.`/`..` segment: API Gateway routes neither")]
    EmptySegment,
    #[error(
        "`%` in a permission's path must start a percent-encoding of two hex digits, e.g. `%40`"
    )]
    Percent,
}

/// One `METHOD /path` pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoutePattern {
    /// `GET`, ..., or `*`.
    method: String,
    /// Starts with `/`.
    path: String,
    /// `METHOD/path` with `{param}` segments as `*`: the part of a policy resource after
    /// the stage prefix, computed once so decisions do not rebuild it.
    resource_suffix: String,
}

impl RoutePattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let (method, path) = s.trim().split_once(' ').ok_or(PatternError::Shape)?;
        let path = path.trim();
        let method = method.to_ascii_uppercase();
        if !matches!(
            method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" | "*"
        ) {
            return Err(PatternError::Method);
        }
        check_path(path)?;
        let resource_suffix = resource_suffix(&method, path);
        Ok(Self {
            method,
            path: path.to_owned(),
            resource_suffix,
        })
    }

    /// The pattern as the policy applies it, `METHOD /path` with every `{param}` as
    /// `*`: `GET /internal/users/{id}` → `GET /internal/users/*`. Every `*` in it
    /// matches any run of characters, `/` included.
    pub fn effective(&self) -> String {
        let (method, path) = self.resource_suffix.split_at(
            self.resource_suffix
                .find('/')
                .unwrap_or(self.resource_suffix.len()),
        );
        format!("{method} {path}")
    }

    /// Whether the pattern holds a wildcard or a parameter, that is whether it covers
    /// more than one path (any depth below it, as `*` crosses `/`).
    pub fn is_wildcard(&self) -> bool {
        self.resource_suffix.contains('*')
    }

    /// The policy resource for this pattern on the API stage of `stage_prefix`
    /// ([`MethodArn::stage_prefix`]).
    pub fn resource_arn(&self, stage_prefix: &str) -> String {
        let mut out = String::with_capacity(stage_prefix.len() + self.resource_suffix.len());
        out.push_str(stage_prefix);
        out.push_str(&self.resource_suffix);
        out
    }

    /// `METHOD/path` with `{param}` segments as `*`: what follows the stage prefix in
    /// [`RoutePattern::resource_arn`].
    pub fn resource_suffix(&self) -> &str {
        &self.resource_suffix
    }

    /// Whether this pattern covers `VERB/path` (the method ARN's part after the stage
    /// prefix, see [`MethodArn::route_suffix`]), with IAM's wildcard semantics. Used for
    /// the audit log line; API Gateway makes the real decision from the policy.
    pub fn matches_suffix(&self, route_suffix: &str) -> bool {
        wildcard_match(self.resource_suffix.as_bytes(), route_suffix.as_bytes())
    }

    /// [`RoutePattern::matches_suffix`] for a whole method ARN.
    pub fn matches(&self, arn: &MethodArn) -> bool {
        self.matches_suffix(arn.route_suffix())
    }
}

/// Checks a pattern's path (see the module doc): every segment non-empty, braces only
/// as a whole `{name}` segment (or `{name+}` last), valid percent-encodings, and only
/// characters an API Gateway resource path can hold.
fn check_path(path: &str) -> Result<(), PatternError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatternError::Path);
    };
    if path.len() > MAX_PATTERN_PATH_LEN {
        return Err(PatternError::Path);
    }
    if rest.is_empty() {
        return Ok(()); // the root resource
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() || *seg == "." || *seg == ".." {
            return Err(PatternError::EmptySegment);
        }
        if seg.contains(['{', '}']) {
            let name = seg
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .ok_or(PatternError::Brace)?;
            let name = match name.strip_suffix('+') {
                Some(greedy) if i == last => greedy,
                Some(_) => return Err(PatternError::Brace),
                None => name,
            };
            let name_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            if name.is_empty() || !name.bytes().all(name_ok) {
                return Err(PatternError::Brace);
            }
            continue;
        }
        let bytes = seg.as_bytes();
        for (j, &b) in bytes.iter().enumerate() {
            let ok = b.is_ascii_alphanumeric() || b"-._~*%+@:=,".contains(&b);
            if !ok {
                return Err(PatternError::Path);
            }
            if b == b'%'
                && !(bytes.get(j + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(j + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return Err(PatternError::Percent);
            }
        }
    }
    Ok(())
}

/// `METHOD/path` with each `{param}` segment as `*`, as API Gateway puts the concrete
/// value in the method ARN. Called only on paths [`check_path`] accepted, so every
/// brace is a whole segment.
fn resource_suffix(method: &str, path: &str) -> String {
    let mut out = String::with_capacity(method.len() + path.len());
    out.push_str(method);
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.starts_with('{') {
            out.push('*');
        } else {
            out.push_str(seg);
        }
    }
    out
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl fmt::Debug for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// IAM-style matching: `*` any run (possibly empty), `?` one character.
pub fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(route: &str) -> MethodArn {
        let (verb, path) = route.split_once(' ').unwrap();
        MethodArn::parse(&format!(
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/{verb}{path}"
        ))
        .unwrap()
    }

    #[test]
    fn patterns_become_execute_api_resources() {
        let prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/";
        let p = RoutePattern::parse("GET /internal/users/*").unwrap();
        assert_eq!(
            p.resource_arn(prefix),
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/internal/users/*"
        );
        let p = RoutePattern::parse("* /internal/*").unwrap();
        assert_eq!(
            p.resource_arn(prefix),
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*/internal/*"
        );
        let p = RoutePattern::parse("get /internal/users/{id}").unwrap();
        assert_eq!(p.to_string(), "GET /internal/users/{id}");
        assert_eq!(
            p.resource_arn(prefix),
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/internal/users/*"
        );
    }

    #[test]
    fn matching_follows_iam_wildcards() {
        let tutor = RoutePattern::parse("GET /internal/users/*").unwrap();
        assert!(tutor.matches(&arn("GET /internal/users/42")));
        assert!(tutor.matches(&arn("GET /internal/users/by-email/a%40b.com")));
        assert!(!tutor.matches(&arn("POST /internal/users/42")));
        assert!(!tutor.matches(&arn("POST /internal/users")));
        assert!(!tutor.matches(&arn("GET /internal/users")));
        let admin = RoutePattern::parse("* /internal/*").unwrap();
        assert!(admin.matches(&arn("POST /internal/users")));
        assert!(admin.matches(&arn("DELETE /internal/tutor/x")));
        assert!(!admin.matches(&arn("GET /public/x")));
    }

    #[test]
    fn wildcard_matcher_edge_cases() {
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard_match(b"a*b*c", b"aXXbYY"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(!wildcard_match(b"a?c", b"ac"));
        assert!(wildcard_match(b"**", b"anything/at/all"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert_eq!(RoutePattern::parse("GET"), Err(PatternError::Shape));
        assert_eq!(RoutePattern::parse("FETCH /x"), Err(PatternError::Method));
        assert_eq!(RoutePattern::parse("GET x"), Err(PatternError::Path));
        assert_eq!(RoutePattern::parse("GET /a b"), Err(PatternError::Path));
        assert_eq!(RoutePattern::parse("GET /a?b"), Err(PatternError::Path));
        assert_eq!(RoutePattern::parse("GET /a\"b"), Err(PatternError::Path));
        let long = format!("GET /{}", "a".repeat(MAX_PATTERN_PATH_LEN));
        assert_eq!(RoutePattern::parse(&long), Err(PatternError::Path));
    }

    /// Issue 9 item 3: an unclosed `{` used to swallow the rest of the pattern
    /// (`GET /internal/users/{id/profile` granted `GET /internal/users/*`), and empty
    /// segments and stray braces were accepted. Each is now refused.
    #[test]
    fn malformed_patterns_are_rejected_not_widened() {
        let cases: &[(&str, PatternError)] = &[
            ("GET /internal/users/{id/profile", PatternError::Brace),
            ("GET /internal/users/{id", PatternError::Brace),
            ("GET /internal/users/id}", PatternError::Brace),
            ("GET /internal/users/{}", PatternError::Brace),
            ("GET /internal/users/x{id}", PatternError::Brace),
            ("GET /internal/users/{id}x", PatternError::Brace),
            ("GET /internal/users/{{id}}", PatternError::Brace),
            ("GET /internal/users/{a b}", PatternError::Brace),
            ("GET /internal/{proxy+}/x", PatternError::Brace),
            ("GET /internal/{id.x}", PatternError::Brace),
            ("GET /internal//users", PatternError::EmptySegment),
            ("GET /internal/users/", PatternError::EmptySegment),
            ("GET //", PatternError::EmptySegment),
            ("GET /internal/../admin", PatternError::EmptySegment),
            ("GET /internal/./x", PatternError::EmptySegment),
            ("GET /a%4", PatternError::Percent),
            ("GET /a%zz", PatternError::Percent),
            ("GET /a#b", PatternError::Path),
            ("GET /a\\b", PatternError::Path),
            ("GET /a|b", PatternError::Path),
            ("GET /caf\u{e9}", PatternError::Path),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                RoutePattern::parse(pattern),
                Err(want.clone()),
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn well_formed_parameters_and_wildcards_are_accepted() {
        for ok in [
            "GET /",
            "GET /internal/users/{id}",
            "GET /internal/users/{user_id}/profile",
            "GET /internal/users/{user-id}",
            "ANY /internal/{proxy+}",
            "GET /internal/users/by-email/a%40b.com",
            "* /internal/*",
            "GET /internal/users*",
        ] {
            let ok = ok.replace("ANY", "*");
            assert!(RoutePattern::parse(&ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_effective_pattern_shows_that_parameters_become_wildcards() {
        let p = RoutePattern::parse("GET /internal/users/{id}/profile").unwrap();
        assert_eq!(p.effective(), "GET /internal/users/*/profile");
        assert!(p.is_wildcard());
        // ... and that `*` crosses `/`: the parameter also matches deeper paths.
        assert!(p.matches(&arn("GET /internal/users/42/x/profile")));
        let p = RoutePattern::parse("* /internal/{proxy+}").unwrap();
        assert_eq!(p.effective(), "* /internal/*");
        let p = RoutePattern::parse("POST /internal/users").unwrap();
        assert_eq!(p.effective(), "POST /internal/users");
        assert!(!p.is_wildcard());
        assert_eq!(RoutePattern::parse("GET /").unwrap().effective(), "GET /");
    }

    #[test]
    fn longest_pattern_on_a_long_stage_stays_under_the_resource_limit() {
        let p = RoutePattern::parse(&format!(
            "OPTIONS /{}",
            "a".repeat(MAX_PATTERN_PATH_LEN - 1)
        ))
        .unwrap();
        // The longest prefix MethodArn::parse lets through: 32-char region and API id,
        // 128-char stage.
        let prefix = format!(
            "arn:aws-us-gov:execute-api:{}:123456789012:{}/{}/",
            "r".repeat(32),
            "a".repeat(32),
            "s".repeat(128)
        );
        assert!(p.resource_arn(&prefix).len() <= MAX_RESOURCE_ARN_LEN);
    }
}
