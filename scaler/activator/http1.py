"""HTTP/1.1 details shared by both sides of the proxy: hop-by-hop headers, framing, and the
responses the activator writes itself (404, 502, 503, 504, ...).
"""

from __future__ import annotations

from http import HTTPStatus

# Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
# Transfer-Encoding is re-applied by the proxy itself; Upgrade/Connection are re-added for
# a WebSocket upgrade.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"trailers",
    b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
})

CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never empty: an empty chunk would end the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def connection_tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def simple_response(status: int, text: str, *, close: bool = False,
                    retry_after: int | None = None, head_only: bool = False,
                    http10: bool = False, keep_alive_10: bool = False) -> bytes:
    """A complete plain-text response the activator writes on its own behalf."""
    body = (text.rstrip("\n") + "\n").encode()
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode()),
             b"Content-Type: text/plain; charset=utf-8",
             b"Content-Length: %d" % len(body),
             b"Cache-Control: no-store"]
    if retry_after is not None:
        lines.append(b"Retry-After: %d" % retry_after)
    if close:
        lines.append(b"Connection: close")
    elif http10 and keep_alive_10:
        lines.append(b"Connection: keep-alive")
    head = CRLF.join(lines) + CRLF + CRLF
    return head if head_only else head + body
