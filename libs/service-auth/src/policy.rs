//! The IAM policy an authorizer returns, as plain data.
//!
//! Built from the caller's permissions and the API stage only, never from the route
//! being called, so API Gateway's authorizer cache (keyed on the API key header) gives
//! the right answer for every route.

use crate::method_arn::MethodArn;
use crate::permissions::{RoutePattern, MAX_RESOURCE_ARN_LEN};

pub const POLICY_VERSION: &str = "2012-10-17";
pub const INVOKE_ACTION: &str = "execute-api:Invoke";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Allow exactly the service's permitted routes on this API stage. A service with
    /// no permissions gets an explicit Deny of the whole stage rather than an empty
    /// statement list (which API Gateway treats as a configuration error, a 500).
    pub fn for_service(permissions: &[RoutePattern], arn: &MethodArn) -> Self {
        let prefix = arn.stage_prefix();
        let resources: Vec<String> = permissions
            .iter()
            .map(|p| p.resource_arn(&prefix))
            // Cannot happen for patterns and ARNs that parsed (see the permissions
            // tests), but a resource API Gateway would reject must never be sent.
            .filter(|r| r.len() <= MAX_RESOURCE_ARN_LEN)
            .collect();
        if resources.is_empty() {
            return Self::deny_stage(arn);
        }
        Self {
            statements: vec![Statement::allow(resources)],
        }
    }

    /// Deny every route of the stage.
    pub fn deny_stage(arn: &MethodArn) -> Self {
        Self {
            statements: vec![Statement::deny(vec![format!("{}*", arn.stage_prefix())])],
        }
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
}
