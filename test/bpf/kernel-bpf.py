#!/usr/bin/env python3
"""Runs eBPF programs through the Linux kernel, for differential tests.

Reads one JSON object per line on stdin: {"insns": HEX, "packets": [HEX, ...]}.
Writes one JSON object per line on stdout: {"verdict": "accepted", "results": [INT32, ...]}
or {"verdict": "refused", "errno": N, "log": "the verifier's last lines"}.

With "trace": true the program is loaded with the verifier's full log, and the reply
carries "edges": the [from, to] steps between instructions the verifier walked (each
instruction followed by the next it printed, and each "from X to Y" branch it resumed).

Each program is loaded with bpf(BPF_PROG_LOAD) as BPF_PROG_TYPE_SOCKET_FILTER and run with
BPF_PROG_TEST_RUN on each packet. A socket filter's test run takes an Ethernet frame and
strips its 14-byte header before the program runs, so each packet is sent behind 14 bytes
of header: the program sees exactly the packet's bytes and skb->len is its length.

The first line written is {"ready": true}, or {"unavailable": REASON} when bpf() is refused
(no privileges, seccomp, an old kernel), after which the tool exits.
"""
import ctypes
import json
import os
import platform
import struct
import sys

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_PROG_TYPE_SOCKET_FILTER = 1
ATTR_SIZE = 160
LOG_SIZE = 1 << 16
TRACE_LOG_SIZE = 1 << 24
ETH_HLEN = 14

libc = ctypes.CDLL(None, use_errno=True)
license_buf = ctypes.create_string_buffer(b"GPL")
log_buf = ctypes.create_string_buffer(LOG_SIZE)
trace_buf = None


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, ATTR_SIZE)
    ret = libc.syscall(SYS_BPF, cmd, buf, ATTR_SIZE)
    return ret, ctypes.get_errno(), buf


def load(insns, trace=False):
    global trace_buf
    code = ctypes.create_string_buffer(insns, len(insns))
    if trace and trace_buf is None:
        trace_buf = ctypes.create_string_buffer(TRACE_LOG_SIZE)
    buf, size, level = (trace_buf, TRACE_LOG_SIZE, 2) if trace else (log_buf, LOG_SIZE, 1)
    buf[0] = b"\0"
    attr = struct.pack("<IIQQIIQII", BPF_PROG_TYPE_SOCKET_FILTER, len(insns) // 8, ctypes.addressof(code),
                       ctypes.addressof(license_buf), level, size, ctypes.addressof(buf), 0, 0)
    fd, err, _ = bpf(BPF_PROG_LOAD, attr)
    return fd, err, buf.value.decode("latin1")


def edges(log):
    found = set()
    prev = None
    for line in log.split("\n"):
        if line.startswith("from ") and " to " in line:
            words = line.split()
            try:
                found.add((int(words[1]), int(words[3].rstrip(":"))))
            except (IndexError, ValueError):
                pass
            prev = None
            continue
        head = line.split(":", 1)[0]
        if head.isdigit() and line[len(head):].startswith(": ("):
            pc = int(head)
            if prev is not None:
                found.add((prev, pc))
            prev = pc
    return sorted(found)


def test_run(fd, packet):
    # Ethertype 0x88b5 (local experimental): not IP, so the kernel looks for no IP header.
    frame = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\x88\xb5" + packet
    data = ctypes.create_string_buffer(frame, len(frame))
    attr = struct.pack("<IIIIQQII", fd, 0, len(frame), 0, ctypes.addressof(data), 0, 1, 0)
    ret, err, buf = bpf(BPF_PROG_TEST_RUN, attr)
    if ret != 0:
        return {"error": err}
    return struct.unpack_from("<i", buf.raw, 4)[0]


def last_lines(log):
    lines = [l for l in log.strip().split("\n") if l and not l.startswith("processed ")]
    return "\n".join(lines[-3:])


def main():
    if SYS_BPF is None:
        print(json.dumps({"unavailable": "bpf() syscall number unknown on " + platform.machine()}), flush=True)
        return
    fd, err, log = load(struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0))
    if fd < 0:
        print(json.dumps({"unavailable": "bpf(BPF_PROG_LOAD) failed: " + os.strerror(err)}), flush=True)
        return
    probe = test_run(fd, b"")
    os.close(fd)
    if isinstance(probe, dict):
        print(json.dumps({"unavailable": "bpf(BPF_PROG_TEST_RUN) failed: " + os.strerror(probe["error"])}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        trace = bool(req.get("trace"))
        fd, err, log = load(bytes.fromhex(req["insns"]), trace)
        if fd < 0:
            out = {"verdict": "refused", "errno": err, "log": last_lines(log)}
        else:
            out = {"verdict": "accepted", "results": [test_run(fd, bytes.fromhex(p)) for p in req.get("packets", [])]}
            os.close(fd)
        if trace:
            out["edges"] = edges(log)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
