//! `local-gateway`: the whole system on 127.0.0.1 with one command
//! (`cargo run -p local-gateway`). See the library docs and docs/local.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use local_gateway::banner::{self, BannerInput};
use local_gateway::services::{dev_keys, RealFunctions, UsersSource};
use local_gateway::{default_template, start, LocalCredentials, Options};

/// The svcauth internal APIs on 127.0.0.1, served like API Gateway REST: routes and
/// their authorization from template.yaml, the real REQUEST authorizer (with result
/// caching and policy evaluation), SigV4 for AWS_IAM routes, and the real
/// identity-service and tutor-service in process. Needs no AWS and no configuration.
#[derive(Parser, Debug)]
#[command(name = "local-gateway", version, about, long_about = None)]
struct Cli {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(short, long, default_value_t = 3000)]
    port: u16,

    /// Which APIs exist (the template's AuthMode): api-key, iam or both.
    #[arg(long, default_value = "both", value_parser = ["api-key", "iam", "both"])]
    auth_mode: String,

    /// The SAM template [default: ./template.yaml, else the repository's].
    #[arg(long)]
    template: Option<PathBuf>,

    /// Another template parameter, NAME=VALUE (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,

    /// Region of the method ARNs and of SigV4 credential scopes.
    #[arg(long, default_value = "us-east-1")]
    region: String,

    /// Override every authorizer's result cache TTL (the template's
    /// ReauthorizeEvery, 300 s); 0 turns the cache off.
    #[arg(long, value_name = "SECS")]
    authorizer_ttl: Option<u64>,

    /// The authorizer's key store: dev (embedded development keys), file or ssm.
    #[arg(long, env = "SVCAUTH_KEY_SOURCE", default_value = "dev", value_parser = ["dev", "file", "ssm"])]
    key_source: String,

    /// The JSON array of service documents for --key-source file (as written by
    /// `svcauth --store file --file PATH`).
    #[arg(long, env = "SVCAUTH_KEYS_FILE", value_name = "PATH")]
    keys_file: Option<PathBuf>,

    /// How long the authorizer keeps its loaded key store (SVCAUTH_CACHE_TTL_SECS).
    #[arg(
        long,
        env = "SVCAUTH_CACHE_TTL_SECS",
        value_name = "SECS",
        default_value_t = 300
    )]
    store_ttl: u64,

    /// SigV4 credentials file: {"AKID": {"secretAccessKey", "roleArn"}}
    /// [default: the embedded dev/local-credentials.json].
    #[arg(long, value_name = "PATH")]
    credentials: Option<PathBuf>,

    /// Users for the in-memory store, a JSON list [default: the embedded
    /// dev/dev-users.json].
    #[arg(long, value_name = "PATH", conflicts_with = "users_table")]
    users: Option<PathBuf>,

    /// Keep users in this DynamoDB table instead (the AWS SDK's default
    /// configuration; AWS_ENDPOINT_URL works with moto).
    #[arg(long, env = "USERS_TABLE", value_name = "TABLE")]
    users_table: Option<String>,

    /// Function log format on stderr: text, or json (as AWS_LAMBDA_LOG_FORMAT=json).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("local-gateway: {msg}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }

    let clock = authorizer::system_clock();
    let mut options = Options::new(cli.template.clone().unwrap_or_else(default_template));
    options.bind = SocketAddr::from(([127, 0, 0, 1], cli.port));
    options.env.region = cli.region.clone();
    options
        .env
        .parameters
        .insert("AuthMode".into(), cli.auth_mode.clone());
    for p in &cli.parameters {
        let Some((k, v)) = p.split_once('=') else {
            fail(format!("--parameter {p:?} is not NAME=VALUE"));
        };
        options.env.parameters.insert(k.to_owned(), v.to_owned());
    }
    options.result_ttl = cli.authorizer_ttl;
    options.clock = clock.clone();
    if let Some(path) = &cli.credentials {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| fail(format!("reading {}: {e}", path.display())));
        options.credentials = LocalCredentials::from_json(&text)
            .unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    }

    let mut functions = RealFunctions::dev(clock);
    functions.region = cli.region.clone();
    functions.credentials = options.credentials.clone();
    let keys_file = cli.keys_file.as_ref().map(|p| p.display().to_string());
    let store_ttl = cli.store_ttl.to_string();
    functions.authorizer = authorizer::Config::from_lookup(|k| match k {
        "SVCAUTH_KEY_SOURCE" => Some(cli.key_source.clone()),
        "SVCAUTH_KEYS_FILE" => keys_file.clone(),
        "SVCAUTH_CACHE_TTL_SECS" => Some(store_ttl.clone()),
        // Local API ids are not real ones, so no SSM parameter names them: default to
        // the names the template registers for its key APIs, whatever the key source.
        "SVCAUTH_API_NAMES" => std::env::var(k)
            .ok()
            .or_else(|| Some(service_auth::dev::DEV_API_NAMES.to_owned())),
        other => std::env::var(other).ok(),
    })
    .unwrap_or_else(|e| fail(e));
    let key_source_text = match cli.key_source.as_str() {
        "dev" => "development keys embedded in the authorizer (SVCAUTH_KEY_SOURCE=dev)".to_owned(),
        "file" => format!(
            "file {} (SVCAUTH_KEY_SOURCE=file)",
            keys_file.clone().unwrap_or_default()
        ),
        _ => "SSM Parameter Store (SVCAUTH_KEY_SOURCE=ssm, the AWS SDK's default configuration)"
            .to_owned(),
    };
    let users_text;
    functions.users = match (&cli.users_table, &cli.users) {
        (Some(table), _) => {
            users_text = format!("DynamoDB table {table} (USERS_TABLE)");
            UsersSource::DynamoDb {
                table: table.clone(),
            }
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| fail(format!("reading {}: {e}", path.display())));
            users_text = format!("in memory, from {}", path.display());
            UsersSource::Memory(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| fail(format!("{}: {e}", path.display()))),
            )
        }
        (None, None) => {
            users_text =
                "in memory, from the embedded dev/dev-users.json (lost at exit)".to_owned();
            UsersSource::Memory(local_gateway::services::dev_users())
        }
    };
    let first_user = match &functions.users {
        UsersSource::Memory(u) => u.first().map(|u| u.id.clone()),
        UsersSource::DynamoDb { .. } => None,
    };

    let running = start(options, &functions).await.unwrap_or_else(|e| fail(e));
    let keys = if cli.key_source == "dev" {
        dev_keys()
    } else {
        Default::default()
    };
    let text = banner::render(&BannerInput {
        model: running.model(),
        site: &running.site,
        keys: &keys,
        credentials: &functions.credentials,
        region: &cli.region,
        user_id: first_user.as_deref(),
        key_source: &key_source_text,
        users: &users_text,
        result_ttl: cli.authorizer_ttl,
    });
    print!("{text}");
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("local-gateway: stopping");
    running.stop().await;
}
