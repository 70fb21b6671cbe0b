//! The `methodArn` API Gateway passes to a REST authorizer, parsed strictly.
//!
//! `arn:{partition}:execute-api:{region}:{account}:{apiId}/{stage}/{VERB}/{path}`

/// The longest method ARN API Gateway sends (its documented quota).
pub const MAX_METHOD_ARN_LEN: usize = 1600;

/// A method ARN, checked part by part and kept as its text: every part, the stage
/// prefix and the route suffix are slices of it, so a parse allocates at most once
/// (never with [`MethodArn::parse_owned`]) and a decision builds no part again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn {
    text: String,
    /// Byte ranges of the parts in `text` (the ARN is at most 1600 bytes).
    partition: Span,
    region: Span,
    account: Span,
    api_id: Span,
    stage: Span,
    verb: Span,
    /// Where the path starts (after the `/` that ends the verb).
    path_start: u16,
}

/// A part's byte range in the ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(u16, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MethodArnError {
    #[error("the method ARN is missing")]
    Missing,
    #[error("the method ARN is longer than {MAX_METHOD_ARN_LEN} bytes")]
    TooLong,
    #[error("the method ARN is not an execute-api ARN")]
    NotExecuteApi,
    #[error("the method ARN has a malformed {0}")]
    BadPart(&'static str),
}

impl MethodArn {
    pub fn parse(arn: &str) -> Result<Self, MethodArnError> {
        let layout = Layout::check(arn)?;
        Ok(layout.keep(arn.to_owned()))
    }

    /// [`MethodArn::parse`] keeping the given text (no copy): for the event's own
    /// string.
    pub fn parse_owned(arn: String) -> Result<Self, MethodArnError> {
        let layout = Layout::check(&arn)?;
        Ok(layout.keep(arn))
    }

    /// The whole ARN.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn part(&self, span: Span) -> &str {
        &self.text[span.0 as usize..span.1 as usize]
    }

    /// `aws`, `aws-cn`, ...
    pub fn partition(&self) -> &str {
        self.part(self.partition)
    }

    pub fn region(&self) -> &str {
        self.part(self.region)
    }

    pub fn account(&self) -> &str {
        self.part(self.account)
    }

    pub fn api_id(&self) -> &str {
        self.part(self.api_id)
    }

    pub fn stage(&self) -> &str {
        self.part(self.stage)
    }

    /// `GET`, `POST`, ... or `ANY`.
    pub fn verb(&self) -> &str {
        self.part(self.verb)
    }

    /// The resource path without its leading `/` (empty for the root resource).
    pub fn path(&self) -> &str {
        &self.text[self.path_start as usize..]
    }

    /// The API id of a method ARN without parsing the rest, for looking up the API's
    /// name before the decision: the text between the fifth `:` and the next `/`, if
    /// it is a well-formed API id. [`MethodArn::parse`] still checks the whole ARN.
    pub fn api_id_of(arn: &str) -> Option<&str> {
        let resource = arn.splitn(6, ':').nth(5)?;
        let id = resource.split('/').next()?;
        valid_api_id(id).then_some(id)
    }

    /// The ARN prefix every policy resource for this API stage starts with:
    /// `arn:aws:execute-api:us-east-1:123456789012:abc123/prod/`.
    pub fn stage_prefix(&self) -> &str {
        &self.text[..self.verb.0 as usize]
    }

    /// `VERB/path`: the part of this ARN after [`MethodArn::stage_prefix`].
    pub fn route_suffix(&self) -> &str {
        &self.text[self.verb.0 as usize..]
    }

    /// The route as `VERB /path`, for logs.
    pub fn route(&self) -> String {
        format!("{} /{}", self.verb(), self.path())
    }
}

const EXECUTE_API: &str = "execute-api";

/// Where the parts of a well-formed method ARN are.
struct Layout {
    partition: Span,
    region: Span,
    account: Span,
    api_id: Span,
    stage: Span,
    verb: Span,
    path_start: u16,
}

impl Layout {
    fn check(arn: &str) -> Result<Self, MethodArnError> {
        if arn.is_empty() {
            return Err(MethodArnError::Missing);
        }
        if arn.len() > MAX_METHOD_ARN_LEN {
            return Err(MethodArnError::TooLong);
        }
        // The first five `:` split `arn:{partition}:execute-api:{region}:{account}:`
        // from the resource (which may hold more); one pass, no searcher per part.
        let mut colons = [0usize; 5];
        let mut found = 0;
        for (i, &b) in arn.as_bytes().iter().enumerate() {
            if b == b':' {
                colons[found] = i;
                found += 1;
                if found == colons.len() {
                    break;
                }
            }
        }
        if found < colons.len() {
            return Err(MethodArnError::NotExecuteApi);
        }
        let [c0, c1, c2, c3, c4] = colons;
        let (partition, region, account) = (&arn[c0 + 1..c1], &arn[c2 + 1..c3], &arn[c3 + 1..c4]);
        let resource = &arn[c4 + 1..];
        if &arn[..c0] != "arn" || &arn[c1 + 1..c2] != EXECUTE_API {
            return Err(MethodArnError::NotExecuteApi);
        }
        if !matches!(
            partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b"
        ) {
            return Err(MethodArnError::BadPart("partition"));
        }
        if region.is_empty()
            || region.len() > 32
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(MethodArnError::BadPart("region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MethodArnError::BadPart("account"));
        }
        // `{apiId}/{stage}/{VERB}/{path}`: the first three `/` (the path may hold more).
        let mut slashes = [resource.len(); 3];
        let mut found = 0;
        for (i, &b) in resource.as_bytes().iter().enumerate() {
            if b == b'/' {
                slashes[found] = i;
                found += 1;
                if found == slashes.len() {
                    break;
                }
            }
        }
        let [s0, s1, s2] = slashes;
        let part = |from: usize, to: usize| resource.get(from..to).unwrap_or_default();
        let api_id = &resource[..s0];
        let stage = part(s0 + 1, s1);
        let verb = part(s1 + 1, s2);
        let path = (found == slashes.len()).then(|| &resource[s2 + 1..]);
        if !valid_api_id(api_id) {
            return Err(MethodArnError::BadPart("API id"));
        }
        if stage.is_empty()
            || stage.len() > 128
            || !stage
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(MethodArnError::BadPart("stage"));
        }
        if !is_verb(verb) {
            return Err(MethodArnError::BadPart("HTTP method"));
        }
        let path = path.ok_or(MethodArnError::BadPart("path"))?;
        // API Gateway puts the request path here as received (already URL-decoded
        // segments may hold many characters, `*` and `?` too: both are legal in an
        // email's local part). The policy never depends on the path, so they are
        // accepted; refusing them made a valid key's answer depend on the route, which
        // API Gateway's per-key result cache cannot honour. Control characters are
        // refused.
        if path.bytes().any(|b| b.is_ascii_control()) {
            return Err(MethodArnError::BadPart("path"));
        }
        // Every part is a slice of `arn` (at most 1600 bytes: each offset fits u16).
        let at = |part: &str| {
            let start = part.as_ptr() as usize - arn.as_ptr() as usize;
            Span(start as u16, (start + part.len()) as u16)
        };
        Ok(Self {
            partition: at(partition),
            region: at(region),
            account: at(account),
            api_id: at(api_id),
            stage: at(stage),
            verb: at(verb),
            path_start: at(path).0,
        })
    }

    fn keep(self, text: String) -> MethodArn {
        MethodArn {
            text,
            partition: self.partition,
            region: self.region,
            account: self.account,
            api_id: self.api_id,
            stage: self.stage,
            verb: self.verb,
            path_start: self.path_start,
        }
    }
}

/// 1 to 32 ASCII letters and digits, as API Gateway makes them.
fn valid_api_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_verb(v: &str) -> bool {
    matches!(
        v,
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" | "ANY"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_method_arn() {
        let arn = MethodArn::parse(
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/42",
        )
        .unwrap();
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.region(), "eu-west-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.api_id(), "a1b2c3d4e5");
        assert_eq!(arn.stage(), "prod");
        assert_eq!(arn.verb(), "GET");
        assert_eq!(arn.path(), "internal/users/42");
        assert_eq!(
            arn.stage_prefix(),
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/"
        );
        assert_eq!(arn.route(), "GET /internal/users/42");
        assert_eq!(arn.route_suffix(), "GET/internal/users/42");
        // Parsing the event's own string keeps it, and reads it the same way.
        assert_eq!(
            MethodArn::parse_owned(arn.as_str().to_owned()),
            Ok(arn.clone())
        );
        let gov =
            MethodArn::parse("arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:x/s/ANY/")
                .unwrap();
        assert_eq!(
            (
                gov.partition(),
                gov.region(),
                gov.api_id(),
                gov.stage(),
                gov.verb(),
                gov.path()
            ),
            ("aws-us-gov", "us-gov-west-1", "x", "s", "ANY", "")
        );
    }

    #[test]
    fn api_id_of_reads_only_a_well_formed_id() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/x";
        assert_eq!(MethodArn::api_id_of(arn), Some("a1b2c3d4e5"));
        assert_eq!(
            MethodArn::api_id_of(arn),
            Some(MethodArn::parse(arn).unwrap().api_id())
        );
        for bad in [
            "",
            "arn:aws:execute-api:eu-west-1:123456789012",
            "arn:aws:execute-api:eu-west-1:123456789012:/prod/GET/x",
            "arn:aws:execute-api:eu-west-1:123456789012:a*/prod/GET/x",
            "arn:aws:execute-api:eu-west-1:123456789012:../prod/GET/x",
        ] {
            assert_eq!(MethodArn::api_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn root_resource_has_empty_path() {
        let arn =
            MethodArn::parse("arn:aws:execute-api:us-east-1:123456789012:abc/test/GET/").unwrap();
        assert_eq!(arn.path(), "");
    }

    /// Issue 9 item 6: `*` and `?` are legal in a path (an email's local part).
    #[test]
    fn path_with_star_or_question_mark_is_accepted() {
        let arn = MethodArn::parse(
            "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/internal/users/by-email/a*b?c@example.com",
        )
        .unwrap();
        assert_eq!(arn.path(), "internal/users/by-email/a*b?c@example.com");
        assert_eq!(
            arn.stage_prefix(),
            "arn:aws:execute-api:us-east-1:123456789012:abc/prod/"
        );
    }

    #[test]
    fn rejects_malformed_arns() {
        let long = format!(
            "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/{}",
            "a".repeat(MAX_METHOD_ARN_LEN)
        );
        let cases: &[(&str, MethodArnError)] = &[
            ("", MethodArnError::Missing),
            (&long, MethodArnError::TooLong),
            (
                "arn:aws:lambda:us-east-1:123456789012:function/x",
                MethodArnError::NotExecuteApi,
            ),
            ("not an arn", MethodArnError::NotExecuteApi),
            (
                "arn:aws:execute-api:us-east-1:123456789012",
                MethodArnError::NotExecuteApi,
            ),
            (
                "arn:evil:execute-api:us-east-1:123456789012:abc/prod/GET/x",
                MethodArnError::BadPart("partition"),
            ),
            (
                "arn:aws:execute-api:US-EAST-1:123456789012:abc/prod/GET/x",
                MethodArnError::BadPart("region"),
            ),
            (
                "arn:aws:execute-api:us-east-1:1234:abc/prod/GET/x",
                MethodArnError::BadPart("account"),
            ),
            (
                "arn:aws:execute-api:us-east-1:123456789012:*/prod/GET/x",
                MethodArnError::BadPart("API id"),
            ),
            (
                "arn:aws:execute-api:us-east-1:123456789012:abc/*/GET/x",
                MethodArnError::BadPart("stage"),
            ),
            (
                "arn:aws:execute-api:us-east-1:123456789012:abc/prod/FETCH/x",
                MethodArnError::BadPart("HTTP method"),
            ),
            (
                "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET",
                MethodArnError::BadPart("path"),
            ),
            (
                "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/x\n",
                MethodArnError::BadPart("path"),
            ),
            (
                "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/x\u{7f}",
                MethodArnError::BadPart("path"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(MethodArn::parse(input).unwrap_err(), *want, "{input:?}");
        }
    }

    /// The ARN check as first written (`splitn` per part), kept as the reference the
    /// one-pass check must agree with: the same error, or the same parts.
    fn reference(arn: &str) -> Result<[String; 7], MethodArnError> {
        if arn.is_empty() {
            return Err(MethodArnError::Missing);
        }
        if arn.len() > MAX_METHOD_ARN_LEN {
            return Err(MethodArnError::TooLong);
        }
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("execute-api"),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(MethodArnError::NotExecuteApi);
        };
        if !matches!(
            partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b"
        ) {
            return Err(MethodArnError::BadPart("partition"));
        }
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(MethodArnError::BadPart("region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MethodArnError::BadPart("account"));
        }
        let mut segs = resource.splitn(4, '/');
        let api_id = segs.next().unwrap_or_default();
        let stage = segs.next().unwrap_or_default();
        let verb = segs.next().unwrap_or_default();
        let path = segs.next();
        if !valid_api_id(api_id) {
            return Err(MethodArnError::BadPart("API id"));
        }
        let stage_ok = !stage.is_empty()
            && stage.len() <= 128
            && stage
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !stage_ok {
            return Err(MethodArnError::BadPart("stage"));
        }
        if !is_verb(verb) {
            return Err(MethodArnError::BadPart("HTTP method"));
        }
        let path = path.ok_or(MethodArnError::BadPart("path"))?;
        if path.bytes().any(|b| b.is_ascii_control()) {
            return Err(MethodArnError::BadPart("path"));
        }
        Ok([partition, region, account, api_id, stage, verb, path].map(str::to_owned))
    }

    proptest::proptest! {
        /// Method ARNs with characters changed, inserted or removed (`:` and `/`
        /// among them) are judged, and split, exactly as the reference does.
        #[test]
        fn the_one_pass_parse_agrees_with_the_reference(
            edits in proptest::collection::vec((0usize..90, 0u8..4, "[a-zA-Z0-9:/*?\\- \n]"), 0..4),
        ) {
            let mut text =
                "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/internal/users/42"
                    .to_owned();
            crate::test_edits::apply(&mut text, edits);
            let parsed = MethodArn::parse(&text).map(|a| {
                [a.partition(), a.region(), a.account(), a.api_id(), a.stage(), a.verb(), a.path()]
                    .map(str::to_owned)
            });
            proptest::prop_assert_eq!(parsed, reference(&text), "{:?}", text);
        }
    }
}
