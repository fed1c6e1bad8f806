#!/usr/bin/env bash
# Mount the memfs example, use it like any directory, unmount.
set -euo pipefail
mnt=$(mktemp -d /tmp/fuseshim-demo.XXXXXX)
python3 -m fuseshim.examples.memfs "$mnt" & pid=$!
cleanup() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
            mountpoint -q "$mnt" && umount -l "$mnt"; rmdir "$mnt"; }
trap cleanup EXIT
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
python3 -c "import fuseshim; print('probe_sync_init():', fuseshim.probe_sync_init())"
echo "hello from fuseshim" > "$mnt/greeting.txt"
mkdir "$mnt/dir" && ln -s ../greeting.txt "$mnt/dir/link"
setfattr -n user.demo -v yes "$mnt/greeting.txt"
cat "$mnt/dir/link"; ls -la "$mnt"; getfattr -d "$mnt/greeting.txt"; df -h "$mnt"
grep " $mnt " /proc/self/mounts
