"""systemd's service notification protocol (``sd_notify(3)``): readiness and stop for
``Type=notify`` units (contrib/systemd/timecoind.service, docs/operator.md "Running under
systemd").

The service manager passes the path of a datagram socket in ``$NOTIFY_SOCKET``: a filesystem
path, or an abstract socket written with a leading ``@`` (``sd_notify(3)``, "Notes"). Each
notification is one datagram of newline-separated ``KEY=VALUE`` assignments (``READY=1``,
``STOPPING=1``, ``STATUS=...``, ``MAINPID=...``). Without ``$NOTIFY_SOCKET`` (not started by
systemd, or another ``Type=``) nothing is sent. A notification that cannot be delivered is logged
and dropped: the node keeps running, as ``sd_notify`` callers do.

A few lines of the standard ``socket`` module: the protocol is one ``sendto``, and the
maintained Python binding (``systemd-python``) needs libsystemd's headers to build.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

__all__ = ["NOTIFY_SOCKET_ENV", "notify", "notify_socket_address"]

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
"""The environment variable systemd puts the notification socket's address in (``sd_notify(3)``)."""
_ABSTRACT_PREFIX = "@"
"""A leading ``@`` names a socket in the abstract namespace (its address starts with a NUL)."""


def notify_socket_address(value: str | None = None) -> str | bytes | None:
    """The ``AF_UNIX`` address to send to, from ``value`` (default ``$NOTIFY_SOCKET``): the path,
    or for ``@name`` the abstract address ``b"\\0name"``; ``None`` if unset or empty.
    ``ValueError`` for an address that is neither absolute nor abstract (``sd_notify`` ignores
    those too)."""
    if value is None:
        value = os.environ.get(NOTIFY_SOCKET_ENV)
    if not value:
        return None
    if value.startswith(_ABSTRACT_PREFIX):
        return b"\0" + value[len(_ABSTRACT_PREFIX) :].encode()
    if not value.startswith("/"):
        raise ValueError(f"${NOTIFY_SOCKET_ENV} is {value!r}: not an absolute path or @abstract name")
    return value


def notify(**assignments: str | int) -> bool:
    """Sends one notification of ``assignments`` (``notify(READY=1, STATUS="...")`` sends
    ``READY=1\\nSTATUS=...``) to ``$NOTIFY_SOCKET``. Returns True if sent, False if there is no
    socket to send to or sending failed (logged at warning). Values must not contain newlines
    (``ValueError``): a newline would start another assignment."""
    lines = []
    for key, value in assignments.items():
        text = str(value)
        if "\n" in text:
            raise ValueError(f"sd_notify value of {key} contains a newline")
        lines.append(f"{key}={text}")
    try:
        address = notify_socket_address()
    except ValueError as e:
        log.warning("no service notification sent: %s", e)
        return False
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError as e:
        log.warning("cannot notify the service manager at $%s: %s", NOTIFY_SOCKET_ENV, e)
        return False
    return True
