//! Who may call which route, by which proof, and why: decided from plain inputs
//! ([`Sources`]: the templates' model, the service documents, revocation markers, the
//! API names, the time), with the code that decides for real.
//!
//! * `api-key`: the route's authorizer configuration as the authorizer reads it
//!   ([`authorizer::Config::from_lookup`] on the function's environment), the key
//!   store as the authorizer builds it ([`KeyStore::build`] plus revocation markers),
//!   the policy it returns ([`Policy::for_service`] on the API's registered name), and
//!   API Gateway's evaluation of that policy for every call of the route
//!   ([`sam_template::iam`]).
//! * `iam`: the backend's role map ([`identify`] with its `SVCAUTH_IAM_ROLES`) and the
//!   mapped roles' policies from the templates, evaluated with IAM's rules.
//! * `token`: whether the service gets a token at all (its `api-key` or `iam` answer
//!   on the token issuer's routes, then the issuer's own rules,
//!   [`token_issuer::issue::claims_for`]), and the token's routes for the API
//!   ([`TokenClaims::routes_for`]) through the same policy and evaluation.
//!
//! What cannot be decided is [`Answer::Unknown`] with the reason. Assumed throughout:
//! a call comes through the network path the APIs' resource policies require
//! (their `aws:SourceVpce`-style conditions are the same for every caller).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sam_template::iam::{
    self, coverage_of_all, Coverage, IamAnswer, PolicyStatement, ResourceTemplate, ANY_METHODS,
};
use sam_template::template::{EnvValue, FunctionDef, Model, RoleDef, RouteAuth};
use service_auth::identity::{identify, AuthMethod, IamRoleMap, ServiceIdentity};
use service_auth::permissions::wildcard_match;
use service_auth::policy::{Effect, Policy};
use service_auth::store::ServiceGrant;
use service_auth::{KeyId, KeyStore, MethodArn, RoutePattern, ServiceDocument, UnixTime};
use service_token::TokenClaims;

/// The id of a route row made up for one answer (nothing is remembered for it).
const NO_ROUTE_ID: usize = usize::MAX;
/// The rule of an answer that the route's lack of authorization decides.
pub const OPEN_RULE: &str = "Auth: NONE";
/// The env var a backend maps IAM roles to services with.
const ROLE_MAP_ENV: &str = "SVCAUTH_IAM_ROLES";
/// The binary of the token issuer function (its `Metadata.BuildProperties.Binary`).
const ISSUER_BINARY: &str = "token-issuer";
/// The issuer's routes: a proof by key, a proof by IAM role.
const TOKEN_BY_KEY: (&str, &str) = ("POST", "/token");
const TOKEN_BY_ROLE: (&str, &str) = ("POST", "/token/iam");
/// Resource-policy condition keys about the network path only: the same for every
/// caller, so assumed met (see the module doc).
const NETWORK_KEYS: [&str; 4] = [
    "aws:sourcevpce",
    "aws:sourcevpc",
    "aws:sourceip",
    "aws:vpcsourceip",
];

/// Where API names come from.
#[derive(Debug, Clone)]
pub enum Registry {
    /// API id → name, authoritative for the ids given (`--api-names`, as the
    /// authorizer's SVCAUTH_API_NAMES, or the development defaults).
    ById {
        names: BTreeMap<String, String>,
        label: String,
    },
    /// Name → deployed API id (the store's registry): a template API is registered
    /// when the name its template declares is there.
    ByName {
        ids: BTreeMap<String, String>,
        label: String,
        /// Entries not trusted (a `String` parameter: anyone allowed to put parameters
        /// could have written it), by parameter name.
        ignored: Vec<String>,
    },
    /// None given: the names the templates declare are taken as registered.
    Declared,
}

/// Everything the answers are decided from.
pub struct Sources {
    pub model: Model,
    pub documents: Vec<ServiceDocument>,
    /// Key ids with a revocation marker.
    pub revoked: HashSet<KeyId>,
    pub registry: Registry,
    pub region: String,
    pub account: String,
    pub now: UnixTime,
}

/// The proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    ApiKey,
    Iam,
    Token,
}

impl Via {
    pub const ALL: [Via; 3] = [Via::ApiKey, Via::Iam, Via::Token];

    pub fn name(self) -> &'static str {
        match self {
            Via::ApiKey => "api-key",
            Via::Iam => "iam",
            Via::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<Via> {
        Via::ALL.into_iter().find(|v| v.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    Refused,
    Unknown,
}

impl Answer {
    /// `true`, `false`, or `None` for unknown.
    pub fn allowed(self) -> Option<bool> {
        match self {
            Answer::Allowed => Some(true),
            Answer::Refused => Some(false),
            Answer::Unknown => None,
        }
    }
}

/// One answer: may `service` call `route` of `api` with this proof?
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    pub service: &'a str,
    pub api: &'a str,
    pub route: &'a str,
    pub via: Via,
    pub answer: Answer,
    pub reason: Cow<'a, str>,
    /// The grant, policy statement or rule that decides it, when one does.
    pub rule: Option<Cow<'a, str>>,
}

/// An answer before it is placed in a cell.
#[derive(Debug, Clone)]
struct Verdict<'a> {
    answer: Answer,
    reason: Cow<'a, str>,
    rule: Option<Cow<'a, str>>,
}

impl<'a> Verdict<'a> {
    fn new(answer: Answer, reason: impl Into<Cow<'a, str>>) -> Self {
        Self {
            answer,
            reason: reason.into(),
            rule: None,
        }
    }

    fn refused(reason: impl Into<Cow<'a, str>>) -> Self {
        Self::new(Answer::Refused, reason)
    }

    fn unknown(reason: impl Into<Cow<'a, str>>) -> Self {
        Self::new(Answer::Unknown, reason)
    }

    fn with_rule(mut self, rule: impl Into<Cow<'a, str>>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// The same answer, borrowing this one's text.
    fn borrowed(&self) -> Verdict<'_> {
        Verdict {
            answer: self.answer,
            reason: Cow::Borrowed(&self.reason),
            rule: self.rule.as_deref().map(Cow::Borrowed),
        }
    }

    fn into_owned(self) -> Verdict<'static> {
        Verdict {
            answer: self.answer,
            reason: Cow::Owned(self.reason.into_owned()),
            rule: self.rule.map(|r| Cow::Owned(r.into_owned())),
        }
    }
}

/// How an API is named for the authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiName {
    /// Registered under this name: how we know.
    Registered { name: String, how: String },
    /// Not registered: the authorizer allows nothing on it.
    Unregistered { why: String },
}

/// What a route takes.
#[derive(Debug, Clone)]
enum RouteKind {
    /// No authorization.
    Open,
    /// SigV4; the serving function's role map (an index into [`Access::role_maps`]).
    Iam { role_map: usize },
    /// A REQUEST authorizer: which proofs its configuration accepts, or why it
    /// refuses everything.
    Authorizer {
        name: String,
        function: String,
        accept: Result<authorizer::Accept, String>,
    },
    /// An API no template given defines (its routes are grant patterns).
    Untemplated,
}

/// One route of one API, ready to decide.
#[derive(Debug, Clone)]
pub struct RouteRow {
    /// `GET /internal/users/{id}`.
    pub route: String,
    /// Its index among every route of every API ([`NO_ROUTE_ID`] for a call made up
    /// for one answer): where what patterns cover of it is remembered.
    id: usize,
    kind: RouteKind,
    /// What the route's authorization alone decides, per proof (by [`Via`] index).
    gates: [Option<Verdict<'static>>; 3],
    /// The method ARNs of the route (one per method of `ANY`).
    templates: Vec<ResourceTemplate>,
    is_issuer: bool,
}

/// One API.
#[derive(Debug, Clone)]
pub struct ApiRow {
    /// The name when registered, else the template's logical id.
    pub label: String,
    pub logical_id: Option<String>,
    pub api_id: String,
    pub name: ApiName,
    pub api_key_required: bool,
    /// `arn:aws:execute-api:{region}:{account}:{id}/{stage}/`.
    prefix: String,
    /// A method ARN of the stage, for [`Policy::for_service`].
    method_arn: Option<MethodArn>,
    /// Why its resource policy leaves the answers open, when it does.
    resource_policy_open: Option<String>,
    /// Its resource policy's statements about execute-api:Invoke.
    resource_policy: Vec<PolicyStatement>,
    /// The role maps of its IAM routes' backends (indexes into [`Access::role_maps`]).
    role_maps: Vec<usize>,
    pub routes: Vec<RouteRow>,
}

/// A role mapped to a service by a backend.
#[derive(Debug, Clone)]
struct MappedRole {
    /// The model's role (local id), or `None` for a map entry no template defines.
    role: Option<String>,
    /// The role's name or ARN as the map or the template gives it.
    label: String,
    service: String,
}

/// One backend's `SVCAUTH_IAM_ROLES`, resolved against the model's roles.
#[derive(Debug, Clone)]
struct RoleMap {
    function: String,
    /// `Err`: the map does not parse; the backend refuses every IAM caller.
    roles: Result<Vec<MappedRole>, String>,
}

/// What a service may do with tokens.
#[derive(Debug, Clone)]
enum TokenState {
    /// The issuer gives it a token with these claims, obtained this way.
    Issued {
        claims: TokenClaims,
        proof: String,
    },
    Refused(String),
    Unknown(String),
}

/// One calling service.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub name: String,
    doc: Option<usize>,
    grant: Option<Arc<ServiceGrant>>,
    /// A usable key, or why there is none.
    key: Result<KeyId, String>,
    token: TokenState,
}

/// The sources, prepared once, answering for every (service, API, route, proof).
pub struct Access {
    pub sources: Sources,
    pub apis: Vec<ApiRow>,
    pub services: Vec<ServiceRow>,
    role_maps: Vec<RoleMap>,
    /// The token issuer's routes: (API index, route index) by key and by role.
    issuer: Option<IssuerRoutes>,
    /// Notes on what was assumed or could not be read.
    pub notes: Vec<String>,
    /// By route id: how much of the route each pattern asked about covers.
    covered: RefCell<Vec<HashMap<String, Option<Coverage>>>>,
}

#[derive(Debug, Clone, Copy)]
struct IssuerRoutes {
    by_key: Option<(usize, usize)>,
    by_role: Option<(usize, usize)>,
    function: usize,
}

/// Why the sources cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccessError(pub String);

fn text<'a>(f: &'a FunctionDef, k: &str) -> Option<&'a str> {
    match f.env.get(k) {
        Some(EnvValue::Text(t)) => Some(t),
        _ => None,
    }
}

fn method_templates(prefix: &str, method: &str, path: &str) -> Vec<ResourceTemplate> {
    if method == "ANY" || method == "*" {
        ANY_METHODS
            .iter()
            .map(|m| ResourceTemplate::route(prefix, m, path))
            .collect()
    } else {
        vec![ResourceTemplate::route(prefix, method, path)]
    }
}

impl Access {
    pub fn new(sources: Sources) -> Result<Self, AccessError> {
        let mut notes = Vec::new();
        let model = &sources.model;
        // The key store as the authorizer builds it, markers applied.
        let mut store = KeyStore::build(&sources.documents, &[]).map_err(|e| {
            AccessError(format!(
                "the key store would not load in the authorizer: {e}; fix it first"
            ))
        })?;
        store.revoke_ids(&sources.revoked);

        // Role maps of every function that has one.
        let mut role_maps = Vec::new();
        let mut role_map_of = BTreeMap::new();
        for (id, f) in &model.functions {
            let Some(spec) = text(f, ROLE_MAP_ENV) else {
                continue;
            };
            role_map_of.insert(id.clone(), role_maps.len());
            role_maps.push(RoleMap {
                function: id.clone(),
                roles: resolve_role_map(model, spec, &sources.account),
            });
        }

        // APIs of the templates.
        let mut apis = Vec::new();
        let declared = &model.api_names;
        for a in &model.apis {
            let name = api_name(&sources.registry, &a.api_id, declared.get(&a.api_id));
            let prefix = format!(
                "arn:aws:execute-api:{}:{}:{}/{}/",
                sources.region, sources.account, a.api_id, a.stage
            );
            let mut routes = Vec::new();
            for r in model.routes.iter().filter(|r| r.api == a.logical_id) {
                let kind = match &r.auth {
                    RouteAuth::None => RouteKind::Open,
                    RouteAuth::Iam => match role_map_of.get(&r.function) {
                        Some(i) => RouteKind::Iam { role_map: *i },
                        None => {
                            role_map_of.insert(r.function.clone(), role_maps.len());
                            role_maps.push(RoleMap {
                                function: r.function.clone(),
                                roles: Ok(Vec::new()),
                            });
                            RouteKind::Iam {
                                role_map: role_maps.len() - 1,
                            }
                        }
                    },
                    RouteAuth::Request(auth) => RouteKind::Authorizer {
                        name: auth.name.clone(),
                        function: auth.function.clone(),
                        accept: match model.functions.get(&auth.function) {
                            Some(f) => authorizer::Config::from_lookup(|k| {
                                text(f, k).map(str::to_owned)
                            })
                            .map(|c| c.accept)
                            .map_err(|e| {
                                format!(
                                    "the authorizer {}'s configuration is invalid ({e}): it refuses every call",
                                    auth.function
                                )
                            }),
                            None => Err(format!("the authorizer function {} is not in the templates", auth.function)),
                        },
                    },
                };
                let is_issuer = model
                    .functions
                    .get(&r.function)
                    .is_some_and(|f| f.binary.as_deref() == Some(ISSUER_BINARY));
                routes.push(RouteRow {
                    id: NO_ROUTE_ID,
                    route: format!("{} {}", r.method, r.path),
                    gates: gates(&kind),
                    kind,
                    templates: method_templates(&prefix, &r.method, &r.path),
                    is_issuer,
                });
            }
            let mut open = Vec::new();
            for st in &a.resource_policy {
                if !network_only(st) {
                    open.push(format!(
                        "its resource policy's {} is not evaluated",
                        st.source
                    ));
                }
            }
            open.extend(a.resource_policy_unread.iter().cloned());
            apis.push(ApiRow {
                // Its name, registered or as its template declares it, else its id.
                label: match &name {
                    ApiName::Registered { name, .. } => name.clone(),
                    ApiName::Unregistered { .. } => declared
                        .get(&a.api_id)
                        .cloned()
                        .unwrap_or_else(|| a.logical_id.clone()),
                },
                logical_id: Some(a.logical_id.clone()),
                api_id: a.api_id.clone(),
                name,
                api_key_required: a.api_key_required,
                method_arn: MethodArn::parse(&format!("{prefix}GET/")).ok(),
                prefix,
                resource_policy_open: (!open.is_empty()).then(|| open.join("; ")),
                resource_policy: a.resource_policy.clone(),
                role_maps: {
                    let mut maps: Vec<usize> = routes
                        .iter()
                        .filter_map(|r| match r.kind {
                            RouteKind::Iam { role_map } => Some(role_map),
                            _ => None,
                        })
                        .collect();
                    maps.sort_unstable();
                    maps.dedup();
                    maps
                },
                routes,
            });
        }

        // APIs the grants name that no template defines: their grant patterns.
        let mut labels: HashSet<String> = apis.iter().map(|a| a.label.clone()).collect();
        let mut untemplated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for doc in &sources.documents {
            for g in &doc.grants {
                for api in &g.apis {
                    if !labels.contains(api) {
                        untemplated
                            .entry(api.clone())
                            .or_default()
                            .extend(g.routes.iter().cloned());
                    }
                }
            }
        }
        for (api, patterns) in untemplated {
            let prefix = format!(
                "arn:aws:execute-api:{}:{}:{api}/stage/",
                sources.region, sources.account
            );
            labels.insert(api.clone());
            let routes = patterns
                .into_iter()
                .filter_map(|p| RoutePattern::parse(&p).ok())
                .map(|p| {
                    let text = p.to_string();
                    let (method, path) = text.split_once(' ').unwrap_or(("*", "/"));
                    RouteRow {
                        id: NO_ROUTE_ID,
                        templates: method_templates(&prefix, method, path),
                        route: text.clone(),
                        gates: gates(&RouteKind::Untemplated),
                        kind: RouteKind::Untemplated,
                        is_issuer: false,
                    }
                })
                .collect();
            apis.push(ApiRow {
                label: api.clone(),
                logical_id: None,
                api_id: api.clone(),
                name: ApiName::Registered {
                    name: api.clone(),
                    how: "named by grants; no template given defines it".into(),
                },
                api_key_required: false,
                method_arn: MethodArn::parse(&format!("{prefix}GET/")).ok(),
                prefix,
                resource_policy_open: None,
                resource_policy: Vec::new(),
                role_maps: Vec::new(),
                routes,
            });
        }
        if let Registry::ByName { ignored, label, .. } = &sources.registry {
            if !ignored.is_empty() {
                notes.push(format!(
                    "{label}: {} ignored: a String parameter is never trusted, only SecureString entries written by svcauth apis register",
                    ignored.join(", ")
                ));
            }
        }
        if apis
            .iter()
            .any(|a| a.resource_policy_open.is_none() && a.logical_id.is_some())
        {
            notes.push("resource policies' network conditions (aws:SourceVpce and the like) are assumed met: they are the same for every caller".into());
        }

        // Services: the store's and the role maps'.
        let mut names: BTreeSet<String> = sources
            .documents
            .iter()
            .map(|d| d.service.clone())
            .collect();
        for m in &role_maps {
            if let Ok(roles) = &m.roles {
                names.extend(roles.iter().map(|r| r.service.clone()));
            }
        }
        let services = names
            .into_iter()
            .map(|name| {
                let doc = sources.documents.iter().position(|d| d.service == name);
                let grant = store.service(&name).cloned();
                let key = usable_key(
                    &store,
                    doc.map(|i| &sources.documents[i]),
                    &name,
                    sources.now,
                );
                ServiceRow {
                    name,
                    doc,
                    grant,
                    key,
                    token: TokenState::Unknown(String::new()),
                }
            })
            .collect();

        let mut ids = 0;
        for r in apis.iter_mut().flat_map(|a| a.routes.iter_mut()) {
            r.id = ids;
            ids += 1;
        }
        let issuer = find_issuer(&apis, model);
        let mut access = Access {
            sources,
            apis,
            services,
            role_maps,
            issuer,
            notes,
            covered: RefCell::new(vec![HashMap::new(); ids]),
        };
        for i in 0..access.services.len() {
            access.services[i].token = access.token_state(i);
        }
        Ok(access)
    }

    /// Every cell of the services and APIs asked (all when empty), in order of
    /// service, API, route, proof. What a service may do with keys and tokens on an
    /// API is worked out once for all the API's routes.
    pub fn for_each_cell(
        &self,
        services: &[String],
        apis: &[String],
        mut f: impl FnMut(&Cell<'_>),
    ) {
        for (si, ai) in self.asked(services, apis) {
            let (s, a) = (&self.services[si], &self.apis[ai]);
            let pair = self.pair(si, ai);
            for r in &a.routes {
                for via in Via::ALL {
                    let v = self.verdict(si, ai, r, via, &pair);
                    f(&Cell {
                        service: &s.name,
                        api: &a.label,
                        route: &r.route,
                        via,
                        answer: v.answer,
                        reason: v.reason,
                        rule: v.rule,
                    });
                }
            }
        }
    }

    /// (service, API) indexes of the services and APIs asked (all when empty).
    pub fn asked<'q>(
        &'q self,
        services: &'q [String],
        apis: &'q [String],
    ) -> impl Iterator<Item = (usize, usize)> + 'q {
        let services = (0..self.services.len())
            .filter(move |si| services.is_empty() || services.contains(&self.services[*si].name));
        services.flat_map(move |si| {
            (0..self.apis.len())
                .filter(move |ai| apis.is_empty() || self.api_matches(&self.apis[*ai], apis))
                .map(move |ai| (si, ai))
        })
    }

    fn api_matches(&self, a: &ApiRow, asked: &[String]) -> bool {
        asked
            .iter()
            .any(|n| *n == a.label || a.logical_id.as_deref() == Some(n.as_str()) || *n == a.api_id)
    }

    /// The index of the service named `name`.
    pub fn service(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    /// The APIs called `name` (a registered name, logical id or API id).
    pub fn apis_named(&self, name: &str) -> Vec<usize> {
        let asked = [name.to_owned()];
        (0..self.apis.len())
            .filter(|i| self.api_matches(&self.apis[*i], &asked))
            .collect()
    }

    /// The route of API `ai` that API Gateway would route `method path` to (a
    /// template route, or a concrete path matching one), as a route row index.
    pub fn route_of(&self, ai: usize, method: &str, path: &str) -> Option<usize> {
        let method = method.to_ascii_uppercase();
        let routes = &self.apis[ai].routes;
        let exact = format!("{method} {path}");
        if let Some(i) = routes.iter().position(|r| r.route == exact) {
            return Some(i);
        }
        // A concrete call: the route API Gateway sends it to (the most literal
        // segments win).
        let mut best: Option<(usize, usize)> = None;
        for (i, r) in routes.iter().enumerate() {
            let (rm, rp) = r.route.split_once(' ').unwrap_or(("", ""));
            if rm != method && rm != "ANY" && rm != "*" {
                continue;
            }
            if routes_to(rp, path) {
                let literal = rp.split('/').filter(|seg| !seg.starts_with('{')).count();
                if best.is_none_or(|(_, l)| literal > l) {
                    best = Some((i, literal));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// The answer for one (service, API, route, proof).
    pub fn cell(&self, si: usize, ai: usize, ri: usize, via: Via) -> Cell<'static> {
        self.owned_cell(si, ai, &self.apis[ai].routes[ri], via)
    }

    /// The answer for one concrete call `METHOD /path` of route `ri` (exact, where
    /// the route's answer is for every value of its parameters).
    pub fn call_cell(
        &self,
        si: usize,
        ai: usize,
        ri: usize,
        method: &str,
        path: &str,
        via: Via,
    ) -> Cell<'static> {
        let a = &self.apis[ai];
        let mut r = a.routes[ri].clone();
        r.id = NO_ROUTE_ID;
        r.templates = vec![ResourceTemplate::exact(&format!(
            "{}{}{path}",
            a.prefix,
            method.to_ascii_uppercase()
        ))];
        self.owned_cell(si, ai, &r, via)
    }

    fn owned_cell(&self, si: usize, ai: usize, r: &RouteRow, via: Via) -> Cell<'static> {
        let pair = self.pair(si, ai);
        let v = self.verdict(si, ai, r, via, &pair).into_owned();
        Cell {
            service: "",
            api: "",
            route: "",
            via,
            answer: v.answer,
            reason: v.reason,
            rule: v.rule,
        }
    }

    /// One answer, with the service's keys and tokens on the API worked out in `pair`.
    fn verdict<'x>(
        &'x self,
        si: usize,
        ai: usize,
        r: &'x RouteRow,
        via: Via,
        pair: &'x Pair,
    ) -> Verdict<'x> {
        if let Some(g) = &r.gates[via as usize] {
            return g.borrowed();
        }
        match via {
            Via::ApiKey => self.grant_cell(&pair.key, r),
            Via::Token => self.grant_cell(&pair.token, r),
            Via::Iam => self.iam_decision(si, ai, r, Some(pair)).0,
        }
    }

    /// What service `si` may do with keys and tokens on API `ai`, and which roles the
    /// API's backends map to it.
    fn pair(&self, si: usize, ai: usize) -> Pair {
        Pair {
            key: self.key_grants(si, ai),
            token: self.token_grants(si, ai),
            roles: self.apis[ai]
                .role_maps
                .iter()
                .map(|m| (*m, self.mapped_roles(si, *m)))
                .collect(),
        }
    }

    /// The roles role map `m` maps to service `si` (indexes into its roles), or the
    /// answer for every route it backs.
    fn mapped_roles(&self, si: usize, m: usize) -> Result<Vec<usize>, Verdict<'static>> {
        let s = &self.services[si];
        let map = &self.role_maps[m];
        let roles = match &map.roles {
            Ok(roles) => roles,
            Err(e) => {
                return Err(Verdict::refused(format!(
                "the backend {}'s {ROLE_MAP_ENV} does not parse ({e}): it refuses every IAM caller",
                map.function
            )))
            }
        };
        let mine: Vec<usize> = (0..roles.len())
            .filter(|i| roles[*i].service == s.name)
            .collect();
        if mine.is_empty() {
            return Err(Verdict::refused(format!(
                "no role is mapped to {} in {ROLE_MAP_ENV} of {}, the backend of this route",
                s.name, map.function
            )));
        }
        Ok(mine)
    }

    /// How much of route `r` the IAM pattern covers, remembered per route.
    fn covers(&self, r: &RouteRow, pattern: &str) -> Option<Coverage> {
        if r.id == NO_ROUTE_ID {
            return coverage_of_all(pattern, &r.templates);
        }
        if let Some(c) = self.covered.borrow()[r.id].get(pattern) {
            return *c;
        }
        let c = coverage_of_all(pattern, &r.templates);
        self.covered.borrow_mut()[r.id].insert(pattern.to_owned(), c);
        c
    }

    /// API Gateway's evaluation of the policy in `grants` for every call of route `r`.
    fn grant_cell<'x>(&self, grants: &'x Grants, r: &RouteRow) -> Verdict<'x> {
        let (allowed, none) = match grants {
            Grants::Decided(v) => return v.borrowed(),
            Grants::Policy { allowed, none } => (allowed, none),
        };
        let mut some = None;
        for g in allowed {
            match self.covers(r, &g.resource) {
                Some(Coverage::All) => {
                    return Verdict {
                        answer: Answer::Allowed,
                        reason: Cow::Borrowed(&g.reason),
                        rule: Some(Cow::Borrowed(&g.rule)),
                    }
                }
                Some(Coverage::Some) | None => {
                    some.get_or_insert(&g.resource);
                }
                Some(Coverage::None) => {}
            }
        }
        match some {
            Some(res) => Verdict::unknown(format!(
                "the policy's resource {res} covers only some calls of the route (some values of its parameters)"
            )),
            None => Verdict::refused(none.as_str()),
        }
    }

    fn key_grants(&self, si: usize, ai: usize) -> Grants {
        let (s, a) = (&self.services[si], &self.apis[ai]);
        if let Err(why) = &s.key {
            return Grants::Decided(Verdict::refused(why.clone()));
        }
        let routes = s
            .grant
            .as_deref()
            .map(|g| g.routes_on(self.name_of(a)))
            .unwrap_or(&[]);
        self.grants(s, a, routes, "key", "")
    }

    fn token_grants(&self, si: usize, ai: usize) -> Grants {
        let (s, a) = (&self.services[si], &self.apis[ai]);
        let (claims, proof) = match &s.token {
            TokenState::Issued { claims, proof } => (claims, proof),
            TokenState::Refused(why) => return Grants::Decided(Verdict::refused(why.clone())),
            TokenState::Unknown(why) => return Grants::Decided(Verdict::unknown(why.clone())),
        };
        let routes: Vec<RoutePattern> = match claims
            .routes_for(self.name_of(a))
            .map(RoutePattern::parse)
            .collect()
        {
            Ok(r) => r,
            Err(e) => {
                return Grants::Decided(Verdict::refused(format!(
                    "the token's routes do not parse ({e}): the authorizer refuses it"
                )))
            }
        };
        self.grants(s, a, &routes, "token", &format!("token from {proof}; "))
    }

    /// The registered name (empty when none: no grant names it).
    fn name_of<'x>(&self, a: &'x ApiRow) -> &'x str {
        match &a.name {
            ApiName::Registered { name, .. } => name,
            ApiName::Unregistered { .. } => "",
        }
    }

    /// The policy the authorizer returns for these routes on this API
    /// ([`Policy::for_service`]), or what decides every route before it.
    fn grants(
        &self,
        s: &ServiceRow,
        a: &ApiRow,
        routes: &[RoutePattern],
        proof: &str,
        prefix: &str,
    ) -> Grants {
        let name = match &a.name {
            ApiName::Registered { name, .. } => name,
            ApiName::Unregistered { why } => {
                return Grants::Decided(Verdict::refused(format!(
                    "{why}: the authorizer allows nothing on it (svcauth apis register)"
                )))
            }
        };
        if a.api_key_required
            && s.doc
                .is_none_or(|d| self.sources.documents[d].usage_plan_key.is_none())
        {
            return Grants::Decided(Verdict::refused(format!(
                "{} has no usagePlanKey and {} requires an API key (ApiKeyRequired): API Gateway answers 403",
                s.name, a.label
            )));
        }
        let Some(arn) = &a.method_arn else {
            return Grants::Decided(Verdict::unknown(format!(
                "{} has no usable method ARN",
                a.label
            )));
        };
        if routes.is_empty() {
            return Grants::Decided(Verdict::refused(format!(
                "{} is granted nothing on {name} (the {proof}'s policy denies the whole stage)",
                s.name
            )));
        }
        let policy = Policy::for_service(routes, arn);
        let mut allowed = Vec::new();
        for st in policy
            .statements
            .iter()
            .filter(|st| st.effect == Effect::Allow)
        {
            for res in &st.resources {
                let pattern = routes
                    .iter()
                    .find(|p| p.resource_arn(&a.prefix) == *res)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| res.clone());
                allowed.push(Granted {
                    reason: format!("{prefix}granted `{pattern}` on {name}"),
                    rule: format!("grant `{pattern}` on {name}"),
                    resource: res.clone(),
                });
            }
        }
        let granted: Vec<String> = routes.iter().map(ToString::to_string).collect();
        Grants::Policy {
            allowed,
            none: format!(
                "no grant of {} on {name} covers it (granted: {})",
                s.name,
                granted.join(", ")
            ),
        }
    }

    /// The IAM answer, and the role that allowed the call when one did.
    fn iam_decision<'x>(
        &'x self,
        si: usize,
        ai: usize,
        r: &'x RouteRow,
        pair: Option<&'x Pair>,
    ) -> (Verdict<'x>, Option<&'x RoleDef>) {
        let (s, a) = (&self.services[si], &self.apis[ai]);
        if let Some(g) = &r.gates[Via::Iam as usize] {
            return (g.borrowed(), None);
        }
        let RouteKind::Iam { role_map } = r.kind else {
            return (Verdict::unknown("not an IAM route"), None);
        };
        let found = pair
            .and_then(|p| p.roles.iter().find(|(m, _)| *m == role_map))
            .map(|(_, mine)| mine);
        if let Some(Err(v)) = found {
            return (v.borrowed(), None);
        }
        let computed;
        let mine = match found {
            Some(mine) => mine,
            None => {
                computed = self.mapped_roles(si, role_map);
                &computed
            }
        };
        let mine = match mine {
            Ok(mine) => mine,
            Err(v) => return (v.clone(), None),
        };
        let roles = self.role_maps[role_map].roles.as_deref().unwrap_or(&[]);
        let mine: Vec<&MappedRole> = mine.iter().map(|i| &roles[*i]).collect();
        // A resource policy that allows every signed caller (`Principal: *`) is
        // enough on its own in the API's account.
        for st in a
            .resource_policy
            .iter()
            .filter(|st| st.allow && st.principals.iter().any(|p| p == "*"))
        {
            let assumed = PolicyStatement {
                condition_keys: Vec::new(),
                ..st.clone()
            };
            if network_only(st) && iam::evaluate(&[assumed], &r.templates) == IamAnswer::Allowed(0)
            {
                let v = Verdict::new(
                    Answer::Allowed,
                    format!(
                        "the API's resource policy allows every signed caller ({})",
                        st.source
                    ),
                )
                .with_rule(format!("{}: {}", st.source, st.summary()));
                return (v, None);
            }
        }
        let mut unknown = Vec::new();
        let mut refused = Vec::new();
        for m in mine {
            let Some(role) = m
                .role
                .as_ref()
                .and_then(|id| self.sources.model.roles.get(id))
            else {
                unknown.push(format!(
                    "{} is mapped to {} but no template given defines it",
                    m.label, s.name
                ));
                continue;
            };
            match iam::evaluate_with(&role.policy, &mut |p| self.covers(r, p)) {
                IamAnswer::Allowed(i) => {
                    let st = &role.policy[i];
                    if let Some(u) = role.unread_policies.first() {
                        unknown.push(format!(
                            "role {} is allowed by {}, but {u}",
                            role.name, st.source
                        ));
                    } else if let Some(b) = &role.permissions_boundary {
                        unknown.push(format!(
                            "role {} is allowed by {}, but its permissions boundary {b} is not evaluated",
                            role.name, st.source
                        ));
                    } else if let Some(open) = &a.resource_policy_open {
                        unknown.push(format!(
                            "role {} is allowed by {}, but {open}",
                            role.name, st.source
                        ));
                    } else {
                        let v = Verdict::new(
                            Answer::Allowed,
                            format!("role {} ({}): {}", role.name, st.source, st.summary()),
                        )
                        .with_rule(format!(
                            "{}: {}",
                            st.source,
                            st.summary()
                        ));
                        return (v, Some(role));
                    }
                }
                IamAnswer::ExplicitDeny(i) => refused.push(format!(
                    "role {}: explicit Deny by {}",
                    role.name, role.policy[i].source
                )),
                IamAnswer::ImplicitDeny if role.unread_policies.is_empty() => {
                    refused.push(format!("role {}: no statement allows it", role.name))
                }
                IamAnswer::ImplicitDeny => unknown.push(format!(
                    "role {}: no statement read allows it, but {}",
                    role.name, role.unread_policies[0]
                )),
                IamAnswer::Unknown { reason, .. } => {
                    unknown.push(format!("role {}: {reason}", role.name))
                }
            }
        }
        if !unknown.is_empty() {
            return (Verdict::unknown(unknown.join("; ")), None);
        }
        (Verdict::refused(refused.join("; ")), None)
    }

    /// Whether the issuer gives the service a token, and how.
    fn token_state(&self, si: usize) -> TokenState {
        let s = &self.services[si];
        let Some(issuer) = self.issuer else {
            return TokenState::Unknown(
                "no token issuer in the templates given (read the platform's template too)".into(),
            );
        };
        let mut why = Vec::new();
        let mut unknown = false;
        let mut candidates = Vec::new();
        for (route, via) in [(issuer.by_key, Via::ApiKey), (issuer.by_role, Via::Iam)] {
            let Some((ai, ri)) = route else { continue };
            let row = &self.apis[ai].routes[ri];
            let route = &row.route;
            let (v, role) = match via {
                Via::ApiKey => {
                    let v = match &row.gates[Via::ApiKey as usize] {
                        Some(g) => g.clone(),
                        None => self.grant_cell(&self.key_grants(si, ai), row).into_owned(),
                    };
                    (v, None)
                }
                _ => {
                    let (v, role) = self.iam_decision(si, ai, row, None);
                    (v.into_owned(), role)
                }
            };
            match v.answer {
                Answer::Allowed => candidates.push((via, v, role)),
                Answer::Unknown => {
                    unknown = true;
                    why.push(format!("{route}: {}", v.reason));
                }
                Answer::Refused => why.push(format!("{route}: {}", v.reason)),
            }
        }
        let doc = s.doc.map(|d| self.sources.documents[d].clone());
        let settings = issuer_settings(&self.sources.model, issuer.function);
        for (via, v, role) in candidates {
            let caller = match via {
                Via::ApiKey => match &s.key {
                    Ok(key_id) => ServiceIdentity {
                        service: s.name.clone(),
                        method: AuthMethod::ApiKey {
                            key_id: key_id.clone(),
                        },
                    },
                    Err(_) => continue,
                },
                _ => match role.and_then(|r| self.role_identity(si, r)) {
                    Some(id) => id,
                    None => continue,
                },
            };
            let settings = match &settings {
                Ok(s) => s,
                Err(e) => return TokenState::Refused(e.clone()),
            };
            let standing = token_issuer::issue::Standing {
                document: doc.clone(),
                proof_key_revoked: false,
            };
            let proof = format!(
                "{} ({})",
                match via {
                    Via::ApiKey => "its API key on POST /token",
                    _ => "its IAM role on POST /token/iam",
                },
                v.rule.as_deref().unwrap_or("")
            );
            match token_issuer::issue::claims_for(
                &caller,
                &standing,
                &Default::default(),
                settings,
                self.sources.now,
                "svcauth-access".into(),
            ) {
                Ok(claims) => return TokenState::Issued { claims, proof },
                Err(e) => why.push(format!("the issuer refuses {}: {e}", s.name)),
            }
        }
        let why = format!("{} gets no token: {}", s.name, why.join("; "));
        if unknown {
            TokenState::Unknown(why)
        } else {
            TokenState::Refused(why)
        }
    }

    /// The identity the issuer's role map gives a session of `role`.
    fn role_identity(&self, si: usize, role: &RoleDef) -> Option<ServiceIdentity> {
        let s = &self.services[si];
        let role_name = &role.name;
        let account = role.arn.split(':').nth(4)?;
        let issuer = self.issuer?;
        let (ai, ri) = issuer.by_role?;
        let RouteKind::Iam { role_map } = self.apis[ai].routes[ri].kind else {
            return None;
        };
        let spec = self
            .sources
            .model
            .functions
            .get(&self.role_maps[role_map].function)
            .and_then(|f| text(f, ROLE_MAP_ENV))?;
        let map = IamRoleMap::parse(spec).ok()?;
        let caller = format!("arn:aws:sts::{account}:assumed-role/{role_name}/svcauth-access");
        identify(|_| None, Some(&caller), &map)
            .ok()
            .filter(|id| id.service == s.name)
    }

    /// For `explain`: the service's token standing in one sentence.
    pub fn token_summary(&self, si: usize) -> String {
        match &self.services[si].token {
            TokenState::Issued { claims, proof } => format!(
                "gets tokens by {proof}, for {}",
                if claims.aud.is_empty() {
                    "no API".to_owned()
                } else {
                    claims.aud.join(", ")
                }
            ),
            TokenState::Refused(why) | TokenState::Unknown(why) => why.clone(),
        }
    }

    /// The same route with the other proof, for `diff`: `(API, route)` indexes where
    /// the backend route (same function binary, method and path) is served with
    /// `target` authorization, or the same route when no other API serves it.
    pub fn counterpart(&self, ai: usize, ri: usize, target: Via) -> (usize, usize) {
        let model = &self.sources.model;
        let Some(logical) = &self.apis[ai].logical_id else {
            return (ai, ri);
        };
        let route = &self.apis[ai].routes[ri].route;
        let backend = |api: &str, route: &str| -> Option<String> {
            let r = model
                .routes
                .iter()
                .find(|r| r.api == api && format!("{} {}", r.method, r.path) == route)?;
            let f = model.functions.get(&r.function)?;
            Some(f.binary.clone().unwrap_or_else(|| f.logical_id.clone()))
        };
        let Some(mine) = backend(logical, route) else {
            return (ai, ri);
        };
        for (bi, b) in self.apis.iter().enumerate() {
            let Some(bl) = &b.logical_id else { continue };
            for (bri, br) in b.routes.iter().enumerate() {
                let takes = match (&br.kind, target) {
                    (RouteKind::Iam { .. }, Via::Iam) => true,
                    (RouteKind::Authorizer { accept: Ok(a), .. }, Via::Token) => a.tokens(),
                    (RouteKind::Authorizer { accept: Ok(a), .. }, Via::ApiKey) => a.keys(),
                    _ => false,
                };
                if takes && br.route == *route && backend(bl, route).as_deref() == Some(&mine) {
                    return (bi, bri);
                }
            }
        }
        (ai, ri)
    }

    /// For `diff --to token`: the token answer as if the route's authorizer took
    /// tokens (the service's token and the token's routes decide).
    pub fn token_if_accepted(&self, si: usize, ai: usize, ri: usize) -> Cell<'static> {
        let r = &self.apis[ai].routes[ri];
        if matches!(r.kind, RouteKind::Open) {
            return self.cell(si, ai, ri, Via::Token);
        }
        let v = self.grant_cell(&self.token_grants(si, ai), r).into_owned();
        Cell {
            service: "",
            api: "",
            route: "",
            via: Via::Token,
            answer: v.answer,
            reason: v.reason,
            rule: v.rule,
        }
    }

    /// Whether API `ai` is a route of the token issuer (its cells are about getting
    /// tokens, not about calling a backend).
    pub fn is_issuer_route(&self, ai: usize, ri: usize) -> bool {
        self.apis[ai].routes[ri].is_issuer
    }
}

/// What a service may do with keys (or tokens) on one API, for all its routes.
enum Grants {
    /// One answer for every route (no key, not registered, nothing granted...).
    Decided(Verdict<'static>),
    /// The policy's Allow resources, each with what it says when it covers a route,
    /// and the refusal when none does.
    Policy { allowed: Vec<Granted>, none: String },
}

struct Granted {
    resource: String,
    reason: String,
    rule: String,
}

/// Keys, tokens and mapped roles of one service on one API.
struct Pair {
    key: Grants,
    token: Grants,
    /// By role map of the API's IAM routes: [`Access::mapped_roles`].
    roles: Vec<(usize, Result<Vec<usize>, Verdict<'static>>)>,
}

/// What a route's authorization alone decides for each proof (before any
/// credential is looked at), by [`Via`] index.
fn gates(kind: &RouteKind) -> [Option<Verdict<'static>>; 3] {
    Via::ALL.map(|via| gate(kind, via))
}

fn gate(kind: &RouteKind, via: Via) -> Option<Verdict<'static>> {
    match (kind, via) {
        (RouteKind::Open, _) => Some(
            Verdict::new(
                Answer::Allowed,
                "the route has no authorization: every caller that reaches the API may call it",
            )
            .with_rule(OPEN_RULE),
        ),
        (RouteKind::Untemplated, Via::Iam) => Some(Verdict::unknown(
            "no template given defines this API: its IAM authorization is not known",
        )),
        (RouteKind::Untemplated, _) => None,
        (RouteKind::Iam { .. }, Via::Iam) => None,
        (RouteKind::Iam { .. }, Via::Token) => Some(Verdict::refused(
            "the route takes SigV4 (AWS_IAM), not tokens",
        )),
        (RouteKind::Iam { .. }, Via::ApiKey) => Some(Verdict::refused(
            "the route takes SigV4 (AWS_IAM), not API keys",
        )),
        (RouteKind::Authorizer { .. }, Via::Iam) => Some(Verdict::refused(
            "the route takes its REQUEST authorizer, not SigV4 (AWS_IAM)",
        )),
        (RouteKind::Authorizer { accept: Err(e), .. }, _) => Some(Verdict::refused(e.clone())),
        (
            RouteKind::Authorizer {
                accept: Ok(accept),
                name,
                function,
            },
            _,
        ) => {
            let (takes, what) = match via {
                Via::Token => (accept.tokens(), "tokens"),
                _ => (accept.keys(), "API keys"),
            };
            (!takes).then(|| {
                Verdict::refused(format!(
                    "the route's authorizer {name} ({function}, SVCAUTH_ACCEPT={}) takes no {what}",
                    accept.name()
                ))
            })
        }
    }
}

/// Whether API Gateway routes `path` to the route path `route`: `{param}` is one
/// segment, `{proxy+}` (last) one or more; a route written as a grant pattern (an API
/// no template defines) matches with IAM's wildcards.
fn routes_to(route: &str, path: &str) -> bool {
    if route.contains('*') {
        return wildcard_match(route.as_bytes(), path.as_bytes());
    }
    let mut want = route.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with("+}") => {
                return !g.is_empty() && want.next().is_none()
            }
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// A resource-policy statement about the network path only (see the module doc).
fn network_only(st: &PolicyStatement) -> bool {
    let anyone = st
        .principals
        .iter()
        .all(|p| p == "*" || p.ends_with(":root") || p.bytes().all(|b| b.is_ascii_digit()));
    anyone
        && st
            .condition_keys
            .iter()
            .all(|k| NETWORK_KEYS.contains(&k.to_ascii_lowercase().as_str()))
}

/// The name of the API with local id `api_id`.
fn api_name(registry: &Registry, api_id: &str, declared: Option<&String>) -> ApiName {
    match registry {
        Registry::ById { names, label } => match names.get(api_id) {
            Some(n) => ApiName::Registered {
                name: n.clone(),
                how: format!("{label} maps {api_id} to {n}"),
            },
            None => ApiName::Unregistered {
                why: format!("{api_id} is not registered in {label}"),
            },
        },
        Registry::ByName { ids, label, .. } => match declared {
            Some(n) => match ids.get(n) {
                Some(id) => ApiName::Registered {
                    name: n.clone(),
                    how: format!(
                        "the template names it {n}; {label} has {n} registered (as API {id}, taken to be this one)"
                    ),
                },
                None => ApiName::Unregistered {
                    why: format!("the template names it {n}, but {label} has no {n}"),
                },
            },
            None => ApiName::Unregistered {
                why: format!("the templates declare no name for {api_id}"),
            },
        },
        Registry::Declared => match declared {
            Some(n) => ApiName::Registered {
                name: n.clone(),
                how: format!("the template names it {n} (no registry given: taken as registered)"),
            },
            None => ApiName::Unregistered {
                why: format!("the templates declare no name for {api_id} and no registry was given"),
            },
        },
    }
}

/// The roles a map sends to services: the model's roles it matches (by the real
/// identity code, on a session of each role), and entries matching none of them.
fn resolve_role_map(model: &Model, spec: &str, account: &str) -> Result<Vec<MappedRole>, String> {
    let map = IamRoleMap::parse(spec).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut matched_services: Vec<(String, String)> = Vec::new();
    for (id, role) in &model.roles {
        let acct = role.arn.split(':').nth(4).unwrap_or(account);
        let caller = format!(
            "arn:aws:sts::{acct}:assumed-role/{}/svcauth-access",
            role.name
        );
        if let Ok(identity) = identify(|_| None, Some(&caller), &map) {
            matched_services.push((role.name.to_ascii_lowercase(), identity.service.clone()));
            out.push(MappedRole {
                role: Some(id.clone()),
                label: role.name.clone(),
                service: identity.service,
            });
        }
    }
    for (entry, service) in map.entries() {
        let name = entry
            .rsplit('/')
            .next()
            .unwrap_or(&entry)
            .to_ascii_lowercase();
        if !matched_services
            .iter()
            .any(|(n, s)| *n == name && s == service)
        {
            out.push(MappedRole {
                role: None,
                label: entry.clone(),
                service: service.to_owned(),
            });
        }
    }
    Ok(out)
}

/// A usable key of the service in the store, or why it has none.
fn usable_key(
    store: &KeyStore,
    doc: Option<&ServiceDocument>,
    service: &str,
    now: UnixTime,
) -> Result<KeyId, String> {
    let Some(doc) = doc else {
        return Err(format!("{service} has no service document (no key)"));
    };
    for k in &doc.keys {
        let usable = store.key_by_id(k.key_id.as_str()).is_some_and(|e| {
            e.grant.service == service
                && e.status == service_auth::KeyStatus::Active
                && e.expires.is_none_or(|t| now < t)
        });
        if usable {
            return Ok(k.key_id.clone());
        }
    }
    Err(format!(
        "{service} has no usable key ({} revoked or expired)",
        doc.keys.len()
    ))
}

/// The token issuer's routes in the APIs.
fn find_issuer(apis: &[ApiRow], model: &Model) -> Option<IssuerRoutes> {
    let mut found = IssuerRoutes {
        by_key: None,
        by_role: None,
        function: 0,
    };
    let mut any = false;
    for (ai, a) in apis.iter().enumerate() {
        for (ri, r) in a.routes.iter().enumerate() {
            if !r.is_issuer {
                continue;
            }
            any = true;
            if r.route == format!("{} {}", TOKEN_BY_KEY.0, TOKEN_BY_KEY.1) {
                found.by_key = Some((ai, ri));
            } else if r.route == format!("{} {}", TOKEN_BY_ROLE.0, TOKEN_BY_ROLE.1) {
                found.by_role = Some((ai, ri));
            }
        }
    }
    found.function = model
        .functions
        .values()
        .position(|f| f.binary.as_deref() == Some(ISSUER_BINARY))?;
    any.then_some(found)
}

/// The issuer's settings as it reads them from its environment.
fn issuer_settings(
    model: &Model,
    function: usize,
) -> Result<token_issuer::issue::IssuerSettings, String> {
    let f = model
        .functions
        .values()
        .nth(function)
        .ok_or_else(|| "no token issuer function".to_owned())?;
    token_issuer::Config::from_lookup(|k| text(f, k).map(str::to_owned))
        .map(|c| c.settings)
        .map_err(|e| {
            format!(
                "the token issuer {}'s configuration is invalid ({e}): it issues no token",
                f.logical_id
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sam_template::template::{load, Environment};
    use service_auth::{ApiGrant, ApiKey, KeyRecord};

    /// A key API (behind an authorizer taking keys), an IAM API whose backend maps
    /// four roles, the roles' policies in every shape the evaluation must not guess on.
    const T: &str = r#"
Resources:
  Auth:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {Variables: {SVCAUTH_KEY_SOURCE: ssm}}
  KeyApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth:
        DefaultAuthorizer: K
        Authorizers: {K: {FunctionArn: !GetAtt Auth.Arn, FunctionPayloadType: REQUEST, Identity: {Headers: [x-service-api-key]}}}
  IamApi:
    Type: AWS::Serverless::Api
    Properties: {StageName: v1, Auth: {DefaultAuthorizer: AWS_IAM}}
  Plain: {Type: AWS::IAM::Role, Properties: {}}
  Conditional: {Type: AWS::IAM::Role, Properties: {}}
  Managed:
    Type: AWS::IAM::Role
    Properties: {ManagedPolicyArns: [arn:aws:iam::aws:policy/AmazonAPIGatewayInvokeFullAccess]}
  Everything:
    Type: AWS::IAM::Role
    Properties: {}
  Invoke:
    Type: AWS::IAM::Policy
    Properties:
      Roles: [!Ref Plain, !Ref Managed]
      PolicyDocument:
        Statement:
          - {Effect: Allow, Action: execute-api:Invoke, Resource: !Sub "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${IamApi}/v1/GET/items/*"}
  InvokeIf:
    Type: AWS::IAM::RolePolicy
    Properties:
      RoleName: !Ref Conditional
      PolicyDocument:
        Statement:
          - {Effect: Allow, Action: execute-api:Invoke, Resource: "*", Condition: {StringEquals: {aws:PrincipalTag/team: a}}}
  InvokeAllBut:
    Type: AWS::IAM::RolePolicy
    Properties:
      RoleName: !Ref Everything
      PolicyDocument:
        Statement:
          - {Effect: Allow, NotAction: s3:*, NotResource: !Sub "arn:aws:execute-api:*:*:${IamApi}/v1/DELETE/*"}
  Backend:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          SVCAUTH_IAM_ROLES: !Sub "${Plain}=plain,${Conditional}=conditional,${Managed}=managed,${Everything}=everything,Elsewhere=elsewhere"
      Events:
        Get: {Type: Api, Properties: {RestApiId: !Ref IamApi, Path: "/items/{id}", Method: GET}}
        Del: {Type: Api, Properties: {RestApiId: !Ref IamApi, Path: "/items/{id}", Method: DELETE}}
        Open: {Type: Api, Properties: {RestApiId: !Ref IamApi, Path: /health, Method: GET, Auth: {Authorizer: NONE}}}
        Key: {Type: Api, Properties: {RestApiId: !Ref KeyApi, Path: "/items/{id}", Method: ANY}}
"#;

    fn access(routes: &[&str]) -> Access {
        let model = load(T, &Environment::default()).unwrap();
        let mut doc = ServiceDocument::new("plain", vec![ApiGrant::new(&["items"], routes)]);
        let key = ApiKey::generate(Some("test")).unwrap();
        doc.keys.push(KeyRecord::for_key(&key, UnixTime(1), None));
        Access::new(Sources {
            model,
            documents: vec![doc],
            revoked: HashSet::new(),
            registry: Registry::ById {
                names: [("key".to_owned(), "items".to_owned())].into(),
                label: "test".into(),
            },
            region: "us-east-1".into(),
            account: "123456789012".into(),
            now: UnixTime(2),
        })
        .unwrap()
    }

    /// (answer, reason) of `service` on `route` of `api` by `via`.
    fn ask(a: &Access, service: &str, api: &str, route: &str, via: Via) -> (Answer, String) {
        let si = a.service(service).unwrap();
        let ai = a.apis_named(api)[0];
        let ri = a.apis[ai]
            .routes
            .iter()
            .position(|r| r.route == route)
            .unwrap();
        let c = a.cell(si, ai, ri, via);
        (c.answer, c.reason.into_owned())
    }

    #[test]
    fn iam_answers_are_decided_or_unknown_with_the_reason() {
        let a = access(&["GET /items/*"]);
        let iam = |s: &str, route: &str| ask(&a, s, "IamApi", route, Via::Iam);
        assert_eq!(iam("plain", "GET /items/{id}").0, Answer::Allowed);
        assert_eq!(iam("plain", "DELETE /items/{id}").0, Answer::Refused);
        // NotAction/NotResource: everything but DELETE.
        assert_eq!(iam("everything", "GET /items/{id}").0, Answer::Allowed);
        assert_eq!(iam("everything", "DELETE /items/{id}").0, Answer::Refused);
        // A condition, a managed policy outside the templates, a role no template
        // defines: unknown, each saying why.
        for (service, why) in [
            ("conditional", "aws:PrincipalTag/team"),
            ("managed", "AmazonAPIGatewayInvokeFullAccess"),
            ("elsewhere", "no template given defines it"),
        ] {
            let (answer, reason) = iam(service, "GET /items/{id}");
            assert_eq!(answer, Answer::Unknown, "{service}: {reason}");
            assert!(reason.contains(why), "{service}: {reason}");
        }
        // An open route is open to every proof.
        for via in Via::ALL {
            assert_eq!(
                ask(&a, "conditional", "IamApi", "GET /health", via).0,
                Answer::Allowed
            );
        }
    }

    #[test]
    fn calls_go_to_the_route_api_gateway_picks() {
        assert!(routes_to("/users/{id}", "/users/42"));
        assert!(!routes_to("/users/{id}", "/users/by-email/x"));
        assert!(!routes_to("/users/{id}", "/users/"));
        assert!(routes_to("/files/{proxy+}", "/files/a/b"));
        assert!(!routes_to("/files/{proxy+}", "/files"));
        assert!(routes_to("/internal/*", "/internal/a/b"));
        let a = access(&["GET /items/*"]);
        let ai = a.apis_named("IamApi")[0];
        let ri = a.route_of(ai, "get", "/items/7").unwrap();
        assert_eq!(a.apis[ai].routes[ri].route, "GET /items/{id}");
        assert_eq!(
            a.route_of(ai, "GET", "/health")
                .map(|r| a.apis[ai].routes[r].route.as_str()),
            Some("GET /health")
        );
        assert_eq!(a.route_of(ai, "PUT", "/items/7"), None);
    }

    #[test]
    fn key_answers_cover_every_call_of_the_route() {
        // ANY takes every method: a GET grant covers some of its calls only.
        let a = access(&["GET /items/*"]);
        let (answer, reason) = ask(&a, "plain", "items", "ANY /items/{id}", Via::ApiKey);
        assert_eq!(answer, Answer::Unknown, "{reason}");
        let a = access(&["* /items/*"]);
        let (answer, reason) = ask(&a, "plain", "items", "ANY /items/{id}", Via::ApiKey);
        assert_eq!(answer, Answer::Allowed, "{reason}");
        assert_eq!(reason, "granted `* /items/*` on items");
        // Some ids only: unknown for the route, exact for one call.
        let a = access(&["* /items/4*"]);
        assert_eq!(
            ask(&a, "plain", "items", "ANY /items/{id}", Via::ApiKey).0,
            Answer::Unknown
        );
        let ai = a.apis_named("items")[0];
        let si = a.service("plain").unwrap();
        let call = |path: &str| a.call_cell(si, ai, 0, "GET", path, Via::ApiKey).answer;
        assert_eq!(call("/items/42"), Answer::Allowed);
        assert_eq!(call("/items/7"), Answer::Refused);
        // No token issuer in these templates: token answers say so.
        let (answer, reason) = ask(&a, "plain", "items", "ANY /items/{id}", Via::Token);
        assert_eq!(answer, Answer::Refused, "{reason}");
        assert!(reason.contains("takes no tokens"), "{reason}");
    }
}
