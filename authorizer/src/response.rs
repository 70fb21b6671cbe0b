//! What the authorizer answers an allowed caller: API Gateway's authorizer response
//! (principal, policy, context, usage-plan key), written straight from the decision.
//!
//! [`Response`] holds the grant itself and serialises it into the JSON API Gateway
//! reads (the shape of `aws_lambda_events`' `ApiGatewayCustomAuthorizerResponse`): no
//! policy string, context map or copy of a name is built on the way. A reader that
//! wants the typed form (the local gateway's tests, the key tool's tests) gets it with
//! [`Response::to_aws`], read back from that JSON, so there is one way to write it.

use std::borrow::Cow;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;
use service_auth::{context, Grant};

use crate::token::TokenGrant;

/// The typed form of a response (`aws_lambda_events`), see [`Response::to_aws`].
pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<Value>;

/// The answer to an allowed caller: its policy on the called API stage (the same for
/// every route), its context and its usage-plan key.
#[derive(Debug, Clone)]
pub struct Response(Answer);

#[derive(Debug, Clone)]
enum Answer {
    Key(Grant),
    Token(TokenGrant),
}

impl Response {
    /// The answer to a caller with a valid API key.
    pub fn key(grant: Grant) -> Self {
        Self(Answer::Key(grant))
    }

    /// The answer to a caller with a valid token.
    pub fn token(grant: TokenGrant) -> Self {
        Self(Answer::Token(grant))
    }

    /// The calling service (`principalId`).
    pub fn principal_id(&self) -> &str {
        match &self.0 {
            Answer::Key(g) => &g.service.service,
            Answer::Token(g) => &g.claims.sub,
        }
    }

    /// The service's usage-plan API key value (`usageIdentifierKey`), when it has one.
    pub fn usage_identifier_key(&self) -> Option<&str> {
        match &self.0 {
            Answer::Key(g) => g.service.usage_plan_key.as_deref(),
            Answer::Token(g) => g.usage_plan_key.as_deref(),
        }
    }

    /// The response as `aws_lambda_events` types, read from its JSON.
    pub fn to_aws(&self) -> AuthorizerResponse {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .expect("a response reads back as API Gateway's response type")
    }
}

impl From<Response> for AuthorizerResponse {
    fn from(r: Response) -> Self {
        r.to_aws()
    }
}

/// The context, written as a JSON object from its entries (strings only: API Gateway
/// fails the request on an array or object).
struct ContextOut<F>(F);

impl<'a, F, I> Serialize for ContextOut<F>
where
    F: Fn() -> I,
    I: Iterator<Item = (&'static str, Cow<'a, str>)>,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map((self.0)())
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("ApiGatewayCustomAuthorizerResponse", 4)?;
        out.serialize_field("principalId", self.principal_id())?;
        match &self.0 {
            Answer::Key(g) => {
                out.serialize_field("policyDocument", &g.stage_policy())?;
                out.serialize_field("context", &ContextOut(|| context::entries(g)))?;
            }
            Answer::Token(g) => {
                out.serialize_field("policyDocument", &g.policy)?;
                out.serialize_field("context", &ContextOut(|| g.context_entries()))?;
            }
        }
        out.serialize_field("usageIdentifierKey", &self.usage_identifier_key())?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use service_auth::decision::{decide, AuthRequest, Decision};
    use service_auth::identity::{identify, AuthMethod, IamRoleMap, ServiceIdentity, TokenProof};
    use service_auth::policy::Policy;
    use service_auth::UnixTime;
    use service_auth::{ApiGrant, ApiKey, KeyId, KeyRecord, KeyStore, MethodArn, ServiceDocument};
    use service_token::{Proof, TokenClaims};

    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/x";

    /// What a backend reads from the context of this answer, through the backends' reader.
    fn read_back(response: Response) -> ServiceIdentity {
        let answer = serde_json::to_value(response).unwrap();
        let context = answer["context"].as_object().unwrap();
        identify(
            |k| context.get(k).and_then(Value::as_str),
            None,
            &IamRoleMap::default(),
        )
        .unwrap()
    }

    #[test]
    fn an_api_key_callers_answer_reads_back_as_that_key() {
        let key = ApiKey::generate(None).unwrap();
        let mut doc = ServiceDocument::new(
            "tutor-service",
            vec![ApiGrant::new(&["identity"], &["GET /x"])],
        );
        doc.keys
            .push(KeyRecord::for_key(&key, UnixTime(1), Some(UnixTime(9_999))));
        let store = KeyStore::build(&[doc], &[]).unwrap();
        let ask = AuthRequest {
            api_key_values: &[key.expose_secret()],
            method_arn: Some(ARN),
            api_name: Some("identity"),
        };
        let Decision::Allow(grant) = decide(Some(&store), &ask, UnixTime(100)) else {
            panic!("not allowed")
        };
        let id = read_back(Response::key(grant));
        assert_eq!(id.service, "tutor-service");
        assert_eq!(
            id.method,
            AuthMethod::ApiKey {
                key_id: key.key_id()
            }
        );
    }

    #[test]
    fn a_token_callers_answer_reads_back_for_each_proof() {
        let arn = MethodArn::parse(ARN).unwrap();
        let key_id = "kid_0123456789abcdef";
        let proofs = [
            (
                Proof::ApiKey {
                    key_id: key_id.into(),
                },
                TokenProof::ApiKey {
                    key_id: KeyId::parse(key_id).unwrap(),
                },
            ),
            (
                Proof::Iam {
                    role_arn: "arn:aws:iam::123456789012:role/tutor".into(),
                },
                TokenProof::Iam,
            ),
        ];
        for (proof, read) in proofs {
            let grant = TokenGrant {
                claims: TokenClaims {
                    iss: "svcauth:dev".into(),
                    sub: "tutor-service".into(),
                    aud: vec!["identity".into()],
                    exp: 10_600,
                    nbf: 10_000,
                    iat: 10_000,
                    jti: "0f8e6b2c-jti".into(),
                    permissions: Vec::new(),
                    proof,
                },
                kid: "key-2026-12".into(),
                policy: Policy::for_service(&[], &arn),
                route_permitted: false,
                api_registered: true,
                usage_plan_key: None,
            };
            assert_eq!(
                read_back(Response::token(grant)),
                ServiceIdentity {
                    service: "tutor-service".into(),
                    method: AuthMethod::Token {
                        token_id: "0f8e6b2c-jti".into(),
                        expires_at: UnixTime(10_600),
                        proof: read,
                    },
                }
            );
        }
    }
}
