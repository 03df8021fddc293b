#!/usr/bin/env python3
"""A WebSocket echo server for preview tests, stdlib only (it runs inside the VM): answers each
text or binary message with "echo: " + it (binary: b"echo: " + it), and tells the path it was
opened on and the subprotocol it chose in its first message. Usage: ws_echo_server.py PORT."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import sys
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def send_frame(conn: socket.socket, opcode: int, payload: bytes) -> None:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    conn.sendall(head + payload)


def serve(conn: socket.socket) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            return
        request += chunk
    lines = request.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if headers.get("upgrade", "").lower() != "websocket":
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return
    accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    chosen = offered[0] if offered else ""
    reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    reply += f"Sec-WebSocket-Accept: {accept}\r\n"
    if chosen:
        reply += f"Sec-WebSocket-Protocol: {chosen}\r\n"
    conn.sendall((reply + "\r\n").encode())
    send_frame(conn, 1, f"hello {path} {chosen or '-'}".encode())
    while True:
        b1, b2 = recv_exact(conn, 2)
        opcode, n = b1 & 0x0F, b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(conn, 8))[0]
        mask = recv_exact(conn, 4) if b2 & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(conn, n)))
        if opcode == 8:
            send_frame(conn, 8, payload[:2])
            return
        if opcode == 9:
            send_frame(conn, 10, payload)
        elif opcode in (1, 2):
            send_frame(conn, opcode, b"echo: " + payload)


def main() -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[1])))
    srv.listen()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=lambda c=conn: serve_safely(c), daemon=True).start()


def serve_safely(conn: socket.socket) -> None:
    try:
        serve(conn)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    main()
