//! The plugins `pipe` knows by name: the built-ins linked into this binary, plus plugins of the
//! dynamic libraries found in a pipeline's `plugin_dirs` and in `$PIPE_PLUGIN_PATH`
//! (docs/design.md §5). Both kinds are a `PluginDescriptor` to the rest of the engine; an entry
//! also records where the plugin came from, for `pipe plugins` and error messages.

use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginKind};

use crate::plugin_host::{ExternalPlugin, LoadedLibrary};

/// Where a plugin comes from.
#[derive(Clone)]
pub enum Origin {
    /// Linked into this binary.
    BuiltIn,
    /// A plugin of a loaded dynamic library.
    Library(Arc<ExternalPlugin>),
}

/// One plugin the registry knows.
#[derive(Clone)]
pub struct Entry {
    /// What the engine opens and validates it with.
    pub descriptor: PluginDescriptor,
    /// Built-in or which library.
    pub origin: Origin,
}

/// Plugins by name.
#[derive(Clone)]
pub struct Registry {
    plugins: Vec<Entry>,
}

impl Registry {
    /// The plugins linked into this binary.
    pub fn builtin() -> Self {
        let plugins = vec![
            pipe_plugin_giosg::descriptor(),
            pipe_plugin_alli::descriptor(),
            pipe_plugin_aimylogic::descriptor(),
            pipe_plugin_rest::descriptor(),
            pipe_plugin_decrypt::descriptor(),
            pipe_plugin_tags::descriptor(),
            pipe_plugin_parquet::descriptor(),
            pipe_plugin_json::descriptor(),
            pipe_plugin_stdout::descriptor(),
        ];
        Registry {
            plugins: plugins.into_iter().map(|descriptor| Entry { descriptor, origin: Origin::BuiltIn }).collect(),
        }
    }

    /// This registry plus the plugins of `libraries`, in order. A name already provided by an
    /// earlier library is skipped with a warning (like `$PATH`, the first directory wins). A
    /// name of a built-in is refused, unless `allow_override`: then the library's replaces it.
    ///
    /// Errors: the one-line reason a library's plugin is refused.
    pub fn with_libraries(&self, libraries: &[Arc<LoadedLibrary>], allow_override: bool) -> Result<Registry, String> {
        let mut out = self.clone();
        for lib in libraries {
            for plugin in &lib.plugins {
                let entry = Entry { descriptor: plugin.descriptor(), origin: Origin::Library(plugin.clone()) };
                match out.plugins.iter().position(|e| e.descriptor.name == plugin.name) {
                    None => out.plugins.push(entry),
                    Some(i) => match &out.plugins[i].origin {
                        Origin::BuiltIn if allow_override => {
                            tracing::info!(
                                "plugin `{}` from {} overrides the built-in",
                                plugin.name,
                                lib.path.display()
                            );
                            out.plugins[i] = entry;
                        }
                        Origin::BuiltIn => {
                            return Err(format!(
                                "{} provides plugin `{}`, which is built in; add `allow_override = true` to the pipeline to use the library's instead",
                                lib.path.display(),
                                plugin.name
                            ));
                        }
                        Origin::Library(first) => tracing::warn!(
                            "plugin `{}` of {} ignored: {} provides it first",
                            plugin.name,
                            lib.path.display(),
                            first.library_path.display()
                        ),
                    },
                }
            }
        }
        Ok(out)
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&PluginDescriptor> {
        self.plugins.iter().find(|p| p.descriptor.name == name).map(|e| &e.descriptor)
    }

    /// Names of the plugins of one kind, for error messages.
    pub fn names(&self, kind: PluginKind) -> Vec<&'static str> {
        self.plugins.iter().filter(|p| p.descriptor.kind() == kind).map(|p| p.descriptor.name).collect()
    }

    /// Every plugin.
    pub fn all(&self) -> &[Entry] {
        &self.plugins
    }
}
