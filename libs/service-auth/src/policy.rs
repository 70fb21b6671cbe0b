//! The IAM policy an authorizer returns, as plain data.
//!
//! Built from the caller's permissions and the API stage only, never from the route
//! being called, so API Gateway's authorizer cache (keyed on the API key header) gives
//! the right answer for every route.
//!
//! [`StagePolicy`] is the rule (allow the caller's routes on the stage, or deny the
//! whole stage when none fits); it writes API Gateway's policy document straight from
//! the routes, building no string. [`Policy`] is the same answer built as data.

use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::method_arn::MethodArn;
use crate::permissions::{RoutePattern, MAX_RESOURCE_ARN_LEN};

pub const POLICY_VERSION: &str = "2012-10-17";
pub const INVOKE_ACTION: &str = "execute-api:Invoke";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    /// As IAM writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
        }
    }
}

/// One statement; the action is always `execute-api:Invoke`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    pub resources: Vec<String>,
}

impl Statement {
    pub fn allow(resources: Vec<String>) -> Self {
        Self {
            effect: Effect::Allow,
            resources,
        }
    }

    pub fn deny(resources: Vec<String>) -> Self {
        Self {
            effect: Effect::Deny,
            resources,
        }
    }
}

/// A policy as data. Serialises as API Gateway's policy document (`Version`,
/// `Statement`), as [`StagePolicy`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Allow exactly the service's permitted routes on this API stage. A service with
    /// no permissions gets an explicit Deny of the whole stage rather than an empty
    /// statement list (which API Gateway treats as a configuration error, a 500).
    pub fn for_service(permissions: &[RoutePattern], arn: &MethodArn) -> Self {
        StagePolicy::new(permissions, arn).build()
    }

    /// Deny every route of the stage.
    pub fn deny_stage(arn: &MethodArn) -> Self {
        StagePolicy::new(&[], arn).build()
    }
}

/// The policy of a caller with these routes on the stage of a method ARN, not built:
/// the Allow of each route's resource (a resource API Gateway would reject, longer
/// than [`MAX_RESOURCE_ARN_LEN`], is left out), or when none is left, the Deny of
/// the stage (`{stage prefix}*`).
#[derive(Debug, Clone, Copy)]
pub struct StagePolicy<'a> {
    prefix: &'a str,
    routes: &'a [RoutePattern],
}

impl<'a> StagePolicy<'a> {
    pub fn new(routes: &'a [RoutePattern], arn: &'a MethodArn) -> Self {
        Self {
            prefix: arn.stage_prefix(),
            routes,
        }
    }

    /// The routes whose resources are allowed.
    fn allowed(&self) -> impl Iterator<Item = &'a RoutePattern> + 'a {
        let prefix_len = self.prefix.len();
        // Cannot happen for patterns and ARNs that parsed (see the permissions
        // tests), but a resource API Gateway would reject must never be sent.
        self.routes
            .iter()
            .filter(move |p| prefix_len + p.resource_suffix().len() <= MAX_RESOURCE_ARN_LEN)
    }

    fn effect(&self) -> Effect {
        match self.allowed().next() {
            Some(_) => Effect::Allow,
            None => Effect::Deny,
        }
    }

    /// The same policy as data.
    pub fn build(&self) -> Policy {
        let statement = match self.effect() {
            Effect::Allow => Statement::allow(
                self.allowed()
                    .map(|p| p.resource_arn(self.prefix))
                    .collect(),
            ),
            Effect::Deny => Statement::deny(vec![format!("{}*", self.prefix)]),
        };
        Policy {
            statements: vec![statement],
        }
    }
}

/// API Gateway's policy document: `{"Version": "2012-10-17", "Statement": [...]}`,
/// each statement `{"Action": ["execute-api:Invoke"], "Effect": ..., "Resource": [...]}`
/// (the shape `aws_lambda_events` writes).
fn serialize_document<S, St>(serializer: S, statements: &[St]) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    St: Serialize,
{
    let mut doc = serializer.serialize_struct("PolicyDocument", 2)?;
    doc.serialize_field("Version", POLICY_VERSION)?;
    doc.serialize_field("Statement", statements)?;
    doc.end()
}

/// One statement with its resources written by `R`.
struct StatementOut<R> {
    effect: Effect,
    resources: R,
}

impl<R: Serialize> Serialize for StatementOut<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("Statement", 3)?;
        st.serialize_field("Action", &[INVOKE_ACTION])?;
        st.serialize_field("Effect", self.effect.as_str())?;
        st.serialize_field("Resource", &self.resources)?;
        st.end()
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let statements: Vec<StatementOut<&[String]>> = self
            .statements
            .iter()
            .map(|s| StatementOut {
                effect: s.effect,
                resources: s.resources.as_slice(),
            })
            .collect();
        serialize_document(serializer, &statements)
    }
}

/// The resources of a [`StagePolicy`], each written as prefix and suffix.
struct StageResources<'p, 'a>(&'p StagePolicy<'a>);

impl Serialize for StageResources<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let policy = self.0;
        let mut seq = serializer.serialize_seq(None)?;
        match policy.effect() {
            Effect::Allow => {
                for p in policy.allowed() {
                    seq.serialize_element(&Joined(policy.prefix, p.resource_suffix()))?;
                }
            }
            Effect::Deny => seq.serialize_element(&Joined(policy.prefix, "*"))?,
        }
        seq.end()
    }
}

/// Two strings written as one, without joining them first.
struct Joined<'a>(&'a str, &'a str);

impl Serialize for Joined<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}{}", self.0, self.1))
    }
}

impl Serialize for StagePolicy<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_document(
            serializer,
            &[StatementOut {
                effect: self.effect(),
                resources: StageResources(self),
            }],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(s: &str) -> MethodArn {
        MethodArn::parse(s).unwrap()
    }

    #[test]
    fn allows_exactly_the_permitted_routes() {
        let perms = vec![
            RoutePattern::parse("GET /internal/users/*").unwrap(),
            RoutePattern::parse("GET /internal/users/by-email/*").unwrap(),
        ];
        let p = Policy::for_service(
            &perms,
            &arn("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/internal/users"),
        );
        assert_eq!(
            p,
            Policy {
                statements: vec![Statement::allow(vec![
                    "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/internal/users/*".into(),
                    "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/internal/users/by-email/*".into(),
                ])]
            }
        );
    }

    #[test]
    fn no_permissions_is_an_explicit_deny() {
        let p = Policy::for_service(
            &[],
            &arn("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/x"),
        );
        assert_eq!(
            p.statements,
            vec![Statement::deny(vec![
                "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*".into()
            ])]
        );
        assert_eq!(p.statements[0].effect, Effect::Deny);
    }

    /// The policy written straight from the routes is the policy built as data, in
    /// API Gateway's document shape, for an Allow and for the Deny of a stage.
    #[test]
    fn the_stage_policy_writes_what_the_built_policy_holds() {
        let a = arn("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/x");
        let perms = vec![
            RoutePattern::parse("GET /internal/users/*").unwrap(),
            RoutePattern::parse("POST /internal/users").unwrap(),
        ];
        for routes in [&perms[..], &[]] {
            let view = StagePolicy::new(routes, &a);
            let built = serde_json::to_value(view.build()).unwrap();
            assert_eq!(serde_json::to_value(view).unwrap(), built);
            assert_eq!(built["Version"], POLICY_VERSION);
            assert_eq!(built["Statement"][0]["Action"][0], INVOKE_ACTION);
        }
        assert_eq!(
            serde_json::to_value(StagePolicy::new(&perms, &a)).unwrap(),
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": ["execute-api:Invoke"],
                    "Effect": "Allow",
                    "Resource": [
                        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/internal/users/*",
                        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/internal/users",
                    ]
                }]
            })
        );
    }
}
