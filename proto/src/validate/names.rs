//! Names as Kubernetes checks them: DNS-1123 labels and subdomains,
//! DNS-1035 labels, qualified names (label and annotation keys), label
//! values, and ConfigMap/Secret keys.

pub(super) const MAX_NAME: usize = 253;
pub(super) const MAX_LABEL: usize = 63;

/// A DNS-1123 label: at most 63 lowercase letters, digits and '-', starting
/// and ending with a letter or digit.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_LABEL {
        return Err(format!("{s:?} is longer than {MAX_LABEL} characters"));
    }
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = s.as_bytes()[0].is_ascii_alphanumeric() && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if !ok_chars || !ok_ends {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_NAME {
        return Err(format!("{s:?} is longer than {MAX_NAME} characters"));
    }
    if s.split('.').any(|part| dns1123_label(part).is_err()) {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1035 label (Service names): a DNS-1123 label starting with a letter.
pub(super) fn dns1035_label(s: &str) -> Result<(), String> {
    dns1123_label(s)?;
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(format!("{s:?} must start with a lowercase letter"));
    }
    Ok(())
}

/// A label or annotation key: an optional DNS subdomain prefix and '/', then
/// a name of at most 63 letters, digits, '-', '_' and '.'.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|e| format!("prefix of {key:?}: {e}"))?;
    }
    label_value(name).map_err(|e| format!("key {key:?}: {e}"))?;
    if name.is_empty() {
        return Err(format!("key {key:?} has an empty name"));
    }
    Ok(())
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' and '.',
/// starting and ending with a letter or digit.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_LABEL {
        return Err(format!("{value:?} is longer than {MAX_LABEL} characters"));
    }
    let bytes = value.as_bytes();
    let ok_chars = bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
    if !ok_chars || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(format!(
            "{value:?} must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A ConfigMap or Secret key: letters, digits, '-', '_' and '.'.
pub(super) fn config_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_NAME || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "{key:?} is not a valid key: use letters, digits, '-', '_' and '.'"
        ));
    }
    if key == "." || key == ".." {
        return Err(format!("{key:?} is not a valid key"));
    }
    Ok(())
}
