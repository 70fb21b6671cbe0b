//! Checks of the command line made before anything starts, so that a wrong or
//! contradictory option stops the gateway with a message naming it instead of
//! serving something else than asked.

/// The template's `AuthMode` values.
pub const AUTH_MODES: [&str; 5] = ["api-key", "iam", "both", "token", "key-or-token"];

/// `--parameter NAME=VALUE` options as pairs, and the `AuthMode` to use: from
/// `--auth-mode`, or `--parameter AuthMode=...`, which must agree when both are given
/// (default `both`).
pub fn parameters_and_auth_mode(
    auth_mode_flag: Option<&str>,
    parameters: &[String],
) -> Result<(Vec<(String, String)>, String), String> {
    let mut pairs = Vec::new();
    for p in parameters {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!(
                "--parameter {p:?} is not NAME=VALUE, e.g. --parameter Environment=dev"
            ));
        };
        if k.trim().is_empty() {
            return Err(format!("--parameter {p:?} has no name before `=`"));
        }
        pairs.push((k.trim().to_owned(), v.to_owned()));
    }
    let from_parameter = pairs
        .iter()
        .rev()
        .find(|(k, _)| k == "AuthMode")
        .map(|(_, v)| v.clone());
    let mode: String = match (auth_mode_flag, from_parameter.as_deref()) {
        (Some(flag), Some(param)) if flag != param => {
            return Err(format!(
                "--auth-mode {flag} and --parameter AuthMode={param} disagree: give one of them (--auth-mode is the short form)"
            ))
        }
        (Some(m), _) | (None, Some(m)) => m.to_owned(),
        (None, None) => "both".to_owned(),
    };
    if !AUTH_MODES.contains(&mode.as_str()) {
        return Err(format!(
            "AuthMode {mode:?} is not one of the template's values: {}",
            AUTH_MODES.join(", ")
        ));
    }
    pairs.retain(|(k, _)| k != "AuthMode");
    Ok((pairs, mode))
}

/// `--service-key-file NAME=PATH` options: the clear key each named calling service
/// sends through the gateway, read from its file (first line, trimmed). Errors name
/// the option and the file, never the file's content.
pub fn service_key_files(
    options: &[String],
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for o in options {
        let Some((service, path)) = o.split_once('=') else {
            return Err(format!(
                "--service-key-file {o:?} is not SERVICE=PATH, e.g. --service-key-file tutor-service=tutor.key"
            ));
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--service-key-file {service}={path}: reading {path}: {e}"))?;
        let key = text.lines().next().unwrap_or("").trim().to_owned();
        if service_auth::ApiKey::parse(&key).is_err() {
            return Err(format!(
                "--service-key-file {service}={path}: the first line of {path} is not an API key (write the key alone, as `svcauth keys create --deliver stdout` prints it)"
            ));
        }
        out.insert(service.trim().to_owned(), key);
    }
    Ok(out)
}

/// `--keys-file` with a key source other than `file` would be ignored: refused when it
/// was given on the command line; only noted (`Ok(Some(note))`) when it came from
/// `SVCAUTH_KEYS_FILE`, which `svcauth --store file` reads too and may be exported.
pub fn keys_file_use(
    key_source: &str,
    keys_file: Option<&std::path::Path>,
    from_command_line: bool,
) -> Result<Option<String>, String> {
    let Some(path) = keys_file.filter(|_| key_source != "file") else {
        return Ok(None);
    };
    let path = path.display();
    if from_command_line {
        return Err(format!(
            "--keys-file {path} is read only with --key-source file (the key source is {key_source}): add --key-source file to use the file, or leave --keys-file out"
        ));
    }
    Ok(Some(format!(
        "SVCAUTH_KEYS_FILE={path} is ignored: the key source is {key_source} (--key-source file reads it)"
    )))
}

/// The services `--service-key-file` names must be calling services of the template
/// (functions with `SERVICE_NAME`): a misspelt one would be silently unused.
pub fn check_key_file_services<'a>(
    given: impl IntoIterator<Item = &'a String>,
    callers: &[String],
) -> Result<(), String> {
    for service in given {
        if !callers.contains(service) {
            let known = if callers.is_empty() {
                "none in this AuthMode".to_owned()
            } else {
                callers.join(", ")
            };
            return Err(format!(
                "--service-key-file {service}=...: {service} is not a calling service of the template (calling services: {known}); check the name"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn auth_mode_comes_from_one_place_or_is_refused() {
        let (p, m) = parameters_and_auth_mode(None, &[]).unwrap();
        assert!(p.is_empty());
        assert_eq!(m, "both");
        let (_, m) = parameters_and_auth_mode(Some("iam"), &[]).unwrap();
        assert_eq!(m, "iam");
        let (p, m) =
            parameters_and_auth_mode(None, &strings(&["AuthMode=api-key", "Environment=test"]))
                .unwrap();
        assert_eq!(m, "api-key");
        assert_eq!(p, vec![("Environment".to_owned(), "test".to_owned())]);
        let (_, m) = parameters_and_auth_mode(Some("iam"), &strings(&["AuthMode=iam"])).unwrap();
        assert_eq!(m, "iam");
        let e = parameters_and_auth_mode(Some("api-key"), &strings(&["AuthMode=iam"])).unwrap_err();
        assert!(
            e.contains("--auth-mode api-key") && e.contains("AuthMode=iam"),
            "{e}"
        );
        let e = parameters_and_auth_mode(None, &strings(&["AuthMode=sometimes"])).unwrap_err();
        assert!(e.contains("api-key, iam, both"), "{e}");
        let e = parameters_and_auth_mode(None, &strings(&["Environment"])).unwrap_err();
        assert!(e.contains("NAME=VALUE"), "{e}");
        assert!(parameters_and_auth_mode(None, &strings(&["=x"])).is_err());
    }

    /// Issue 19 B5: `--keys-file` without `--key-source file`, and a misspelt service
    /// in `--service-key-file`, are no longer ignored.
    #[test]
    fn options_that_would_be_ignored_are_refused() {
        let file = std::path::Path::new("my-store.json");
        assert_eq!(keys_file_use("file", Some(file), true), Ok(None));
        assert_eq!(keys_file_use("dev", None, true), Ok(None));
        let e = keys_file_use("dev", Some(file), true).unwrap_err();
        assert!(
            e.contains("--key-source file") && e.contains("my-store.json"),
            "{e}"
        );
        let note = keys_file_use("ssm", Some(file), false).unwrap().unwrap();
        assert!(
            note.contains("SVCAUTH_KEYS_FILE") && note.contains("ssm"),
            "{note}"
        );
        let callers = vec!["tutor-service".to_owned()];
        assert!(check_key_file_services(&["tutor-service".to_owned()], &callers).is_ok());
        let e = check_key_file_services(&["tutor-servce".to_owned()], &callers).unwrap_err();
        assert!(
            e.contains("tutor-servce") && e.contains("calling services: tutor-service"),
            "{e}"
        );
        assert!(check_key_file_services(&["x".to_owned()], &[])
            .unwrap_err()
            .contains("none in this AuthMode"));
    }

    #[test]
    fn service_key_files_name_the_file_never_the_content() {
        let dir = std::env::temp_dir().join(format!("lgw-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("tutor.key");
        let key = service_auth::ApiKey::generate(Some("dev")).unwrap();
        std::fs::write(&good, format!("{}\n", key.expose_secret())).unwrap();
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "not-a-key-but-secretish\n").unwrap();
        let got = service_key_files(&[format!("tutor-service={}", good.display())]).unwrap();
        assert_eq!(got["tutor-service"], key.expose_secret());
        let e = service_key_files(&[format!("tutor-service={}", bad.display())]).unwrap_err();
        assert!(e.contains(&bad.display().to_string()), "{e}");
        assert!(!e.contains("secretish"), "{e}");
        let e = service_key_files(&["tutor-service=/nonexistent/k".into()]).unwrap_err();
        assert!(e.contains("/nonexistent/k"), "{e}");
        assert!(service_key_files(&["tutor.key".into()])
            .unwrap_err()
            .contains("SERVICE=PATH"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
