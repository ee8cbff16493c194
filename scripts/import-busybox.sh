#!/usr/bin/env bash
# Makes busybox:latest in the berth daemon that BERTH_HOST (or the default socket) names,
# through the engine's own import path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
berth=${BERTH:-berth}
"$here/mkimage.sh" | "$berth" import \
  -c 'CMD ["sh"]' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -m 'busybox from Debian busybox-static' \
  - busybox:latest
