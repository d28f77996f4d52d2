//! Bitmap (on strings) commands.

use super::commands;

commands! {
    pub static COMMANDS;
}
