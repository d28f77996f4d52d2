use warpengine_tests::{start_warpengine, RawConn};

#[test]
fn ping_and_set_get_over_raw_resp() {
    let server = start_warpengine(&[]);
    let mut c = RawConn::connect(server.port);
    assert_eq!(c.command(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(c.command(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(c.command(&[b"GET", b"k"]), b"$1\r\nv\r\n");
}
