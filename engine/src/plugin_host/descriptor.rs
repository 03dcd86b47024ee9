//! A loaded plugin as a [`PluginDescriptor`], so the registry, config validation and the
//! runtime treat it exactly like a built-in. The descriptor's closures capture the
//! [`ExternalPlugin`] and call through its library; nothing is numbered or preallocated, so a
//! process can load any number of library plugins.

use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginFactory, PluginKind};

use super::external::ExternalPlugin;
use super::{sink, source, transform};

impl ExternalPlugin {
    /// The descriptor the engine's registry and runtime use, like a built-in's: its config
    /// schema is the one the library published, `check_config` and the factory call into the
    /// library (`check_config`, then the vtable's `open`). Cheap: a few reference counts.
    pub fn descriptor(self: &Arc<Self>) -> PluginDescriptor {
        let schema = self.clone();
        let check = self.clone();
        let open = self.clone();
        PluginDescriptor {
            name: self.name,
            version: self.version,
            description: self.description,
            config_schema: Arc::new(move || schema.config_schema.clone()),
            check_config: PluginDescriptor::check_with(move |config| check.check_config(config)),
            factory: match self.kind {
                PluginKind::Source => PluginFactory::source(move |config, ctx| source::open(open.clone(), config, ctx)),
                PluginKind::Transform => {
                    PluginFactory::transform(move |config, ctx| transform::open(open.clone(), config, ctx))
                }
                PluginKind::Sink => PluginFactory::sink(move |config, ctx| sink::open(open.clone(), config, ctx)),
            },
        }
    }
}
