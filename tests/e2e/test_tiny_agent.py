#!/usr/bin/env python3
"""End-to-end test of bureau-agent in the tiny image, driven straight through
QEMU (no bureaud): boots a linked clone of the golden image, speaks the
channel protocol of src/guest/channel.h on the virtio-serial socket, and
powers the guest off over QMP. Prints TAP.

usage: test_tiny_agent.py [IMAGE_DIR]      (default /work/main/var/images)
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

MAGIC = b"BU"
VERSION = 1
HELLO, MSG, DATA, CLOSE, WINDOW = 1, 2, 3, 4, 5
MAX_PAYLOAD = 64 * 1024

_count = 0
_failed = 0


def ok(cond, name, diag=None):
    global _count, _failed
    _count += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", _count, name), flush=True)
    if not cond:
        _failed += 1
        if diag is not None:
            for line in str(diag).splitlines()[:20]:
                print("#   " + line, flush=True)
    return cond


def note(text):
    print("# " + text, flush=True)


def frame(ftype, payload, stream=0):
    return MAGIC + bytes([VERSION, ftype]) + struct.pack(">II", stream, len(payload)) + payload


class Agent:
    """The host side of the channel on QEMU's chardev socket."""

    def __init__(self, path, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.buf = b""
        self.synced = False
        self.pending = []

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj, ftype=MSG):
        self.send_raw(frame(ftype, json.dumps(obj).encode()))

    def hello(self):
        self.send({"type": "hello", "proto": 1, "host": "test_tiny_agent"}, HELLO)

    def _frames(self):
        while True:
            if not self.synced:
                i = self.buf.find(MAGIC + bytes([VERSION, HELLO]))
                if i < 0:
                    self.buf = self.buf[-3:]
                    return
                self.buf = self.buf[i:]
                self.synced = True
            if len(self.buf) < 12:
                return
            ftype = self.buf[3]
            stream, length = struct.unpack(">II", self.buf[4:12])
            if self.buf[:3] != MAGIC + bytes([VERSION]) or length > MAX_PAYLOAD:
                raise ValueError("bad frame from agent: %r" % self.buf[:12])
            if len(self.buf) < 12 + length:
                return
            payload = self.buf[12:12 + length]
            self.buf = self.buf[12 + length:]
            yield ftype, stream, payload

    def recv(self, timeout=30, want=None):
        """Next message (ftype, obj) matching want(obj), keeping others."""
        for i, (ft, obj) in enumerate(self.pending):
            if want is None or want(obj):
                del self.pending[i]
                return ft, obj
        deadline = time.time() + timeout
        while True:
            for ft, stream, payload in self._frames():
                obj = json.loads(payload.decode())
                if want is None or want(obj):
                    return ft, obj
                self.pending.append((ft, obj))
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no message from the agent")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("agent socket closed")
            self.buf += data

    def request(self, obj, timeout=30):
        self.send(obj)
        _, reply = self.recv(timeout, lambda m: m.get("id") == obj.get("id")
                             and m.get("type") != "ready")
        return reply

    def exec(self, cmd, rid, timeout=30, **kw):
        req = {"type": "exec", "id": rid, "argv": ["sh", "-c", cmd]}
        req.update(kw)
        return self.request(req, timeout)


class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.sock.makefile("rwb")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP closed")
            reply = json.loads(line)
            if "return" in reply or "error" in reply:
                return reply

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


class Vm:
    def __init__(self, image, work):
        self.image = image
        self.work = work
        self.proc = None

    def boot(self):
        for s in ("agent.sock", "qmp.sock"):
            try:
                os.unlink(os.path.join(self.work, s))
            except FileNotFoundError:
                pass
        with open(os.path.join(self.image, "manifest.json")) as f:
            manifest = json.load(f)
        w = self.work
        args = [
            "qemu-system-x86_64", "-name", "bureau-test-tiny",
            "-machine", "q35", "-accel", "tcg,tb-size=256", "-m", "512", "-smp", "2",
            "-nic", "none", "-display", "none", "-no-reboot",
            "-kernel", os.path.join(self.image, manifest["kernel"]),
            "-initrd", os.path.join(self.image, manifest["initrd"]),
            "-append", manifest["cmdline"],
            "-drive", "file=%s/disk.qcow2,if=virtio,format=qcow2,cache=writeback,discard=unmap" % w,
            "-device", "virtio-serial",
            "-chardev", "socket,id=a0,path=%s/agent.sock,server=on,wait=off" % w,
            "-device", "virtserialport,chardev=a0,name=org.bureau.agent",
            "-qmp", "unix:%s/qmp.sock,server=on,wait=off" % w,
            "-serial", "file:%s/serial.log" % w,
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(w, "qemu.log"), "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.time()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def serial_tail(self, n=15):
        try:
            with open(os.path.join(self.work, "serial.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def first_session(vm, a):
    t0 = vm.started
    a.hello()
    ft, h = a.recv(60, lambda m: m.get("type") == "hello")
    ok(ft == HELLO and h.get("proto") == 1 and h.get("image") == "tiny"
       and len(h.get("bootId", "")) >= 32 and h.get("agent", "").startswith("bureau-agent"),
       "agent answers HELLO with its own (proto, image, bootId)", h)
    _, r = a.recv(30, lambda m: m.get("type") == "ready")
    ok(r.get("stage") == "boot", "agent announces ready stage boot", r)
    note("boot to ready: %.1f s" % (time.time() - t0))
    return h


def exec_tests(a):
    r = a.request({"type": "ping", "id": "p1"})
    ok(r == {"type": "pong", "id": "p1"}, "ping answers pong with the same id", r)

    r = a.exec("echo hi", 1)
    ok(r.get("type") == "exec.result" and r.get("exitCode") == 0 and r.get("stdout") == "hi\n"
       and r.get("stderr") == "" and r.get("timedOut") is False and r.get("signal") is None
       and r.get("truncated") is False, "exec echo hi", r)

    r = a.exec("echo oops >&2; exit 3", {"n": 2})
    ok(r.get("id") == {"n": 2} and r.get("exitCode") == 3 and r.get("stderr") == "oops\n",
       "exec with non-zero exit keeps the status, stderr and a JSON id", r)

    t = time.time()
    r = a.exec("sleep 30", "t", timeoutMs=1500)
    took = time.time() - t
    ok(r.get("timedOut") is True and r.get("exitCode") is None and r.get("signal") == 9
       and took < 10, "exec timeout kills the command (%.1f s)" % took, r)

    r = a.exec("id -u; pwd; echo $HOME", 3)
    ok(r.get("stdout") == "1000\n/data/home/agent\n/data/home/agent\n",
       "exec runs as the agent user in its home by default", r)
    r = a.exec("id -u; pwd; echo $FOO; cat", 4, user="root", cwd="/tmp",
               env={"FOO": "bar"}, stdin="from stdin\n")
    ok(r.get("stdout") == "0\n/tmp\nbar\nfrom stdin\n", "exec user, cwd, env and stdin", r)

    a.send({"type": "exec", "id": "slow", "argv": ["sh", "-c", "sleep 2; echo slow"]})
    a.send({"type": "exec", "id": "fast", "argv": ["sh", "-c", "echo fast"]})
    _, first = a.recv(30, lambda m: m.get("type") == "exec.result")
    _, second = a.recv(30, lambda m: m.get("type") == "exec.result")
    ok(first.get("id") == "fast" and second.get("id") == "slow" and second.get("stdout") == "slow\n",
       "execs run concurrently", [first, second])

    r = a.exec("head -c 300000 /dev/urandom; printf 'x\\377y' >&2", 5)
    ok(r.get("truncated") is True and len(json.dumps(r, separators=(",", ":"))) <= MAX_PAYLOAD
       and r.get("exitCode") == 0, "big binary output is truncated to fit one frame", {
           k: (v if k not in ("stdout",) else len(v)) for k, v in r.items()})
    r = a.exec("printf 'a\\377b\\300'", 6)
    ok(r.get("stdout") == "a\ufffdb\ufffd", "invalid UTF-8 is replaced", r)

    r = a.exec("true", 7, argv=None)
    ok(r.get("type") == "error" and r.get("id") == 7, "exec without argv is an error", r)
    r = a.request({"type": "exec", "id": 8, "argv": ["/no/such/program"]})
    ok(r.get("type") == "exec.result" and r.get("exitCode") == 127,
       "exec of a missing program exits 127", r)
    r = a.request({"type": "frobnicate", "id": 9})
    ok(r.get("type") == "error" and "unknown" in r.get("message", ""),
       "unknown message type is an error", r)


def agent_cpu_ticks(a):
    """utime + stime of bureau-agent, in clock ticks."""
    r = a.exec("set -- $(sed 's/.*) //' /proc/$(pidof bureau-agent)/stat); echo $((${12} + ${13}))",
               "cpu", user="root")
    try:
        return int(r.get("stdout", "").strip())
    except ValueError:
        return -1


def garbage_tests(a):
    a.send_raw(frame(MSG, b"{not json"))
    _, r = a.recv(10, lambda m: m.get("type") == "error")
    ok(r.get("id") is None, "malformed JSON in a frame gets an error", r)
    a.send_raw(frame(MSG, b"[1,2,3]"))
    _, r = a.recv(10, lambda m: m.get("type") == "error")
    ok(True, "a non-object message gets an error")

    # Bytes that are no frame at all, then an oversized length: the agent
    # drops the session's framing and waits for the next HELLO.
    a.send_raw(os.urandom(3000).replace(b"BU", b"xx"))
    a.send_raw(MAGIC + bytes([VERSION, MSG]) + struct.pack(">II", 0, 10 * 1024 * 1024))
    time.sleep(0.5)
    a.synced = False
    a.hello()
    ft, h = a.recv(30, lambda m: m.get("type") == "hello")
    _, r = a.recv(30, lambda m: m.get("type") == "ready")
    ok(ft == HELLO and r.get("stage") == "boot", "after garbage a new HELLO resynchronises", r)
    r = a.exec("echo still here", "g")
    ok(r.get("stdout") == "still here\n", "agent works after garbage", r)


def main():
    image_dir = sys.argv[1] if len(sys.argv) > 1 else "/work/main/var/images"
    image = os.path.realpath(os.path.join(image_dir, "tiny", "current"))
    if not os.path.isfile(os.path.join(image, "manifest.json")):
        print("1..0 # SKIP no tiny image in %s (run image/build.sh)" % image_dir)
        return 0
    work = tempfile.mkdtemp(prefix="bureau-tiny-")
    vm = Vm(image, work)
    a = q = None
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                        os.path.join(image, "disk.qcow2"), "-F", "qcow2",
                        os.path.join(work, "disk.qcow2"), "1G"], check=True)
        vm.boot()
        a = Agent(os.path.join(work, "agent.sock"))
        h1 = first_session(vm, a)
        exec_tests(a)
        garbage_tests(a)

        # The host restarts: a new connection, a new HELLO. Meanwhile the
        # agent sees POLLHUP on its port and must not spin.
        cpu0 = agent_cpu_ticks(a)
        a.close()
        time.sleep(5)
        a = Agent(os.path.join(work, "agent.sock"))
        a.hello()
        _, h2 = a.recv(30, lambda m: m.get("type") == "hello")
        _, r = a.recv(30, lambda m: m.get("type") == "ready")
        ok(h2.get("bootId") == h1.get("bootId") and r.get("stage") == "boot",
           "reconnect: new HELLO, same boot, ready re-announced", [h2, r])
        cpu1 = agent_cpu_ticks(a)
        ok(cpu0 >= 0 and cpu1 - cpu0 <= 20,
           "agent stays idle without a host (%d CPU ticks in 5 s)" % (cpu1 - cpu0))

        token = "persist-%d" % os.getpid()
        r = a.exec("echo %s > /data/home/agent/note.txt" % token, "w")
        ok(r.get("exitCode") == 0, "write a file to /data", r)

        q = Qmp(os.path.join(work, "qmp.sock"))
        t = time.time()
        q.cmd("system_powerdown")
        status = vm.wait(30)
        took = time.time() - t
        ok(status is not None, "system_powerdown: QEMU exits within 30 s (%.1f s)" % took,
           vm.serial_tail())
        note("powerdown to exit: %.1f s" % took)
        q.close()
        q = None
        a.close()
        a = None
        vm.kill()

        vm.boot()
        a = Agent(os.path.join(work, "agent.sock"))
        a.hello()
        _, h3 = a.recv(60, lambda m: m.get("type") == "hello")
        a.recv(30, lambda m: m.get("type") == "ready")
        ok(h3.get("bootId") != h1.get("bootId"), "second boot has a new bootId", h3)
        r = a.exec("cat /data/home/agent/note.txt; dmesg | grep -c 'EXT4-fs.*recovery' || true",
                   "r", user="root")
        ok(r.get("stdout", "").startswith(token + "\n"), "the file survives the power-off", r)
        ok(r.get("stdout", "").endswith("0\n"), "the disk was clean (no journal recovery)", r)
    except Exception as e:  # report, then clean up
        ok(False, "unexpected failure: %s: %s" % (type(e).__name__, e), vm.serial_tail())
    finally:
        if a:
            a.close()
        if q:
            q.close()
        vm.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("1..%d" % _count)
    return 1 if _failed else 0


if __name__ == "__main__":
    sys.exit(main())
