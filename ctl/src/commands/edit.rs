//! `ctl edit`: an object opened in the user's editor as YAML, written back
//! when the editor exits, as kubectl's. The editor is `$BOSUN_EDITOR`,
//! else `$EDITOR`, else `vi`, run through the shell (so it may carry
//! arguments). The update is conditional on the version that was opened:
//! when someone else changed the object meanwhile, or the text does not
//! decode, nothing is written and the edited file is kept for another try.

use std::path::{Path, PathBuf};

use bosun_proto::codec;

use super::apply::update_one;
use super::{get_object, named_targets, namespace_or_default, replacement};
use crate::output::object_name;
use crate::{Client, CtlError, Io};

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

/// # Errors
/// A missing object, an editor that failed, text that does not decode,
/// a changed kind or name, or a conflicting change.
pub async fn run(
    client: &mut Client,
    args: &[String],
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let targets = named_targets(args)?;
    let namespace = namespace_or_default(namespace);
    for (kind, name) in targets {
        let object = get_object(client, kind, &namespace, &name).await?;
        let original = codec::to_yaml(std::slice::from_ref(&object));
        let path = temp_path(&object_name(&object));
        std::fs::write(&path, format!("{HEADER}{original}"))
            .map_err(|e| CtlError::Invalid(format!("cannot write {}: {e}", path.display())))?;
        run_editor(&path)?;
        let edited = std::fs::read_to_string(&path)
            .map_err(|e| CtlError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let edited: String = edited
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect();
        if edited.trim().is_empty() || edited == original {
            let _ = std::fs::remove_file(&path);
            writeln!(io.stdout, "Edit cancelled, no changes made.")?;
            continue;
        }
        let kept = |error: String| {
            CtlError::Invalid(format!(
                "{error}\nA copy of your changes has been stored to {:?}",
                path.display().to_string()
            ))
        };
        let changed = replacement(&edited, &path.display().to_string(), &object).map_err(kept)?;
        let updated = update_one(client, changed).await.map_err(|e| kept(e.to_string()))?;
        let _ = std::fs::remove_file(&path);
        writeln!(io.stdout, "{} edited", object_name(&updated))?;
    }
    Ok(())
}

/// A new file in the temp directory for `name` (`deployment.apps/web`).
fn temp_path(name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("ctl-edit-{safe}-{}-{unique}.yaml", std::process::id()))
}

/// Runs the user's editor on `path` and waits for it.
fn run_editor(path: &Path) -> Result<(), CtlError> {
    let editor = ["BOSUN_EDITOR", "EDITOR"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("ctl-edit")
        .arg(path)
        .status()
        .map_err(|e| CtlError::Invalid(format!("cannot run the editor {editor:?}: {e}")))?;
    if !status.success() {
        let _ = std::fs::remove_file(path);
        return Err(CtlError::Invalid(format!(
            "the editor {editor:?} exited with {status}; nothing was changed"
        )));
    }
    Ok(())
}
