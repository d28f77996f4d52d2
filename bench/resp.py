"""A minimal RESP client for the benchmark scripts: pipelined sends, replies parsed into bytes,
ints-as-bytes, None and lists."""
import socket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    def __init__(self, port, raise_errors=False):
        """raise_errors: an error reply raises RuntimeError instead of being returned as bytes."""
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.raise_errors = raise_errors

    def send(self, cmds):
        out = []
        for args in cmds:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def read(self):
        line = self.f.readline()
        t = line[:1]
        if t == b"-" and self.raise_errors:
            raise RuntimeError(line[1:-2].decode())
        if t in b"+-:":
            return line[1:-2]
        if t == b"$":
            n = int(line[1:-2])
            if n < 0:
                return None
            return self.f.read(n + 2)[:-2]
        if t == b"*":
            return [self.read() for _ in range(int(line[1:-2]))]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        self.send([[a if isinstance(a, bytes) else str(a).encode() for a in args]])
        return self.read()


def server_pid(port):
    """The process id of the server answering on `port` (INFO server's process_id): a bench
    script checks that the server it started is the one there, not a parallel test's."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"INFO server\r\n")
        text = b""
        while b"process_id:" not in text or not text.endswith(b"\r\n"):
            chunk = s.recv(1 << 16)
            if not chunk or chunk.startswith(b"-"):
                raise OSError(f"no INFO from port {port}: {chunk[:80]!r}")
            text += chunk
    line = [l for l in text.decode().split("\r\n") if l.startswith("process_id:")][0]
    return int(line.split(":")[1])
