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
