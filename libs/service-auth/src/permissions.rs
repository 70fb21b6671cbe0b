//! A service's permissions: `METHOD /path` patterns with `*` wildcards, the same shape
//! as the `execute-api:Invoke` resources of the original design's IAM policies.
//!
//! `GET /internal/users/*` lets a service call every GET below `/internal/users/`;
//! `* /internal/*` lets it call every method below `/internal/`. As in IAM, `*`
//! matches any run of characters, `/` included.

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
    #[error("a permission's path must start with `/`, be at most {MAX_PATTERN_PATH_LEN} characters, and use only URL path characters and `*`")]
    Path,
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
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"/-._~*{}%+@:=,".contains(&b);
        if !path.starts_with('/') || path.len() > MAX_PATTERN_PATH_LEN || !path.bytes().all(allowed)
        {
            return Err(PatternError::Path);
        }
        let resource_suffix = resource_suffix(&method, path);
        Ok(Self {
            method,
            path: path.to_owned(),
            resource_suffix,
        })
    }

    /// The policy resource for this pattern on the API stage of `stage_prefix`
    /// ([`MethodArn::stage_prefix`]).
    pub fn resource_arn(&self, stage_prefix: &str) -> String {
        let mut out = String::with_capacity(stage_prefix.len() + self.resource_suffix.len());
        out.push_str(stage_prefix);
        out.push_str(&self.resource_suffix);
        out
    }

    /// Whether this pattern covers `VERB/path` (the method ARN's part after the stage
    /// prefix, see [`MethodArn::route_suffix`]), with IAM's wildcard semantics. Used for
    /// the audit log line; API Gateway makes the real decision from the policy.
    pub fn matches_suffix(&self, route_suffix: &str) -> bool {
        wildcard_match(self.resource_suffix.as_bytes(), route_suffix.as_bytes())
    }

    /// [`RoutePattern::matches_suffix`] for a whole method ARN.
    pub fn matches(&self, arn: &MethodArn) -> bool {
        self.matches_suffix(&arn.route_suffix())
    }
}

/// `{param}` segments become `*`, as API Gateway puts the concrete value in the method
/// ARN.
fn resource_suffix(method: &str, path: &str) -> String {
    let mut out = String::with_capacity(method.len() + path.len());
    out.push_str(method);
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('*');
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
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
