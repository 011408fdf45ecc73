//! Settings: every `IMGATE_*` variable the commands read, also accepted from
//! a TOML file (`--config`, `IMGATE_CONFIG`) under the variable's name
//! without the prefix, in lower case (`IMGATE_S3_ENDPOINT` → `s3_endpoint`).
//!
//! The file only supplies defaults, so a flag beats the environment, which
//! beats the file, which beats the built-in default. Its values go through
//! the same parsers as flags, and every bad or unknown key is reported at
//! once, before anything starts. Secret values never appear in a message or
//! in `--help`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Arg, Command};

/// The variable naming the settings file.
pub const CONFIG_ENV: &str = "IMGATE_CONFIG";
const PREFIX: &str = "IMGATE_";

/// The file's key for an environment variable: `IMGATE_S3_ENDPOINT` → `s3_endpoint`.
pub fn key_of(env: &OsStr) -> Option<String> {
    let name = env.to_str()?.strip_prefix(PREFIX)?;
    (name != "CONFIG").then(|| name.to_ascii_lowercase())
}

/// The settings file named by `--config FILE` / `--config=FILE` in `args`,
/// else by `IMGATE_CONFIG`. Read before clap parses, since the file's values
/// become the parser's defaults.
pub fn config_path(args: &[OsString], env: Option<OsString>) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    env.filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Every command (the root too) with the setting-backed arguments it has.
fn settings(cmd: &Command) -> Vec<(&Command, &Arg, String)> {
    std::iter::once(cmd)
        .chain(cmd.get_subcommands())
        .flat_map(|c| {
            c.get_arguments()
                .filter_map(move |a| Some((c, a, key_of(a.get_env()?)?)))
        })
        .collect()
}

/// `cmd` with the settings in `text` (the TOML file at `path`) as defaults;
/// or every problem found, one message each.
pub fn with_file(mut cmd: Command, path: &Path, text: &str) -> Result<Command, Vec<String>> {
    let file = path.display();
    let table: toml::Table = toml::from_str(text).map_err(|e| vec![format!("{file}: {e}")])?;
    let mut problems = Vec::new();
    let mut defaults: Vec<(String, clap::Id, String, bool)> = Vec::new();
    {
        let known = settings(&cmd);
        for (key, value) in &table {
            let uses: Vec<_> = known.iter().filter(|(_, _, k)| k == key).collect();
            if uses.is_empty() {
                let mut names: Vec<&str> = known.iter().map(|(_, _, k)| k.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                problems.push(format!(
                    "{file}: unknown setting `{key}`; known: {}",
                    names.join(", ")
                ));
                continue;
            }
            for (command, arg, _) in uses {
                let secret = arg.is_hide_env_values_set();
                let shown = |v: &str| {
                    if secret {
                        "(secret)".to_string()
                    } else {
                        format!("{v:?}")
                    }
                };
                let Some(text) = scalar(value, arg) else {
                    problems.push(format!(
                        "{file}: `{key}` must be a string, number, boolean or list of strings"
                    ));
                    break;
                };
                if let Err(e) = check(arg, &text) {
                    let reason = e.to_string();
                    let reason = reason
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("error: ");
                    let reason = if secret {
                        "not a valid value".to_string()
                    } else {
                        reason.to_string()
                    };
                    problems.push(format!("{file}: `{key}` = {}: {reason}", shown(&text)));
                    break;
                }
                defaults.push((
                    command.get_name().to_string(),
                    arg.get_id().clone(),
                    text,
                    secret,
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let root = cmd.get_name().to_string();
    for (command, id, value, secret) in defaults {
        let set = |a: Arg| {
            a.default_value(value.clone())
                .hide_default_value(secret)
                .required(false)
        };
        cmd = if command == root {
            cmd.mut_arg(id, set)
        } else {
            cmd.mut_subcommand(command, |c| c.mut_arg(id, set))
        };
    }
    Ok(cmd)
}

/// Whether `value` parses as `arg`'s would: clap parses an argument's default
/// with its value parser, so a probe command with `value` as the only
/// argument's default says (the environment is kept out of it).
fn check(arg: &Arg, value: &str) -> Result<(), clap::Error> {
    Command::new("probe")
        .no_binary_name(true)
        .arg(
            arg.clone()
                .env(clap::builder::Resettable::Reset)
                .required(false)
                .default_value(value.to_string()),
        )
        .try_get_matches_from(std::iter::empty::<&str>())
        .map(drop)
}

/// A TOML value as the text a flag would carry; lists joined with the
/// argument's delimiter (`,` unless it says otherwise).
fn scalar(value: &toml::Value, arg: &Arg) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => {
            let delimiter = arg.get_value_delimiter().unwrap_or(',').to_string();
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()?
                .join(&delimiter)
        }
        _ => return None,
    })
}

/// The settings as a Markdown table: variable, file key, flag, default, the
/// commands that read it, and what it is for. The README's table is this
/// output (a test keeps them equal; `imgate-origin settings` prints it).
pub fn table(cmd: &Command) -> String {
    struct Row {
        flag: String,
        default: String,
        commands: Vec<String>,
        help: String,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (command, arg, key) in settings(cmd) {
        let env = format!("{PREFIX}{}", key.to_ascii_uppercase());
        let name = if command.get_name() == cmd.get_name() {
            "all".to_string()
        } else {
            command.get_name().to_string()
        };
        let row = rows.entry(env).or_insert_with(|| Row {
            flag: arg.get_long().map_or(String::new(), |l| format!("`--{l}`")),
            default: default_of(arg),
            commands: Vec::new(),
            help: arg
                .get_help()
                .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
                .unwrap_or_default(),
        });
        row.commands.push(name);
    }
    let mut out = String::from(
        "| variable | file key | flag | default | commands | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for (env, row) in rows {
        let key = key_of(OsStr::new(&env)).unwrap_or_default();
        out.push_str(&format!(
            "| `{env}` | `{key}` | {} | {} | {} | {} |\n",
            row.flag,
            row.default,
            row.commands.join(", "),
            row.help
        ));
    }
    out
}

fn default_of(arg: &Arg) -> String {
    if arg.is_required_set() {
        return "required".into();
    }
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
        .collect();
    match values.as_slice() {
        [] if matches!(arg.get_action(), clap::ArgAction::SetTrue) => "off".into(),
        [] => "—".into(),
        _ if arg.is_hide_env_values_set() => "(secret)".into(),
        _ => format!("`{}`", values.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Cmd};
    use clap::{CommandFactory, FromArgMatches};

    fn parse(file: &str, args: &[&str]) -> Result<Cli, Vec<String>> {
        let cmd = with_file(Cli::command(), Path::new("imgate.toml"), file)?;
        let matches = cmd
            .try_get_matches_from(std::iter::once("imgate-origin").chain(args.iter().copied()))
            .map_err(|e| vec![e.to_string()])?;
        Cli::from_arg_matches(&matches).map_err(|e| vec![e.to_string()])
    }

    #[test]
    fn file_values_are_defaults_that_flags_beat() {
        let file = "bucket = \"cards\"\nrender_timeout_secs = 3\nedge_token = \"0123456789abcdef\"\ndebug_routes = true\n";
        let Cmd::Serve(serve) = parse(file, &["serve"]).unwrap().command else {
            panic!("serve");
        };
        assert_eq!(serve.store.bucket, "cards");
        assert_eq!(serve.renderer.render_timeout_secs, 3);
        assert_eq!(serve.edge_token, "0123456789abcdef");
        assert!(serve.debug_routes);
        let Cmd::Serve(serve) = parse(file, &["serve", "--bucket", "flag"]).unwrap().command else {
            panic!("serve");
        };
        assert_eq!(serve.store.bucket, "flag");
        // The same key serves every command that reads it.
        let Cmd::Gc(gc) = parse(file, &["gc", "--older-than-days", "3"])
            .unwrap()
            .command
        else {
            panic!("gc");
        };
        assert_eq!(gc.store.bucket, "cards");
    }

    #[test]
    fn every_problem_is_reported_and_secrets_are_not_shown() {
        let file = "render_timeout_secs = \"soon\"\norigin_listen = \"nowhere\"\nbukcet = \"x\"\nsigning_keys = [1]\n";
        let Err(problems) = parse(file, &["serve"]) else {
            panic!("a bad file was accepted");
        };
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let all = problems.join("\n");
        assert!(all.contains("`render_timeout_secs` = \"soon\""), "{all}");
        assert!(all.contains("`origin_listen` = \"nowhere\""), "{all}");
        assert!(all.contains("unknown setting `bukcet`; known: "), "{all}");
        assert!(all.contains("`signing_keys` must be"), "{all}");
        let hidden = with_file(
            Cli::command(),
            Path::new("f"),
            "edge_token = \"hunter2hunter2hunter2\"",
        )
        .unwrap();
        let help = hidden
            .find_subcommand("serve")
            .unwrap()
            .clone()
            .render_long_help()
            .to_string();
        assert!(!help.contains("hunter2"), "{help}");
    }

    #[test]
    fn config_path_from_flag_or_env() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(
                &args(&["x", "serve", "--config", "a.toml"]),
                Some("b.toml".into())
            ),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["x", "--config=c.toml"]), None),
            Some(PathBuf::from("c.toml"))
        );
        assert_eq!(
            config_path(&args(&["x"]), Some("b.toml".into())),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(config_path(&args(&["x"]), Some("".into())), None);
    }

    #[test]
    fn the_readme_table_is_the_generated_one() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let table = table(&Cli::command());
        assert!(
            readme.contains(&table),
            "README.md's settings table is stale; replace it with `imgate-origin settings`:\n{table}"
        );
        let bucket = table
            .lines()
            .find(|l| l.starts_with("| `IMGATE_BUCKET` | `bucket` | `--bucket` | `imgate` |"))
            .unwrap_or_else(|| panic!("no bucket row:\n{table}"));
        for command in ["serve", "backfill", "gc", "doctor"] {
            assert!(bucket.contains(command), "{bucket}");
        }
        assert!(
            !table.contains("IMGATE_CONFIG"),
            "the file cannot name itself"
        );
    }
}
