#!/usr/bin/env python3
"""Builds the libFuzzer target of the channel decoder (tests/fuzz/
fuzz_channel.c, clang -fsanitize=fuzzer,address) and runs it for a bounded
time (BUREAU_FUZZ_SECONDS, default 20) from a small seed corpus of valid
frames. Prints TAP: the build, and a run without a crash, leak or
sanitizer report."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import BUILD, ROOT, Tap  # noqa: E402

t = Tap()
SECONDS = int(os.environ.get("BUREAU_FUZZ_SECONDS", "20"))


def frame(ftype, payload, stream=0):
    return b"BU" + bytes([1, ftype]) + struct.pack(">II", stream, len(payload)) + payload


def seeds(folder):
    hello = frame(1, b'{"type":"hello","proto":1}')
    samples = [
        hello,
        hello + frame(2, json.dumps({"type": "open", "stream": 1, "kind": "exec",
                                     "argv": ["sh"]}).encode()),
        hello + frame(3, b"\x01stdout bytes", 1) + frame(5, b"\x00\x01\x00\x00", 1) +
        frame(4, b'{"exitCode":0}', 1),
        hello + frame(3, b"", 3) + frame(4, b"", 3),
        b"noise" + hello + frame(2, b"{}")[:9],
    ]
    for i, s in enumerate(samples):
        with open(os.path.join(folder, "seed%d" % i), "wb") as f:
            f.write(s)


clang = shutil.which("clang")
if not clang:
    t.ok(True, "fuzz target # SKIP clang is not installed (scripts/deps.sh installs it)")
    t.done()

work = tempfile.mkdtemp(prefix="bureau-fuzz-")
exe = os.path.join(BUILD, "fuzz_channel")
src = [os.path.join(ROOT, p) for p in (
    "tests/fuzz/fuzz_channel.c", "src/guest/channel.c", "src/guest/stream.c",
    "src/common/buf.c", "src/common/xalloc.c")]
cmd = [clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
       "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "src")] + src + ["-ljansson", "-o", exe]
r = subprocess.run(cmd, capture_output=True, text=True)
t.ok(r.returncode == 0, "the fuzz target builds with clang -fsanitize=fuzzer,address", r.stderr)
if r.returncode == 0:
    corpus = os.path.join(work, "corpus")
    os.mkdir(corpus)
    seeds(corpus)
    r = subprocess.run([exe, "-max_total_time=%d" % SECONDS, "-rss_limit_mb=1024",
                        "-artifact_prefix=" + work + "/", corpus],
                       capture_output=True, text=True, timeout=SECONDS + 120)
    runs = [l for l in r.stderr.splitlines() if l.startswith("Done ")]
    t.ok(r.returncode == 0 and runs, "the decoder survives %d s of fuzzing: %s" % (
        SECONDS, runs[0] if runs else "no summary"), r.stderr[-3000:])
shutil.rmtree(work, ignore_errors=True)
t.done()
