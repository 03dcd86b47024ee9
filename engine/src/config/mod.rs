//! Pipeline files (docs/design.md §6): parse, resolve `${VAR}`, load the plugin libraries the file
//! and `$PIPE_PLUGIN_PATH` point to (docs/design.md §5), check against each plugin's config schema,
//! and report every problem as `file:line: key.path: what is wrong`.

pub mod accounts;
mod interpolate;
pub mod tables;
mod toml_json;

use std::path::{Path, PathBuf};

use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginKind};
use serde_json::{Map, Value};

use crate::plugin_host;
use crate::registry::Registry;
pub use toml_json::line_of;

/// The process environment, as the lookup `${VAR}` interpolation uses.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A configuration problem, located in its file. Exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The pipeline file as the user named it.
    pub file: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Key path (`source.token`, `sinks[0].path`), empty for the whole file.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: ", self.file, l)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// One `[source]`, `[[transforms]]` or `[[sinks]]` entry, resolved.
#[derive(Clone)]
pub struct PluginSpec {
    /// Key path of the table (`source`, `sinks[1]`).
    pub path: String,
    pub descriptor: PluginDescriptor,
    /// The table without `plugin`, `${VAR}`s resolved. Contains secrets: never print it.
    pub config: Value,
}

/// How often a batch pipeline commits when `commit_interval_seconds` is not set: a long run
/// makes a few large files, and a crash re-fetches at most about a minute of work.
pub const DEFAULT_COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// A validated pipeline.
#[derive(Clone)]
pub struct Pipeline {
    /// `name`, or the file stem.
    pub name: String,
    pub source: PluginSpec,
    pub transforms: Vec<PluginSpec>,
    pub sinks: Vec<PluginSpec>,
    /// Directory of state files (`[state] path`, default `.pipe/state`).
    pub state_dir: PathBuf,
    /// Directory of dead-letter files (`[dead_letter] path`, default `.pipe/dead_letter/<name>`).
    pub dead_letter_dir: PathBuf,
    /// Exit 4 when the run produced dead letters.
    pub fail_on_dead_letters: bool,
    /// Sinks commit (files get final names, state is saved) at a source checkpoint only once
    /// this much time passed since the last commit, and always at the end; 0 commits at every
    /// checkpoint. `None` when `commit_interval_seconds` is not set: then a service source
    /// (`CommitCadence::Prompt`, the webhook listener) commits promptly and every other source
    /// every [`DEFAULT_COMMIT_INTERVAL`].
    pub commit_interval: Option<std::time::Duration>,
    /// `[[source.accounts]]` / `source.accounts_file`: the accounts the source reads, each with
    /// its own config and state. `None`: one account, configured by `[source]` itself.
    pub accounts: Option<accounts::Accounts>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "source",
    "transforms",
    "sinks",
    "state",
    "dead_letter",
    "fail_on_dead_letters",
    "commit_interval_seconds",
    "plugin_dirs",
    "allow_override",
];

/// Maps key paths back to lines of one file.
pub struct Locator<'a> {
    pub file: &'a str,
    text: &'a str,
    spans: &'a std::collections::HashMap<String, toml_json::Span>,
    /// Whether each plugin checks its table (false for `pipe state`, which runs without the
    /// source's secrets in the environment).
    pub check_plugins: bool,
}

impl Locator<'_> {
    /// An error at `path`: the line of its key, else of the nearest enclosing key that exists.
    pub fn error(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let mut probe = path.to_string();
        let line = loop {
            if let Some(span) = self.spans.get(&probe) {
                break Some(line_of(self.text, span.key.start));
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe.truncate(i),
                None => break None,
            }
        };
        ConfigError { file: self.file.to_string(), line, path: path.to_string(), message: message.into() }
    }

    /// A plugin's own error, placed at `table.path`.
    pub fn plugin_error(&self, table: &str, err: &PluginError) -> ConfigError {
        match err {
            PluginError::Config { path, message } => {
                let full = if path.is_empty() { table.to_string() } else { format!("{table}.{path}") };
                self.error(&full, message.clone())
            }
            other => self.error(table, other.to_string()),
        }
    }
}

/// Reads and validates a pipeline file. `vars` resolves `${VAR}` (the environment, or the
/// demo's own values).
///
/// Errors: the first problem; [`load_file_all`] reports every one.
pub fn load_file(
    path: &Path,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigError> {
    load_file_all(path, registry, vars).map_err(|mut all| all.remove(0))
}

/// [`load_file`], reporting every problem found (in file order of the checks: top-level keys,
/// plugin libraries, source, transforms, sinks, settings), not just the first. A problem that
/// hides others (unreadable file, invalid TOML) is reported alone. Never empty on `Err`.
pub fn load_file_all(
    path: &Path,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, Vec<ConfigError>> {
    load_file_checked(path, registry, vars, true)
}

/// [`load_file`] for `pipe state show|reset`, which need the pipeline's name, state folder and
/// accounts but none of its secrets: plugin tables are resolved but not checked by their
/// plugins (an unset `${VAR}` should resolve to an empty string via `vars`).
pub fn load_file_for_state(
    path: &Path,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigError> {
    load_file_checked(path, registry, vars, false).map_err(|mut all| all.remove(0))
}

fn load_file_checked(
    path: &Path,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
    check_plugins: bool,
) -> Result<Pipeline, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            line: None,
            path: String::new(),
            message: format!("cannot read the pipeline file: {e}"),
        }]
    })?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into());
    load_str_checked(&text, &file, &stem, registry, vars, check_plugins)
}

/// [`load_file`] on text already in memory; `file` names it in errors, `default_name` is used
/// when the file has no `name`.
pub fn load_str(
    text: &str,
    file: &str,
    default_name: &str,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigError> {
    load_str_all(text, file, default_name, registry, vars).map_err(|mut all| all.remove(0))
}

/// [`load_str`], reporting every problem (see [`load_file_all`]).
pub fn load_str_all(
    text: &str,
    file: &str,
    default_name: &str,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, Vec<ConfigError>> {
    load_str_checked(text, file, default_name, registry, vars, true)
}

fn load_str_checked(
    text: &str,
    file: &str,
    default_name: &str,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
    check_plugins: bool,
) -> Result<Pipeline, Vec<ConfigError>> {
    let doc = toml_json::parse(text).map_err(|(message, at)| {
        vec![ConfigError {
            file: file.into(),
            line: Some(line_of(text, at)),
            path: String::new(),
            message: format!("invalid TOML: {message}"),
        }]
    })?;
    let loc = Locator { file, text, spans: &doc.spans, check_plugins };
    let Value::Object(top) = &doc.json else { unreachable!("a TOML document is a table") };
    // Each check that fails records its error (`keep`) and yields nothing; checks go on.
    let mut errors: Vec<ConfigError> = Vec::new();

    for key in top.keys() {
        if !TOP_KEYS.contains(&key.as_str()) {
            keep(
                &mut errors,
                Err::<(), _>(loc.error(key, format!("unknown key (a pipeline file has: {})", TOP_KEYS.join(", ")))),
            );
        }
    }
    let name = match top.get("name") {
        None => Some(default_name.to_string()),
        Some(Value::String(s)) if valid_name(s) => Some(s.clone()),
        Some(_) => keep(&mut errors, Err(loc.error("name", "must be a string of letters, digits, `-`, `_` or `.`"))),
    };
    // Without the libraries, plugin names cannot be resolved: stop here.
    let Some(registry) = keep(&mut errors, with_plugin_libraries(&loc, top, registry, vars)) else {
        return Err(errors);
    };
    let registry = &registry;

    let source = match top.get("source") {
        Some(Value::Object(t)) => {
            keep(&mut errors, accounts::split(&loc, t, registry, vars)).and_then(|split| match split {
                (base, None) => {
                    keep(&mut errors, plugin_spec(&loc, "source", &base, PluginKind::Source, registry, vars))
                        .map(|s| (s, None))
                }
                // With accounts, `[source]` alone may lack per-account keys: each account's merged
                // table was validated instead; the first one stands for the source's descriptor.
                (_, Some(accounts)) => Some((accounts.list[0].spec.clone(), Some(accounts))),
            })
        }
        Some(_) => keep(&mut errors, Err(loc.error("source", "must be a table: [source]"))),
        None => keep(
            &mut errors,
            Err(loc.error("", "missing [source] table (which vendor to read, e.g. plugin = \"giosg\")")),
        ),
    };
    let transforms =
        plugin_list(&loc, top, "transforms", PluginKind::Transform, registry, vars).map_err(|e| errors.extend(e)).ok();
    let sinks = match plugin_list(&loc, top, "sinks", PluginKind::Sink, registry, vars) {
        Ok(sinks) if sinks.is_empty() => keep(
            &mut errors,
            Err(loc.error("sinks", "at least one [[sinks]] table is needed (e.g. plugin = \"parquet\")")),
        ),
        Ok(sinks) => Some(sinks),
        Err(e) => {
            errors.extend(e);
            None
        }
    };

    let state_dir = keep(&mut errors, path_setting(&loc, top, "state", vars))
        .map(|d| d.unwrap_or_else(|| PathBuf::from(".pipe/state")));
    let dead_letter_dir = keep(&mut errors, path_setting(&loc, top, "dead_letter", vars));
    let fail_on_dead_letters = match top.get("fail_on_dead_letters") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => keep(&mut errors, Err(loc.error("fail_on_dead_letters", "must be true or false"))),
    };
    let commit_interval = match top.get("commit_interval_seconds") {
        None => Some(None),
        // Fractions are allowed (`0.5`): a webhook listener acknowledges only after a commit.
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.is_finite() && (0.0..=1e9).contains(&f)) => {
            Some(Some(std::time::Duration::from_secs_f64(n.as_f64().unwrap_or(60.0))))
        }
        Some(_) => keep(
            &mut errors,
            Err(loc.error(
                "commit_interval_seconds",
                "must be a number of seconds, 0 or more, fractions allowed (0 commits at every checkpoint)",
            )),
        ),
    };
    match (name, source, transforms, sinks, state_dir, dead_letter_dir, fail_on_dead_letters, commit_interval) {
        (
            Some(name),
            Some((source, accounts)),
            Some(transforms),
            Some(sinks),
            Some(state_dir),
            Some(dead_letter_dir),
            Some(fail_on_dead_letters),
            Some(commit_interval),
        ) if errors.is_empty() => {
            let dead_letter_dir = dead_letter_dir.unwrap_or_else(|| PathBuf::from(".pipe/dead_letter").join(&name));
            Ok(Pipeline {
                name,
                source,
                transforms,
                sinks,
                state_dir,
                dead_letter_dir,
                fail_on_dead_letters,
                commit_interval,
                accounts,
            })
        }
        _ => Err(errors),
    }
}

/// `Some(value)`, or `None` after recording the error in `errors`.
fn keep<T>(errors: &mut Vec<ConfigError>, r: Result<T, ConfigError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// The registry plus the plugins of the libraries in `plugin_dirs` (a list of directories,
/// relative to the working directory) and then in `$PIPE_PLUGIN_PATH`.
fn with_plugin_libraries(
    loc: &Locator<'_>,
    top: &Map<String, Value>,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Registry, ConfigError> {
    let allow_override = match top.get("allow_override") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(loc.error("allow_override", "must be true or false")),
    };
    let mut dirs = Vec::new();
    match top.get("plugin_dirs") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let key = format!("plugin_dirs[{i}]");
                let Value::String(s) = item else { return Err(loc.error(&key, "must be a string (a directory)")) };
                dirs.push(PathBuf::from(interpolate::resolve(s, vars).map_err(|m| loc.error(&key, m))?));
            }
        }
        Some(_) => return Err(loc.error("plugin_dirs", "must be a list of directories: plugin_dirs = [\"plugins\"]")),
    }
    let from_file = plugin_host::discover(&dirs, true).map_err(|e| loc.error("plugin_dirs", e.to_string()))?;
    let env_dirs = plugin_host::env_plugin_path(vars("PIPE_PLUGIN_PATH").as_deref());
    let from_env =
        plugin_host::discover(&env_dirs, false).map_err(|e| loc.error("", format!("$PIPE_PLUGIN_PATH: {e}")))?;
    let mut libraries = from_file;
    for lib in from_env {
        if !libraries.iter().any(|l| std::sync::Arc::ptr_eq(l, &lib)) {
            libraries.push(lib);
        }
    }
    if libraries.is_empty() {
        return Ok(registry.clone());
    }
    let key = if top.contains_key("plugin_dirs") { "plugin_dirs" } else { "" };
    registry.with_libraries(&libraries, allow_override).map_err(|m| loc.error(key, m))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !s.starts_with('.')
}

/// `[state]` / `[dead_letter]`: a table with exactly one key, `path`.
fn path_setting(
    loc: &Locator<'_>,
    top: &Map<String, Value>,
    key: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(v) = top.get(key) else { return Ok(None) };
    let Value::Object(t) = v else {
        return Err(loc.error(key, format!("must be a table: [{key}] with path = \"...\"")));
    };
    for k in t.keys() {
        if k != "path" {
            return Err(loc.error(&format!("{key}.{k}"), format!("unknown key ([{key}] has: path)")));
        }
    }
    match t.get("path") {
        Some(Value::String(p)) => {
            let p = interpolate::resolve(p, vars).map_err(|m| loc.error(&format!("{key}.path"), m))?;
            Ok(Some(PathBuf::from(p)))
        }
        Some(_) => Err(loc.error(&format!("{key}.path"), "must be a string")),
        None => Err(loc.error(key, "missing key `path`")),
    }
}

fn plugin_list(
    loc: &Locator<'_>,
    top: &Map<String, Value>,
    key: &str,
    kind: PluginKind,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PluginSpec>, Vec<ConfigError>> {
    match top.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut specs = Vec::new();
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let spec = match item {
                    Value::Object(t) => plugin_spec(loc, &format!("{key}[{i}]"), t, kind, registry, vars),
                    _ => Err(loc.error(&format!("{key}[{i}]"), format!("must be a table: [[{key}]]"))),
                };
                match spec {
                    Ok(s) => specs.push(s),
                    Err(e) => errors.push(e),
                }
            }
            if errors.is_empty() { Ok(specs) } else { Err(errors) }
        }
        Some(_) => Err(vec![loc.error(key, format!("must be an array of tables: [[{key}]]"))]),
    }
}

fn plugin_spec(
    loc: &Locator<'_>,
    path: &str,
    table: &Map<String, Value>,
    kind: PluginKind,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<PluginSpec, ConfigError> {
    let name = match table.get("plugin") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(loc.error(&format!("{path}.plugin"), "must be a string")),
        None => {
            return Err(loc.error(
                path,
                format!(
                    "missing key `plugin` (one of the {} plugins: {})",
                    kind.as_str(),
                    registry.names(kind).join(", ")
                ),
            ));
        }
    };
    let descriptor = match registry.get(name) {
        Some(d) if d.kind() == kind => d.clone(),
        Some(d) => {
            return Err(loc.error(
                &format!("{path}.plugin"),
                format!("`{name}` is a {} plugin, not a {}", d.kind().as_str(), kind.as_str()),
            ));
        }
        None => {
            return Err(loc.error(
                &format!("{path}.plugin"),
                format!("unknown {} plugin `{name}` (available: {})", kind.as_str(), registry.names(kind).join(", ")),
            ));
        }
    };

    let substitutions = interpolate::Substitutions::default();
    let recording = substitutions.recording(vars);
    let mut config = Map::new();
    for (k, v) in table {
        if k == "plugin" {
            continue;
        }
        let key_path = format!("{path}.{k}");
        config.insert(
            k.clone(),
            interpolate::resolve_value(v, &key_path, &recording).map_err(|(p, m)| loc.error(&p, m))?,
        );
    }
    // The `rest` source's vendor spec file is named relative to the pipeline file.
    if name == "rest"
        && let Some(Value::String(spec)) = config.get("spec")
        && Path::new(spec).is_relative()
        && let Some(dir) = Path::new(loc.file).parent()
    {
        let joined = dir.join(spec).to_string_lossy().into_owned();
        config.insert("spec".into(), Value::String(joined));
    }
    // So are its `var_files`.
    if name == "rest"
        && let Some(Value::Object(files)) = config.get_mut("var_files")
        && let Some(dir) = Path::new(loc.file).parent()
    {
        for file in files.values_mut() {
            if let Value::String(f) = file
                && Path::new(f.as_str()).is_relative()
            {
                *f = dir.join(f.as_str()).to_string_lossy().into_owned();
            }
        }
    }
    let config = Value::Object(config);

    // Unknown keys first: the schema lists every key the plugin accepts.
    let schema = (descriptor.config_schema)();
    if let Some(Value::Object(props)) = schema.get("properties") {
        for k in config.as_object().into_iter().flat_map(|m| m.keys()) {
            if !props.contains_key(k) {
                let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
                known.sort();
                return Err(loc.error(
                    &format!("{path}.{k}"),
                    format!("unknown key for plugin `{name}` (it accepts: {})", known.join(", ")),
                ));
            }
        }
    }
    if !loc.check_plugins {
        return Ok(PluginSpec { path: path.to_string(), descriptor, config });
    }
    // The plugin's message may quote a value it was given: name the variable instead.
    (descriptor.check_config)(&config).map_err(|e| {
        let mut err = loc.plugin_error(path, &e);
        err.message = substitutions.hide(&err.message);
        err
    })?;
    Ok(PluginSpec { path: path.to_string(), descriptor, config })
}
