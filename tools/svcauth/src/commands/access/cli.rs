//! The command line of `svcauth access`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;

/// Who may call which route of which API, by which proof (API key, IAM, token), and
/// why: read from the key store, the API registry and the SAM templates.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    Matrix(MatrixArgs),
    Explain(ExplainArgs),
    Check(ExpectArgs),
    Diff(DiffArgs),
}

/// Where the answers come from, besides the store options.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// A SAM template: its APIs and routes, their authorizers, the role policies that
    /// grant execute-api:Invoke, the backends' role maps (SVCAUTH_IAM_ROLES), the
    /// token issuer. Nested applications with a local Location are read too. Repeat to
    /// read stacks deployed side by side, the exporting one first (e.g.
    /// platform/template.yaml, then example/template.yaml) [default: template.yaml].
    #[arg(long = "template", value_name = "FILE")]
    pub templates: Vec<PathBuf>,
    /// A template parameter, `KEY=VALUE` (e.g. `AuthMode=both`), given to every
    /// template that declares it. Repeat for more.
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// The stack name of each --template, in order (what `${AWS::StackName}` and the
    /// export names use) [default: svcauth-{env}, then svcauth-{env}-2, ...].
    #[arg(long = "stack-name", value_name = "NAME")]
    pub stack_names: Vec<String>,
    /// API names by API id, `ID=NAME,...`, as the authorizer's SVCAUTH_API_NAMES
    /// (locally the ids are the templates' local ids, e.g. `identitykey=identity`)
    /// [default: the registry next to the key store with --store ssm; with --store
    /// file, the names the templates declare].
    #[arg(long, value_name = "ID=NAME,...", env = "SVCAUTH_API_NAMES")]
    pub api_names: Option<String>,
    /// The account id in the templates' ARNs.
    #[arg(long, value_name = "ID", default_value = "123456789012")]
    pub account: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per service, API and route; a column per proof (fits 100 columns).
    Table,
    /// `{"cells":[{"service","api","route","via","allowed","reason","rule"}], ...}`;
    /// `allowed` is null when it cannot be decided.
    Json,
    /// `service,api,route,via,allowed,reason,rule`.
    Csv,
    /// A mermaid flowchart: services, APIs, and the proofs that allow some route on
    /// the edges (for docs; GitHub renders it).
    Mermaid,
}

/// Every service against every API and route, one answer per proof.
///
/// Services come from the key store and the templates' role maps; APIs and routes
/// from the templates (an API the grants name but no template defines shows its grant
/// patterns as routes). Each cell is allowed, refused or unknown, with the reason;
/// unknown is never a guess (a condition not evaluated, a pattern covering only some
/// values of a parameter, a policy not in the templates).
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct MatrixArgs {
    /// Only this calling service (repeat for more).
    #[arg(long, value_name = "NAME")]
    pub service: Vec<String>,
    /// Only this API: its registered name (`identity`), or its logical id in the
    /// template (repeat for more).
    #[arg(long, value_name = "NAME")]
    pub api: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// For one call, each proof's answer and the grant, policy statement or token rule
/// that decides it (or why none does).
///
/// Exit code 0 when some proof allows the call, 1 when none does.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ExplainArgs {
    /// The calling service.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The API: its registered name (`identity`) or logical id (`IdentityIamApi`); a
    /// name served by several APIs (a key API and an IAM API) explains each.
    #[arg(long, value_name = "NAME")]
    pub api: String,
    /// The call, `METHOD /path`: a route as the template writes it
    /// (`GET /internal/users/{id}`) or a concrete path (`GET /internal/users/42`).
    #[arg(long, value_name = "ROUTE")]
    pub route: String,
    /// Print the answers as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Check a list of expectations; exit 0 when all hold, 1 listing each that does not.
///
/// The file is YAML (or JSON): a list of `{service, api, route, allowed, via?}`.
/// Without `via`, `allowed: true` holds when some proof allows the call and `allowed:
/// false` when none does; with `via` (`api-key`, `iam` or `token`), that proof's
/// answer must be it. An answer that cannot be decided is a violation. For a
/// platform repository's CI.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ExpectArgs {
    /// The expectations file.
    #[arg(value_name = "FILE")]
    pub expectations: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// The target of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Native IAM (SigV4): the same backend route on an AWS_IAM API, else this API
    /// with AWS_IAM.
    Iam,
    /// Signed service tokens on the same routes.
    Token,
}

/// The calls whose answer would change if the APIs moved to IAM or tokens: the
/// checklist of a migration from keys.
///
/// For every call some proof allows now (or none does), the answer the target proof
/// would give: on the API that serves the same backend route with that proof, else
/// on the same route. Lists only the calls that would change, lose or gain access.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct DiffArgs {
    /// The proof the APIs would move to.
    #[arg(long, value_enum)]
    pub to: Target,
    /// Only this calling service (repeat for more).
    #[arg(long, value_name = "NAME")]
    pub service: Vec<String>,
    /// Only this API (repeat for more).
    #[arg(long, value_name = "NAME")]
    pub api: Vec<String>,
    /// Print the changes as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}
