//! IAM policy evaluation for `execute-api:Invoke`, as API Gateway applies an
//! authorizer's policy or a caller's IAM policies to a method ARN: an explicit Deny
//! wins, then any Allow, else the call is denied. Actions and resources match with
//! IAM's wildcards (`*` any run of characters, `?` one character); actions without
//! regard to case.

use serde_json::Value;
use service_auth::permissions::wildcard_match;

/// The only action API Gateway checks.
pub const INVOKE_ACTION: &str = "execute-api:Invoke";

/// One statement, reduced to what the evaluation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

/// Whether an IAM action pattern covers `action` (`execute-api:*`, `*`, ...).
pub fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(
        pattern.to_ascii_lowercase().as_bytes(),
        action.to_ascii_lowercase().as_bytes(),
    )
}

/// Evaluates `statements` for `execute-api:Invoke` on `resource`.
pub fn evaluate(statements: &[Statement], resource: &str) -> Outcome {
    let mut allowed = false;
    for s in statements {
        let applies = s.actions.iter().any(|a| action_matches(a, INVOKE_ACTION))
            && s.resources
                .iter()
                .any(|r| wildcard_match(r.as_bytes(), resource.as_bytes()));
        if !applies {
            continue;
        }
        if !s.allow {
            return Outcome::ExplicitDeny;
        }
        allowed = true;
    }
    if allowed {
        Outcome::Allow
    } else {
        Outcome::ImplicitDeny
    }
}

/// Why an authorizer's `policyDocument` cannot be used (API Gateway: 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy document: {0}")]
pub struct PolicyError(pub &'static str);

/// Reads a `policyDocument` as an authorizer returns it: `Statement` an object or a
/// list; `Action` and `Resource` a string or a list of strings; `Effect` `Allow` or
/// `Deny`.
pub fn parse_document(doc: &Value) -> Result<Vec<Statement>, PolicyError> {
    let obj = doc.as_object().ok_or(PolicyError("not an object"))?;
    let st = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Statement"))
        .map(|(_, v)| v)
        .ok_or(PolicyError("no Statement"))?;
    let list: Vec<&Value> = match st {
        Value::Array(a) => a.iter().collect(),
        o @ Value::Object(_) => vec![o],
        _ => return Err(PolicyError("Statement is not a list")),
    };
    let strings = |v: Option<&Value>, what: &'static str| -> Result<Vec<String>, PolicyError> {
        match v {
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned).ok_or(PolicyError(what)))
                .collect(),
            _ => Err(PolicyError(what)),
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let o = s
            .as_object()
            .ok_or(PolicyError("a statement is not an object"))?;
        let get = |k: &str| {
            o.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let allow = match get("Effect").and_then(Value::as_str) {
            Some(e) if e.eq_ignore_ascii_case("Allow") => true,
            Some(e) if e.eq_ignore_ascii_case("Deny") => false,
            _ => return Err(PolicyError("Effect is not Allow or Deny")),
        };
        if get("Condition").is_some() || get("NotAction").is_some() || get("NotResource").is_some()
        {
            return Err(PolicyError(
                "Condition, NotAction and NotResource are not emulated",
            ));
        }
        out.push(Statement {
            allow,
            actions: strings(get("Action"), "Action is not a string or list of strings")?,
            resources: strings(
                get("Resource"),
                "Resource is not a string or list of strings",
            )?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str =
        "arn:aws:execute-api:us-east-1:123456789012:identitykey/v1/GET/internal/users/42";

    fn st(allow: bool, action: &str, resource: &str) -> Statement {
        Statement {
            allow,
            actions: vec![action.into()],
            resources: vec![resource.into()],
        }
    }

    #[test]
    fn allow_deny_and_wildcards() {
        let allow_users = st(
            true,
            "execute-api:Invoke",
            "arn:aws:execute-api:us-east-1:123456789012:identitykey/v1/GET/internal/users/*",
        );
        assert_eq!(
            evaluate(std::slice::from_ref(&allow_users), ARN),
            Outcome::Allow
        );
        assert_eq!(evaluate(&[], ARN), Outcome::ImplicitDeny);
        // `?` is one character.
        let q = st(
            true,
            "execute-api:*",
            "arn:aws:execute-api:us-east-1:123456789012:identitykey/v1/GET/internal/users/4?",
        );
        assert_eq!(evaluate(std::slice::from_ref(&q), ARN), Outcome::Allow);
        assert_eq!(evaluate(&[q], &format!("{ARN}2")), Outcome::ImplicitDeny);
        // Another API or stage is not covered.
        assert_eq!(
            evaluate(
                std::slice::from_ref(&allow_users),
                &ARN.replace("identitykey", "tutorkey")
            ),
            Outcome::ImplicitDeny
        );
        // An explicit Deny wins, in any order.
        let deny = st(
            false,
            "*",
            "arn:aws:execute-api:*:*:*/*/GET/internal/users/42",
        );
        assert_eq!(
            evaluate(&[allow_users.clone(), deny.clone()], ARN),
            Outcome::ExplicitDeny
        );
        assert_eq!(
            evaluate(&[deny, allow_users.clone()], ARN),
            Outcome::ExplicitDeny
        );
        // Other actions do not grant invoke; action names ignore case.
        assert_eq!(
            evaluate(&[st(true, "execute-api:ManageConnections", "*")], ARN),
            Outcome::ImplicitDeny
        );
        assert_eq!(
            evaluate(&[st(true, "EXECUTE-API:invoke", "*")], ARN),
            Outcome::Allow
        );
    }

    #[test]
    fn documents_parse_in_both_shapes() {
        let doc = json!({"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": ["execute-api:Invoke"], "Resource": "*"}});
        let s = parse_document(&doc).unwrap();
        assert_eq!(s, vec![st(false, "execute-api:Invoke", "*")]);
        for bad in [
            json!(null),
            json!({"Statement": [{"Effect": "Maybe", "Action": "a", "Resource": "r"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": 1, "Resource": "r"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "a"}]}),
            json!({"Version": "2012-10-17"}),
        ] {
            assert!(parse_document(&bad).is_err(), "{bad}");
        }
    }
}
