"""Free TCP ports on 127.0.0.1 for the multi-process tests (workers, KerasTuner oracle)."""

import socket


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (all held open until chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
