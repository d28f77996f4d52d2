//! Stopping the server as Redis does, for SHUTDOWN and for SIGTERM/SIGINT alike: take the
//! final snapshot when asked (SAVE, or `save` rules configured and no NOSAVE), refuse to stop
//! when that fails unless FORCE, then stop accepting connections and let `main` flush and
//! fdatasync the log and exit 0.

use crate::persist::snapshot;
use crate::server_state::Server;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Save {
    /// Save when `save` rules are configured.
    #[default]
    Default,
    Save,
    NoSave,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub save: Save,
    /// Stop even if the final snapshot fails.
    pub force: bool,
}

impl Options {
    /// What `shutdown-on-sigterm` / `shutdown-on-sigint` ask for: flags among save, nosave,
    /// now (nothing to wait for here: no replica lag is awaited) and force, or `default`.
    pub fn for_signal(setting: &str) -> Options {
        let has = |flag: &str| setting.split_whitespace().any(|w| w == flag);
        Options {
            save: if has("save") {
                Save::Save
            } else if has("nosave") {
                Save::NoSave
            } else {
                Save::Default
            },
            force: has("force"),
        }
    }
}

/// Takes the final snapshot if `options` ask for one, then marks the server as stopping.
/// Err: the snapshot failed and FORCE was not given; the server keeps running.
pub fn begin(server: &Server, options: Options) -> Result<(), String> {
    let save = match options.save {
        Save::Save => true,
        Save::NoSave => false,
        Save::Default => !server
            .config
            .read()
            .expect("config lock")
            .get("save")
            .is_empty(),
    };
    // As Redis: half-loaded data is never saved over the file it comes from.
    let save = save && !server.loading.active();
    if save {
        // Redis's wording, here and in `snapshot::save`: test harnesses wait for these lines.
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = snapshot::save(server) {
            tracing::error!("Error trying to save the DB, can't exit. ({e})");
            if !options.force {
                tracing::warn!(
                    "Errors trying to shut down the server. Check the logs for more information."
                );
                return Err(e.to_string());
            }
        }
    }
    server.request_shutdown();
    Ok(())
}
