/*!
A local API Gateway (REST) for this project: serves the internal APIs of
`template.yaml` on 127.0.0.1 with the real authorizer and the real backends, so the
whole system runs with one command and no AWS, no Docker.

* Routes and their authorization come from the template ([`template`]).
* REQUEST authorizer routes: identity sources, the authorizer invoked with a REQUEST
  event, `Unauthorized` → 401, any other error → 500, the returned policy evaluated
  against the method ARN ([`policy`]), results cached by identity source for the
  authorizer's TTL ([`cache`]), context values passed to the backend as strings (an
  object or array → 500).
* `AWS_IAM` routes: SigV4 verified against development credentials ([`sigv4`]), then
  the caller role's `execute-api` policies from the template.
* Backends receive a v1 proxy event and answer a proxy response ([`function`]).
* One access log line per request in the template's access log format.

The functions behind the routes are supplied by a [`FunctionFactory`]: the real
authorizer and services ([`services::RealFunctions`]) or stubs in tests.
*/
#![forbid(unsafe_code)]

pub mod banner;
pub mod cache;
pub mod client;
pub mod dev_signer;
pub mod function;
pub mod gateway;
pub mod http;
pub mod routes;
pub mod services;
pub mod sign;
pub mod sigv4;
pub mod startup;
pub mod util;

// The template reader and the execute-api IAM evaluation live in `sam-template` (one
// reader for the gateway and `svcauth access`); re-exported under their old paths.
pub use sam_template::{policy, template, yaml};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

pub use function::{Function, FunctionError, InvokeContext};
pub use gateway::{AccessLogSink, Clock, Gateway};
pub use sigv4::LocalCredentials;
pub use template::{Environment, Model};

/// The gateway's start-up options.
pub struct Options {
    /// The SAM template.
    pub template: PathBuf,
    /// Region, account, stack name and parameter overrides (`AuthMode`).
    pub env: Environment,
    /// Where to listen: a loopback address only. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// Overrides every authorizer's `ReauthorizeEvery` (0 disables the result cache).
    pub result_ttl: Option<u64>,
    /// The gateway's clock (authorizer result cache, SigV4 dates).
    pub clock: Clock,
    /// SigV4 credentials for `AWS_IAM` routes.
    pub credentials: LocalCredentials,
    /// Where access log lines go.
    pub access_log: AccessLogSink,
}

impl Options {
    /// Defaults: the repository's `template.yaml`, `AuthMode=both`, 127.0.0.1:3000,
    /// the wall clock, the development credentials, access log lines on stdout.
    pub fn new(template: PathBuf) -> Self {
        let mut env = Environment::default();
        env.parameters.insert("AuthMode".into(), "both".into());
        Self {
            template,
            env,
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            result_ttl: None,
            clock: authorizer::system_clock(),
            credentials: LocalCredentials::dev(),
            // Never fails the request: a closed stdout loses the line, nothing else.
            access_log: Arc::new(|line| {
                use std::io::Write;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }),
        }
    }
}

/// The template next to this crate in the repository (`../../template.yaml`), used
/// when `./template.yaml` is absent.
pub fn default_template() -> PathBuf {
    let here = PathBuf::from("template.yaml");
    if here.exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// The gateway's URLs, known once it listens.
#[derive(Debug, Clone)]
pub struct Site {
    pub addr: SocketAddr,
    /// API logical id → base URL with the stage (`http://127.0.0.1:3000/identitykey/v1`).
    pub api_urls: BTreeMap<String, String>,
}

impl Site {
    pub fn api_url(&self, logical_id: &str) -> Option<&str> {
        self.api_urls.get(logical_id).map(String::as_str)
    }
}

pub type FactoryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<BTreeMap<String, Arc<dyn Function>>, String>> + Send + 'a>>;

/// Builds the functions behind the template's routes (by logical id).
pub trait FunctionFactory: Send + Sync {
    fn build<'a>(&'a self, model: &'a Model, site: &'a Site) -> FactoryFuture<'a>;
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Template(#[from] template::TemplateError),
    #[error("the gateway listens on loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),
    #[error("binding {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("building the functions: {0}")]
    Functions(String),
}

/// A running gateway. Stops when [`Running::stop`] is called or it is dropped.
pub struct Running {
    pub site: Site,
    gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.site.addr
    }

    /// Base URL of an API by logical id (`IdentityKeyApi`), stage included.
    pub fn url(&self, api_logical_id: &str) -> String {
        self.site
            .api_url(api_logical_id)
            .unwrap_or_else(|| {
                panic!("the template has no API {api_logical_id} for these parameters")
            })
            .to_owned()
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn model(&self) -> &Model {
        self.gateway.model()
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The root template's parameter naming the roles the platform's token issuer maps to
/// services (`SVCAUTH_IAM_ROLES`), and the example's output printing its own roles.
const TOKEN_IAM_ROLES: &str = "TokenIamRoles";

/// Reads the template as the gateway serves it.
///
/// A deployed root names the example's roles after its stack and gives the platform's
/// token issuer those names before the roles exist (`TokenIamRoles`,
/// `{stack}-tutor-service=...`). A local run knows every role by its logical id
/// (`dev/local-credentials.json`), so unless `TokenIamRoles` is given, the issuer gets
/// the line the example prints for its own roles (its `TokenIamRoles` output), which
/// names them as the model does.
pub fn read_model(text: &str, env: &mut Environment) -> Result<Model, template::TemplateError> {
    let model = template::load(text, env)?;
    let declared = model
        .stacks
        .first()
        .is_some_and(|top| top.parameters.contains_key(TOKEN_IAM_ROLES));
    if !declared || env.parameters.contains_key(TOKEN_IAM_ROLES) {
        return Ok(model);
    }
    let printed = model
        .stacks
        .iter()
        .skip(1)
        .find_map(|s| s.outputs.get(TOKEN_IAM_ROLES).cloned());
    match printed {
        Some(roles) => {
            env.parameters.insert(TOKEN_IAM_ROLES.into(), roles);
            template::load(text, env)
        }
        None => Ok(model),
    }
}

/// Reads the template, binds, builds the functions and serves.
pub async fn start(options: Options, factory: &dyn FunctionFactory) -> Result<Running, StartError> {
    let text = std::fs::read_to_string(&options.template).map_err(|error| StartError::Read {
        path: options.template.display().to_string(),
        error,
    })?;
    let mut env = options.env.clone();
    if env.template_dir.is_none() {
        // A nested application's local Location is relative to the template.
        env.template_dir = options.template.parent().map(std::path::Path::to_path_buf);
    }
    let model = read_model(&text, &mut env)?;
    if !options.bind.ip().is_loopback() {
        return Err(StartError::NotLoopback(options.bind));
    }
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|error| StartError::Bind {
            addr: options.bind,
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| StartError::Bind {
        addr: options.bind,
        error,
    })?;
    let site = Site {
        addr,
        api_urls: model
            .apis
            .iter()
            .map(|a| {
                (
                    a.logical_id.clone(),
                    format!("http://{addr}/{}/{}", a.api_id, a.stage),
                )
            })
            .collect(),
    };
    let functions = factory
        .build(&model, &site)
        .await
        .map_err(StartError::Functions)?;
    let gateway = Arc::new(Gateway {
        model: Arc::new(model),
        functions,
        cache: Default::default(),
        credentials: options.credentials,
        clock: options.clock,
        region: options.env.region.clone(),
        account: options.env.account.clone(),
        ttl_override: options.result_ttl,
        access_log: options.access_log,
        port: addr.port(),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(http::serve(listener, gateway.clone(), stopped));
    Ok(Running {
        site,
        gateway,
        stop,
        task: Some(task),
    })
}
