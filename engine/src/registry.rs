//! The plugins `pipe` knows by name. Built-ins are linked in; dynamic libraries come with the
//! plugin-ABI work and register here too.

use pipe_plugin_sdk::{PluginDescriptor, PluginKind};

/// Plugins by name.
#[derive(Clone)]
pub struct Registry {
    plugins: Vec<PluginDescriptor>,
}

impl Registry {
    /// The plugins linked into this binary.
    pub fn builtin() -> Self {
        Registry {
            plugins: vec![
                pipe_plugin_giosg::descriptor(),
                pipe_plugin_parquet::descriptor(),
                pipe_plugin_json::descriptor(),
                pipe_plugin_stdout::descriptor(),
            ],
        }
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&PluginDescriptor> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Names of the plugins of one kind, for error messages.
    pub fn names(&self, kind: PluginKind) -> Vec<&'static str> {
        self.plugins.iter().filter(|p| p.kind() == kind).map(|p| p.name).collect()
    }

    /// Every plugin.
    pub fn all(&self) -> &[PluginDescriptor] {
        &self.plugins
    }
}
