//! kubectl's answer to an unknown command: `error: unknown command "gte"
//! for "ctl"`, then the commands it may have meant by cobra's rule (at
//! most two edits away, or starting with what was typed), so `ctl foo`
//! suggests nothing rather than something unrelated.

use std::ffi::OsString;

/// Most edits (insertions, deletions, substitutions) between a typed and a
/// suggested command: cobra's default, which kubectl keeps.
const MAX_DISTANCE: usize = 2;

/// The message for `typed`, an unknown subcommand in the command line
/// `args` (without the program name), or `None` when `typed` is not where
/// a subcommand goes in `args` (clap's own message is better then).
pub fn unknown_command(root: &clap::Command, args: &[OsString], typed: &str) -> Option<String> {
    let mut command = root;
    let mut path = vec![root.get_name().to_string()];
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg.starts_with('-') {
            // Global options whose value is the next word.
            if matches!(arg.as_ref(), "--server" | "-n" | "--namespace") {
                args.next();
            }
            continue;
        }
        if let Some(sub) = command
            .get_subcommands()
            .find(|sub| sub.get_name() == arg || sub.get_all_aliases().any(|alias| alias == arg))
        {
            path.push(sub.get_name().to_string());
            command = sub;
            continue;
        }
        if arg != typed {
            return None;
        }
        let names: Vec<&str> = command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| sub.get_name())
            .chain(command.has_subcommands().then_some("help"))
            .collect();
        return Some(message(typed, &path.join(" "), &suggestions(typed, &names)));
    }
    None
}

/// The commands among `names` that `typed` may have meant, in order.
pub fn suggestions<'a>(typed: &str, names: &[&'a str]) -> Vec<&'a str> {
    let typed = typed.to_lowercase();
    let mut found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            let name = name.to_lowercase();
            distance(&typed, &name) <= MAX_DISTANCE || name.starts_with(&typed)
        })
        .collect();
    found.dedup();
    found
}

fn message(typed: &str, path: &str, suggested: &[&str]) -> String {
    let mut text = format!("error: unknown command {typed:?} for {path:?}");
    if !suggested.is_empty() {
        text.push_str("\n\nDid you mean this?");
        for name in suggested {
            text.push_str(&format!("\n\t{name}"));
        }
    }
    text
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::CommandFactory;

    fn answer(line: &str, typed: &str) -> Option<String> {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        unknown_command(&crate::Cli::command(), &args, typed)
    }

    #[test]
    fn near_misses_are_suggested_as_kubectl_does() {
        assert_eq!(
            answer("gte pods", "gte").as_deref(),
            Some("error: unknown command \"gte\" for \"ctl\"\n\nDid you mean this?\n\tget")
        );
        assert_eq!(
            answer("--server m:1 -n shop lgos web", "lgos").as_deref(),
            Some("error: unknown command \"lgos\" for \"ctl\"\n\nDid you mean this?\n\tlogs")
        );
        assert_eq!(
            answer("rollout statsu deploy/web", "statsu").as_deref(),
            Some("error: unknown command \"statsu\" for \"ctl rollout\"\n\nDid you mean this?\n\tstatus")
        );
    }

    #[test]
    fn nothing_unrelated_is_suggested() {
        assert_eq!(
            answer("foo", "foo").as_deref(),
            Some("error: unknown command \"foo\" for \"ctl\"")
        );
        assert_eq!(
            answer("xyzzy pods", "xyzzy").as_deref(),
            Some("error: unknown command \"xyzzy\" for \"ctl\"")
        );
    }

    #[test]
    fn a_prefix_suggests_the_commands_it_starts() {
        assert_eq!(suggestions("desc", &["describe", "delete", "get"]), ["describe"]);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
    }
}
