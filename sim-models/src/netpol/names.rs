//! The API server's syntax rules for names, label keys and values, and port
//! names (kubernetes `apimachinery/pkg/util/validation`). Each check returns a
//! message in the API server's words on failure.

/// `IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters matching `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
/// Label keys and selector keys must be qualified names.
pub(crate) fn check_qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if name.contains('/') {
        return Err(format!(
            "`{value}`: a qualified name must consist of an optional DNS subdomain prefix and `/`, then a name"
        ));
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(format!("`{value}`: prefix part must be non-empty"));
        }
        check_dns1123_subdomain(prefix).map_err(|e| format!("`{value}`: prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err(format!("`{value}`: name part must be non-empty"));
    }
    if name.len() > 63 {
        return Err(format!(
            "`{value}`: name part must be no more than 63 characters"
        ));
    }
    if !is_label_name_syntax(name) {
        return Err(format!(
            "`{value}`: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// `IsValidLabelValue`: empty, or at most 63 characters with the name syntax.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!(
            "label value `{value}` must be no more than 63 characters"
        ));
    }
    if !is_label_name_syntax(value) {
        return Err(format!(
            "label value `{value}` must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

fn is_label_name_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsDNS1123Label`: at most 63 lowercase alphanumerics or '-', alphanumeric at
/// both ends. Namespace names must be DNS labels.
pub(crate) fn check_dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 63 || !is_dns_label_syntax(value) {
        return Err(format!(
            "`{value}` must be a lowercase RFC 1123 label: at most 63 characters, lowercase alphanumeric or '-', starting and ending with an alphanumeric character"
        ));
    }
    Ok(())
}

/// `IsDNS1123Subdomain`: at most 253 characters, dot-separated DNS labels.
/// Object names (NetworkPolicy, Pod, Deployment...) must be DNS subdomains.
pub(crate) fn check_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 || !value.split('.').all(is_dns_label_syntax) {
        return Err(format!(
            "`{value}` must be a lowercase RFC 1123 subdomain: at most 253 characters, lowercase alphanumeric, '-' or '.', starting and ending with an alphanumeric character"
        ));
    }
    Ok(())
}

fn is_dns_label_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `IsValidPortName` (IANA_SVC_NAME): 1-15 characters, lowercase alphanumeric or
/// '-', at least one letter, no leading, trailing or doubled '-'.
pub(crate) fn check_port_name(value: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("port name `{value}` {why}"));
    if value.is_empty() || value.len() > 15 {
        return fail("must be 1 to 15 characters long");
    }
    if !value
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return fail("must contain only lowercase alphanumeric characters or '-'");
    }
    if !value.bytes().any(|c| c.is_ascii_lowercase()) {
        return fail("must contain at least one letter");
    }
    if value.contains("--") {
        return fail("must not contain consecutive hyphens");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return fail("must not begin or end with a hyphen");
    }
    Ok(())
}

/// `IsValidPortNum`: 1..=65535.
pub(crate) fn check_port_number(value: i64) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!(
            "port {value} is out of range: must be between 1 and 65535, inclusive"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "kubernetes.io/metadata.name",
            "a_b-c.d",
            "A1",
        ] {
            assert!(check_qualified_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-app",
            "app-",
            "/app",
            "a/b/c",
            "Foo.com/x",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(check_qualified_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "a", "v1.2_3-x"] {
            assert!(check_label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-a", "a/b", "a b", &"x".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names_and_numbers() {
        for ok in ["http", "serve-80-tcp", "h2c", "a"] {
            assert!(check_port_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "80",
            "HTTP",
            "-http",
            "http-",
            "ht--tp",
            "abcdefghijklmnop",
            "ht_tp",
        ] {
            assert!(check_port_name(bad).is_err(), "{bad}");
        }
        assert_eq!(check_port_number(1), Ok(1));
        assert_eq!(check_port_number(65535), Ok(65535));
        assert!(check_port_number(0).is_err());
        assert!(check_port_number(70000).is_err());
        assert!(check_port_number(-1).is_err());
    }

    #[test]
    fn dns_names() {
        assert!(check_dns1123_label("prod-1").is_ok());
        assert!(check_dns1123_label("Prod").is_err());
        assert!(check_dns1123_label("a.b").is_err());
        assert!(check_dns1123_subdomain("allow.frontend-1").is_ok());
        assert!(check_dns1123_subdomain("allow..x").is_err());
        assert!(check_dns1123_subdomain("").is_err());
    }
}
