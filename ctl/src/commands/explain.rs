//! `ctl explain KIND[.FIELD.PATH]`: the fields of a kind, as
//! `kubectl explain` prints them, from the protobuf descriptors the codec
//! decodes manifests with: Kubernetes' field names (the JSON names),
//! kubectl's type words (`<string>`, `<[]Object>`,
//! `<map[string]string>`), and the comments of the proto files as
//! descriptions where they have one.

use bosun_proto::Kind;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind as FieldKind, MessageDescriptor};

use super::parse_kind;
use crate::{CtlError, Io};

/// Message types written as bare strings in manifests (see the codec).
const STRING_MESSAGES: [&str; 3] = ["google.protobuf.Timestamp", "bosun.v1.Quantity", "bosun.v1.IntOrString"];

/// `ctl explain`.
///
/// # Errors
/// An unknown kind or field.
pub fn run(path: &str, io: &mut Io<'_>) -> Result<(), CtlError> {
    let pool = DescriptorPool::decode(bosun_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| CtlError::Invalid(format!("the field descriptions do not decode: {e}")))?;
    let mut parts = path.split('.');
    let kind = parse_kind(parts.next().unwrap_or_default())?;
    let message = pool
        .get_message_by_name(&kind.message_name())
        .ok_or_else(|| CtlError::Invalid(format!("no description of {}", kind.name())))?;
    let fields: Vec<&str> = parts.collect();
    write!(io.stdout, "{}", explain(kind, &message, &fields)?)?;
    Ok(())
}

/// The text for `fields` (a path, empty for the kind itself) of `kind`.
fn explain(kind: Kind, message: &MessageDescriptor, fields: &[&str]) -> Result<String, CtlError> {
    let mut out = format!("KIND:     {}\nVERSION:  {}\n\n", kind.name(), kind.api_version());
    let mut current = message.clone();
    let mut field = None;
    for (index, name) in fields.iter().enumerate() {
        let found = current.fields().find(|f| f.json_name() == *name).ok_or_else(|| {
            CtlError::Invalid(format!(
                "field \"{name}\" does not exist in {}",
                std::iter::once(kind.plural())
                    .chain(fields[..index].iter().copied())
                    .collect::<Vec<_>>()
                    .join(".")
            ))
        })?;
        match nested(&found) {
            Some(inner) => current = inner,
            None if index + 1 < fields.len() => {
                return Err(CtlError::Invalid(format!(
                    "field \"{}\" does not exist in {}: {name} is {}",
                    fields[index + 1],
                    fields[..=index].join("."),
                    type_word(&found)
                )))
            }
            None => {}
        }
        field = Some(found);
    }
    let description = match &field {
        Some(field) => {
            let heading = if nested(field).is_some() { "RESOURCE" } else { "FIELD" };
            out.push_str(&format!("{heading}: {} <{}>\n\n", field.json_name(), type_word(field)));
            comment(field.parent_file().file_descriptor_proto(), field.path())
        }
        None => comment(message.parent_file().file_descriptor_proto(), message.path()),
    };
    if let Some(text) = description {
        out.push_str("DESCRIPTION:\n");
        for line in text.lines() {
            out.push_str(&format!("     {}\n", line.trim()));
        }
        out.push('\n');
    }
    if field.as_ref().is_none_or(|f| nested(f).is_some()) {
        out.push_str("FIELDS:\n");
        let mut children: Vec<FieldDescriptor> = current.fields().collect();
        children.sort_by(|a, b| a.json_name().cmp(b.json_name()));
        for child in children {
            out.push_str(&format!("   {}\t<{}>\n", child.json_name(), type_word(&child)));
            if let Some(text) = comment(child.parent_file().file_descriptor_proto(), child.path()) {
                for line in text.lines() {
                    out.push_str(&format!("     {}\n", line.trim()));
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// The message a field holds, for fields that have fields of their own
/// (not maps, not the types written as strings).
fn nested(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        FieldKind::Message(message) if !field.is_map() && !STRING_MESSAGES.contains(&message.full_name()) => {
            Some(message)
        }
        _ => None,
    }
}

/// kubectl's word for a field's type.
fn type_word(field: &FieldDescriptor) -> String {
    if field.is_map() {
        if let FieldKind::Message(entry) = field.kind() {
            let value = entry.map_entry_value_field();
            return format!("map[string]{}", scalar_word(&value));
        }
    }
    let word = scalar_word(field);
    if field.is_list() {
        format!("[]{word}")
    } else {
        word
    }
}

fn scalar_word(field: &FieldDescriptor) -> String {
    match field.kind() {
        FieldKind::Message(message) if STRING_MESSAGES.contains(&message.full_name()) => "string",
        FieldKind::Message(_) => "Object",
        FieldKind::Bool => "boolean",
        FieldKind::String | FieldKind::Bytes | FieldKind::Enum(_) => "string",
        FieldKind::Double | FieldKind::Float => "number",
        _ => "integer",
    }
    .to_string()
}

/// The comment before (else after) what `path` locates in `file`.
fn comment(file: &prost_types::FileDescriptorProto, path: &[i32]) -> Option<String> {
    let location = file
        .source_code_info
        .as_ref()?
        .location
        .iter()
        .find(|location| location.path == path)?;
    let text = location
        .leading_comments
        .as_deref()
        .or(location.trailing_comments.as_deref())?
        .trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> Result<String, String> {
        let mut parts = path.split('.');
        let kind = parse_kind(parts.next().unwrap()).map_err(|e| e.to_string())?;
        let pool = DescriptorPool::decode(bosun_proto::FILE_DESCRIPTOR_SET).unwrap();
        let message = pool.get_message_by_name(&kind.message_name()).unwrap();
        explain(kind, &message, &parts.collect::<Vec<_>>()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_kind_lists_its_fields_with_kubectls_names_and_types() {
        let pod = text("pods").unwrap();
        assert!(pod.starts_with("KIND:     Pod\nVERSION:  v1\n\nFIELDS:\n"), "{pod}");
        assert!(pod.contains("   apiVersion\t<string>\n"), "{pod}");
        assert!(pod.contains("   spec\t<Object>\n"), "{pod}");
        let deployment = text("deploy").unwrap();
        assert!(deployment.contains("VERSION:  apps/v1\n"), "{deployment}");
    }

    #[test]
    fn a_field_path_shows_the_field_with_its_description() {
        let containers = text("pod.spec.containers").unwrap();
        assert!(containers.contains("RESOURCE: containers <[]Object>\n"), "{containers}");
        assert!(
            containers.contains("   imagePullPolicy\t<string>\n     Always, IfNotPresent or Never.\n"),
            "{containers}"
        );
        assert!(containers.contains("   env\t<[]Object>\n"), "{containers}");
        let policy = text("pod.spec.restartPolicy").unwrap();
        assert!(
            policy.contains(
                "FIELD: restartPolicy <string>\n\nDESCRIPTION:\n     Always (default), OnFailure or Never.\n"
            ),
            "{policy}"
        );
        let labels = text("cm.metadata.labels").unwrap();
        assert!(labels.contains("FIELD: labels <map[string]string>"), "{labels}");
        let created = text("pod.metadata.creationTimestamp").unwrap();
        assert!(created.contains("FIELD: creationTimestamp <string>"), "{created}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        assert_eq!(
            text("pod.spec.nope").unwrap_err(),
            "error: field \"nope\" does not exist in pods.spec"
        );
        assert!(text("pod.spec.restartPolicy.x")
            .unwrap_err()
            .contains("restartPolicy is string"));
        assert!(text("widgets").unwrap_err().contains("unknown kind"));
    }
}
