#!/usr/bin/env bash
# Writes the root filesystem of berth's test image to stdout as a tar: Debian's static
# busybox with every applet linked under /bin, and /etc/passwd and /etc/group with root and
# nobody. Deterministic (sorted, fixed times and owners), so the layer digest is stable.
# Import it with:  scripts/mkimage.sh | berth import -c 'CMD ["sh"]' -c 'ENV PATH=…' - busybox:latest
set -euo pipefail
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkimage: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,root,tmp,proc,sys,dev,home,var/tmp,usr/bin,usr/sbin,sbin}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .
