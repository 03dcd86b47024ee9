//! Engine-side descriptors for plugins of loaded libraries.
//!
//! The SDK's `PluginDescriptor` holds plain `fn` pointers (built-ins are `fn` items), and the
//! engine's runtime calls them as such. A loaded plugin needs a pointer that knows *which*
//! plugin it opens, so each one gets a numbered slot, and the descriptor points to functions
//! monomorphised for that slot number (`open_source::<7>` opens the plugin in slot 7). Slots
//! are never freed, like the libraries. This keeps `PluginDescriptor` and the runtime exactly
//! as they are for built-ins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use pipe_plugin_sdk::{
    PluginDescriptor, PluginFactory, PluginKind, Result, Sink, SinkContext, Source, SourceContext, Transform,
};
use serde_json::Value;

use super::adapter;
use super::loader::ExternalPlugin;

/// How many plugins from libraries one process can load.
pub const MAX_EXTERNAL_PLUGINS: usize = 64;

static SLOTS: [OnceLock<Arc<ExternalPlugin>>; MAX_EXTERNAL_PLUGINS] = [const { OnceLock::new() }; MAX_EXTERNAL_PLUGINS];
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn slot(i: usize) -> &'static Arc<ExternalPlugin> {
    SLOTS[i].get().expect("a descriptor only points to a filled slot")
}

fn config_schema<const I: usize>() -> Value {
    slot(I).config_schema.clone()
}

fn check_config<const I: usize>(config: &Value) -> Result<()> {
    slot(I).check_config(config)
}

fn open_source<const I: usize>(config: Value, ctx: SourceContext) -> Result<Box<dyn Source>> {
    adapter::open_source(slot(I).clone(), config, ctx)
}

fn open_transform<const I: usize>(config: Value) -> Result<Box<dyn Transform>> {
    // The SDK's transform factory gets no context; the pipeline name is only for logs.
    adapter::open_transform(slot(I).clone(), config, "")
}

fn open_sink<const I: usize>(config: Value, ctx: SinkContext) -> Result<Box<dyn Sink>> {
    adapter::open_sink(slot(I).clone(), config, ctx)
}

struct SlotFns {
    config_schema: fn() -> Value,
    check_config: fn(&Value) -> Result<()>,
    source: pipe_plugin_sdk::plugin::SourceFactory,
    transform: pipe_plugin_sdk::plugin::TransformFactory,
    sink: pipe_plugin_sdk::plugin::SinkFactory,
}

macro_rules! slot_fns {
    ($($i:literal)*) => {
        [$(SlotFns {
            config_schema: config_schema::<$i>,
            check_config: check_config::<$i>,
            source: open_source::<$i>,
            transform: open_transform::<$i>,
            sink: open_sink::<$i>,
        }),*]
    };
}

static FNS: [SlotFns; MAX_EXTERNAL_PLUGINS] = slot_fns!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
);

/// Gives `plugin` a slot and its engine-side descriptor.
///
/// Errors: every slot is taken.
pub(super) fn register(plugin: Arc<ExternalPlugin>) -> Result<(), String> {
    let i = NEXT.fetch_add(1, Ordering::SeqCst);
    if i >= MAX_EXTERNAL_PLUGINS {
        return Err(format!("more than {MAX_EXTERNAL_PLUGINS} plugins from libraries in one process"));
    }
    let f = &FNS[i];
    let descriptor = PluginDescriptor {
        name: plugin.name,
        version: plugin.version,
        description: plugin.description,
        config_schema: f.config_schema,
        check_config: f.check_config,
        factory: match plugin.kind {
            PluginKind::Source => PluginFactory::Source(f.source),
            PluginKind::Transform => PluginFactory::Transform(f.transform),
            PluginKind::Sink => PluginFactory::Sink(f.sink),
        },
    };
    plugin.descriptor.set(descriptor).map_err(|_| "plugin registered twice".to_string())?;
    SLOTS[i].set(plugin).map_err(|_| "slot filled twice".to_string())?;
    Ok(())
}
