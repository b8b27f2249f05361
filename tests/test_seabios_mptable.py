"""Decode the MP table real firmware (QEMU's SeaBIOS) builds, from a guest-memory dump.

A 512-byte boot sector that just halts is booted with 2 vCPUs; once the boot CPU halts in it,
the QEMU monitor dumps the low 1 MiB with ``pmemsave`` and ``osvkit decode mptable`` (a real
subprocess) must find SeaBIOS's table the MP-spec way, with 2 processor entries and valid
checksums.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest

from osvkit.asm import assemble

pytestmark = pytest.mark.qemu

BOOT_SECTOR_ADDR = 0x7C00


def halting_boot_sector() -> bytes:
    code = assemble("start:\ncli\nhalt:\nhlt\njmp halt\n", bits=16, base=BOOT_SECTOR_ADDR)
    assert code == bytes.fromhex("fa f4 eb fd")     # cli; hlt; jmp -3
    return code.ljust(510, b"\0") + b"\x55\xAA"


class Monitor:
    """Minimal HMP client on a unix socket."""

    def __init__(self, path, deadline: float):
        self.deadline = deadline
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(max(0.1, deadline - time.monotonic()))
        self._read_prompt()

    def _read_prompt(self) -> str:
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", buf.decode("latin-1"))

    def cmd(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\n")
        return self._read_prompt()

    def close(self) -> None:
        self.sock.close()


def test_seabios_mptable_decodes(qemu, cli, tmp_path):
    disk = tmp_path / "halt.img"
    disk.write_bytes(halting_boot_sector().ljust(64 * 1024, b"\0"))
    sock = tmp_path / "monitor.sock"
    dump = tmp_path / "dump.bin"
    deadline = time.monotonic() + 20
    log = (tmp_path / "qemu.log").open("wb")
    proc = subprocess.Popen(
        [qemu, "-accel", "tcg", "-m", "64", "-smp", "2,sockets=2,cores=1,threads=1",
         "-display", "none", "-nodefaults", "-no-reboot",
         "-drive", f"file={disk},format=raw,if=ide",
         "-monitor", f"unix:{sock},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        mon = Monitor(sock, deadline)
        halted = False
        while time.monotonic() < deadline:
            regs = mon.cmd("info registers")
            eip = re.search(r"EIP=([0-9a-f]+)", regs)
            cs = re.search(r"^CS =([0-9a-f]{4})", regs, re.M)
            if eip and cs and "HLT=1" in regs and int(cs.group(1), 16) == 0 \
                    and BOOT_SECTOR_ADDR <= int(eip.group(1), 16) < BOOT_SECTOR_ADDR + 512:
                halted = True
                break
            time.sleep(0.1)
        assert halted, f"the boot sector did not halt in time; last registers:\n{regs}"
        # quoted: HMP would read "/" in a bare file name as a division
        out = mon.cmd(f'pmemsave 0 0x100000 "{dump}"')
        assert "rror" not in out and "nvalid" not in out, out
        mon.sock.sendall(b"quit\n")
        while mon.sock.recv(4096):              # QEMU closes the socket as it exits
            pass
        mon.close()
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert dump.stat().st_size == 0x100000

    r = cli("decode", "mptable", dump, "--json")
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(r.stdout)
    assert d["mpf"]["signature"] == "_MP_" and d["header"]["signature"] == "PCMP"
    assert d["found_by"] == "spec"                      # SeaBIOS puts it in the F segment
    assert 0xF0000 <= d["address"] < 0x100000
    assert d["checksums_ok"] is True and d["checksums"]["mpf"]["ok"] \
        and d["checksums"]["table"]["ok"]
    cpus = [e for e in d["entries"] if e["kind"] == "processor"]
    assert len(cpus) == 2 and d["cpus"] == 2
    assert [c["apicid"] for c in cpus] == [0, 1]
    assert cpus[0]["cpuflag"] == 3 and cpus[1]["cpuflag"] == 1   # BSP, then an enabled AP
    assert d["header"]["lapic"] == 0xFEE00000
    r = cli("decode", "mptable", dump)
    assert r.returncode == 0 and b"2 processors" in r.stdout
