//! Reading manifests for `-f`: files, directories (their `.yaml`, `.yml`
//! and `.json` files, sorted by name) and `-` for stdin.

use std::io::Read;
use std::path::Path;

use bosun_proto::api::Object;
use bosun_proto::codec;

use crate::CtlError;

/// One object from a manifest, with where it came from for messages.
pub struct Manifest {
    pub source: String,
    pub object: Object,
}

/// Reads every object named by `-f` arguments, in order.
///
/// # Errors
/// [`CtlError::Read`] for a missing file, [`CtlError::Manifest`] naming the
/// file, document and field of the first bad manifest. Nothing is sent to
/// the cluster when any manifest is bad.
pub fn read_all(files: &[String], stdin: &mut dyn Read) -> Result<Vec<Manifest>, CtlError> {
    let mut manifests = Vec::new();
    for file in files {
        if file == "-" {
            let mut text = String::new();
            stdin.read_to_string(&mut text).map_err(|source| CtlError::Read {
                path: "<stdin>".into(),
                source,
            })?;
            decode_into(&text, "<stdin>", &mut manifests)?;
            continue;
        }
        let path = Path::new(file);
        let read_error = |source| CtlError::Read {
            path: file.clone(),
            source,
        };
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(read_error)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
                .collect();
            entries.sort();
            for entry in entries {
                let name = entry.display().to_string();
                let text = std::fs::read_to_string(&entry).map_err(|source| CtlError::Read {
                    path: name.clone(),
                    source,
                })?;
                decode_into(&text, &name, &mut manifests)?;
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(read_error)?;
            decode_into(&text, file, &mut manifests)?;
        }
    }
    Ok(manifests)
}

fn decode_into(text: &str, source: &str, out: &mut Vec<Manifest>) -> Result<(), CtlError> {
    let objects = codec::decode_objects(text, source)?;
    if objects.is_empty() {
        return Err(CtlError::NoObjects {
            origin: source.to_string(),
        });
    }
    out.extend(objects.into_iter().map(|object| Manifest {
        source: source.to_string(),
        object,
    }));
    Ok(())
}
