#!/usr/bin/env bash
# osvkit CLI walkthrough: every step is one command.  Run it as
#
#   bash examples/walkthrough.sh [WORKDIR]
#
# Set OSVKIT to run another osvkit (the tests use OSVKIT="python3 -m osvkit").
# Needs QEMU (qemu-system-x86_64 and qemu-img).
set -euo pipefail
OSVKIT=${OSVKIT:-osvkit}
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d -t osvkit-walkthrough.XXXXXX)}
mkdir -p "$work"
cp -r "$here/osvkit.toml" "$here/usr.manifest" "$here/rootfs" "$work/"
cd "$work"
step() { printf '\n== %s\n' "$*" >&2; }

step "1. the demo: build the conformance kernel both ways and boot every path"
$OSVKIT demo --out demo

step "2. build every image osvkit.toml declares; the manifest lists every output"
$OSVKIT build -c osvkit.toml
$OSVKIT build -c osvkit.toml --json > build.json          # stdout is only JSON

step "3. same inputs, same bytes: rebuild and compare"
cp osvkit-manifest.json first-manifest.json
$OSVKIT build -c osvkit.toml -q >/dev/null
cmp first-manifest.json osvkit-manifest.json

step "4. look inside the image without booting it"
$OSVKIT inspect out/probe.img

step "5. change the command line of a copy in place (no qemu-nbd, no root)"
cp out/probe.img edited.img
$OSVKIT cmdline set edited.img -- "--verbose /hello edited"
$OSVKIT cmdline get edited.img

step "6. boot-verify everything the build file declares, with a boot timeline"
$OSVKIT verify -c osvkit.toml --plot boot.svg

step "7. one image, one backend; options from the environment; JSON report"
OSVKIT_TIMEOUT=30 OSVKIT_MEMORY=128M $OSVKIT verify out/probe.elf --vmm qemu-pvh \
    --cmdline "--nopci /hello" --json > verify.json

step "8. a failing expectation exits 1 (and says why)"
if $OSVKIT verify edited.img --expect '^never printed$' --timeout 20; then
    echo "expected a failure" >&2; exit 1
fi

step "done: files in $work"
