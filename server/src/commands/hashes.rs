//! Hash commands.

use super::commands;

commands! {
    pub static COMMANDS;
}
