#!/usr/bin/env bash
# make demo: boots the test VM (building its image the first time), starts the daemon, exports
# one shared volume to two nodes over iSCSI and walks through a database failover.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/vm/run tests/e2e/60-failover.sh
