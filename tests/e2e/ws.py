"""A small WebSocket client (RFC 6455) for the console tests, written out
so the tests see every byte: the handshake answer, frames, close codes.
Also the client side of an RFB (VNC) session over it.
"""
import base64
import hashlib
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10


class HandshakeRefused(Exception):
    def __init__(self, status, headers, body):
        super().__init__("refused: %d %s" % (status, body[:200]))
        self.status = status
        self.headers = headers
        self.body = body


class Closed(Exception):
    def __init__(self, code, reason=b""):
        super().__init__("closed: %s %r" % (code, reason))
        self.code = code
        self.reason = reason


def _read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, rest


class WebSocket:
    """connect() performs the handshake; HandshakeRefused carries the HTTP
    answer when the server says no."""

    def __init__(self, sock, rest, headers):
        self.sock = sock
        self.buf = rest
        self.headers = headers
        self.protocol = headers.get("sec-websocket-protocol")

    @classmethod
    def connect(cls, port, path, headers=None, protocols=None, timeout=30, key=None,
                version="13", host=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = key or base64.b64encode(os.urandom(16)).decode()
        host = host or "127.0.0.1:%d" % port
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n" % (path, host, key, version))
        if protocols:
            req += "Sec-WebSocket-Protocol: %s\r\n" % ", ".join(protocols)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        sock.sendall((req + "\r\n").encode())
        status, hdrs, rest = _read_head(sock)
        if status != 101:
            body = rest
            n = int(hdrs.get("content-length", "0"))
            while len(body) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            sock.close()
            raise HandshakeRefused(status, hdrs, body)
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            sock.close()
            raise RuntimeError("bad Sec-WebSocket-Accept %r" % hdrs.get("sec-websocket-accept"))
        return cls(sock, rest, hdrs)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if mask:
            m = os.urandom(4)
            payload = bytes(b ^ m[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
                _mask_fast(payload, m)
            head += m
        self.sock.sendall(head + payload)

    def send(self, data):
        if isinstance(data, str):
            self.send_frame(TEXT, data.encode())
        else:
            self.send_frame(BINARY, bytes(data))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise Closed(1006)
            self.buf += chunk

    def _take(self, n):
        self._need(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._take(8))[0]
        if b1 & 0x80:
            raise RuntimeError("server frames must not be masked")
        return b0 & 0x80, b0 & 0x0F, self._take(n)

    def recv(self):
        """The next message (opcode, bytes); answers pings; raises Closed."""
        parts, first = [], None
        while True:
            fin, op, payload = self.recv_frame()
            if op == PING:
                self.send_frame(PONG, payload)
                continue
            if op == PONG:
                continue
            if op == CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self.send_frame(CLOSE, payload[:2])
                except OSError:
                    pass
                raise Closed(code, payload[2:])
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def close(self, code=1000):
        try:
            self.send_frame(CLOSE, struct.pack(">H", code))
            deadline = time.time() + 5
            while time.time() < deadline:
                self.recv()
        except (Closed, OSError, RuntimeError):
            pass
        self.sock.close()


def _mask_fast(payload, m):
    n = len(payload)
    key = (m * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class RFB:
    """The client half of RFB 3.8 over a WebSocket carrying raw bytes."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = b""

    def read(self, n):
        while len(self.buf) < n:
            op, data = self.ws.recv()
            if op != BINARY:
                raise RuntimeError("RFB bytes must come in binary messages, got opcode %d" % op)
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def handshake(self, shared=1):
        version = self.read(12)
        self.ws.send(b"RFB 003.008\n")
        ntypes = self.read(1)[0]
        types = self.read(ntypes)
        if 1 not in types:
            raise RuntimeError("no security type None: %r" % types)
        self.ws.send(bytes([1]))
        result = struct.unpack(">I", self.read(4))[0]
        if result != 0:
            raise RuntimeError("security failed")
        self.ws.send(bytes([shared]))
        w, h = struct.unpack(">HH", self.read(4))
        pf = self.read(16)
        nlen = struct.unpack(">I", self.read(4))[0]
        name = self.read(nlen)
        self.width, self.height, self.name = w, h, name
        # 32 bpp little-endian true colour; raw encoding only
        self.ws.send(bytes([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]))
        self.ws.send(bytes([2, 0, 0, 1]) + struct.pack(">i", 0))
        return version

    def request(self, incremental=0, x=0, y=0, w=None, h=None):
        w = self.width if w is None else w
        h = self.height if h is None else h
        self.ws.send(struct.pack(">BBHHHH", 3, incremental, x, y, w, h))

    def pointer(self, x, y, buttons=0):
        self.ws.send(struct.pack(">BBHH", 5, buttons, x, y))

    def key(self, keysym, down):
        self.ws.send(struct.pack(">BBHI", 4, 1 if down else 0, 0, keysym))

    def read_update(self, fb=None):
        """Reads server messages up to one FramebufferUpdate; returns the
        rectangles [(x, y, w, h)] and paints raw pixels into fb (a
        bytearray of width*height*4) when given."""
        while True:
            t = self.read(1)[0]
            if t == 0:
                break
            if t == 1:  # SetColourMapEntries
                _, first, n = struct.unpack(">BHH", self.read(5))
                self.read(6 * n)
            elif t == 2:  # Bell
                continue
            elif t == 3:  # ServerCutText
                self.read(3)
                n = struct.unpack(">I", self.read(4))[0]
                self.read(n)
            else:
                raise RuntimeError("unexpected server message %d" % t)
        self.read(1)
        n = struct.unpack(">H", self.read(2))[0]
        rects = []
        for _ in range(n):
            x, y, w, h, enc = struct.unpack(">HHHHi", self.read(12))
            if enc == 0:
                pixels = self.read(w * h * 4)
                if fb is not None:
                    for row in range(h):
                        off = ((y + row) * self.width + x) * 4
                        fb[off:off + w * 4] = pixels[row * w * 4:(row + 1) * w * 4]
            elif enc == -223:  # DesktopSize
                self.width, self.height = w, h
            else:
                raise RuntimeError("unexpected encoding %d" % enc)
            rects.append((x, y, w, h))
        return rects
