//! The AWS edge: the SSM client from aws-config's normal chain (or one injected by a
//! test), and the few direct parameter calls outside the key store: a caller's key
//! parameter and the legacy map.

use std::time::Duration;

use keystore_ssm::aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use keystore_ssm::aws_sdk_ssm::types::ParameterType;
use keystore_ssm::aws_sdk_ssm::Client;
use zeroize::Zeroizing;

use crate::cli::GlobalArgs;
use crate::error::Error;

/// Where the SSM (and, for `tokens keys`, KMS) clients come from.
#[derive(Debug, Clone)]
pub enum Aws {
    /// aws-config's chain (environment, profile, IMDS...), with --region/--profile on top.
    FromEnvironment,
    /// A ready SSM client (tests point one at moto_server); no KMS.
    Client(Client),
    /// Ready SSM and KMS clients (tests of `tokens keys`).
    Clients {
        ssm: Client,
        kms: token_kms::aws_sdk_kms::Client,
    },
}

impl Aws {
    pub(crate) async fn client(&self, global: &GlobalArgs) -> Result<Client, Error> {
        match self {
            Self::Client(c) | Self::Clients { ssm: c, .. } => Ok(c.clone()),
            Self::FromEnvironment => Ok(Client::new(&sdk_config(global).await?)),
        }
    }

    /// The KMS client (`tokens keys add|remove|list`).
    pub(crate) async fn kms(
        &self,
        global: &GlobalArgs,
    ) -> Result<token_kms::aws_sdk_kms::Client, Error> {
        match self {
            Self::Clients { kms, .. } => Ok(kms.clone()),
            Self::Client(_) => Err(Error::Aws(
                "this command needs KMS, and only an SSM client was given".into(),
            )),
            Self::FromEnvironment => Ok(token_kms::aws_sdk_kms::Client::new(
                &sdk_config(global).await?,
            )),
        }
    }
}

/// aws-config's chain with --region/--profile on top, and timeouts for a CLI.
async fn sdk_config(global: &GlobalArgs) -> Result<aws_config::SdkConfig, Error> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build(),
    );
    if let Some(region) = &global.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &global.profile {
        loader = loader.profile_name(profile);
    }
    let conf = loader.load().await;
    if conf.region().is_none() {
        return Err(Error::Aws(
            "no AWS region is configured: pass --region, set AWS_REGION, or use a profile (--profile / AWS_PROFILE) that names one".into(),
        ));
    }
    Ok(conf)
}

/// The client's region, for messages.
pub(crate) fn region_of(client: &Client) -> String {
    client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "unset".into())
}

/// Whether a parameter exists. Reads it without decryption: the value is not needed.
pub(crate) async fn parameter_exists(client: &Client, name: &str) -> Result<bool, Error> {
    match client
        .get_parameter()
        .name(name)
        .with_decryption(false)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(false)
        }
        Err(e) => Err(aws_error("GetParameter", name, client, e)),
    }
}

/// Writes a caller's clear key as a SecureString, encrypted with `kms_key_id` when
/// one is configured (on every write: an overwrite that names no key falls back to
/// the account's default key).
pub(crate) async fn put_secret(
    client: &Client,
    name: &str,
    secret: &str,
    overwrite: bool,
    kms_key_id: Option<&str>,
) -> Result<i64, Error> {
    let put = client
        .put_parameter()
        .name(name)
        .value(secret)
        .r#type(ParameterType::SecureString)
        .set_key_id(kms_key_id.map(str::to_owned))
        .overwrite(overwrite);
    let put = if overwrite {
        put
    } else {
        put.description("API key of this service for calling internal APIs; written by svcauth")
    };
    match put.send().await {
        Ok(out) => Ok(out.version()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_already_exists()) => Err(Error::Usage(format!(
            "{name} already holds a key: use `svcauth keys rotate` to replace it with a grace period, pass --overwrite-delivery, or choose --delivery-parameter / --deliver stdout"
        ))),
        Err(e) => Err(aws_error("PutParameter", name, client, e)),
    }
}

/// Reads a parameter's value, decrypted. The value is wiped when dropped.
pub(crate) async fn read_parameter(
    client: &Client,
    name: &str,
) -> Result<Zeroizing<String>, Error> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| aws_error("GetParameter", name, client, e))?;
    let value = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| not_found(name, client))?;
    Ok(Zeroizing::new(value.to_owned()))
}

fn not_found(name: &str, client: &Client) -> Error {
    Error::NotFound(format!(
        "parameter {name} does not exist in region {}: check the name and the region (--region, AWS_REGION)",
        region_of(client)
    ))
}

/// An SDK error as an error that says what to do. SSM error messages name parameters,
/// never values, so they are safe to show.
pub(crate) fn aws_error<E, R>(
    operation: &str,
    name: &str,
    client: &Client,
    e: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let region = region_of(client);
    match e.code() {
        Some("ParameterNotFound") => not_found(name, client),
        Some("AccessDeniedException") => Error::Aws(format!(
            "access denied: {operation} on {name} (region {region}); the caller needs ssm:{operation} on this parameter and, for SecureString values, kms:Encrypt/kms:Decrypt on its KMS key"
        )),
        Some("UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException") => Error::Aws(format!(
            "AWS rejected the credentials for {operation} on {name}: refresh them (aws sso login, or check AWS_PROFILE / --profile)"
        )),
        // A validation message may quote the value sent: never show one for a write.
        Some(code) if operation == "PutParameter" => {
            Error::Aws(format!("{operation} on {name} (region {region}) failed: {code}"))
        }
        Some(code) => Error::Aws(format!(
            "{operation} on {name} (region {region}) failed: {code}: {}",
            e.message().unwrap_or("")
        )),
        None => Error::Aws(format!(
            "SSM could not be reached: check the network, the region (--region / AWS_REGION) and AWS_ENDPOINT_URL\n({operation} on {name} in region {region}: {})",
            causes(&e)
        )),
    }
}

/// An error and its causes as one line, `a: b: c`, each said once. The SDK's own
/// rendering of a dispatch failure ends in a `Debug` dump (`DispatchFailure { .. }`),
/// which tells an operator nothing.
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}
