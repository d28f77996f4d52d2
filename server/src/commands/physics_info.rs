//! INFO physics: one `key:value` line per figure of each physics family (docs/physics.md).

use crate::server_state::Server;

pub fn write(server: &Server, out: &mut String) {
    out.push_str("# Physics\r\n");
    server.quantum.info(out);
    super::wormhole::info(server, out);
    super::temporal::write_info(server, out);
    super::gravity::info(server, out);
    super::entropy::info(server, out);
}
