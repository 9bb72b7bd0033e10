#!/usr/bin/env bash
# The page-cache baseline under the same RAM limit strata gets from --ram-budget:
# `strata bench --io mmap` inside a memory cgroup (v1 or v2) capped at LIMIT, with the
# page cache dropped first. Needs root. Prints bench's table (or JSON with --json).
#   bench/mmap_cgroup.sh LIMIT MODEL [bench flags...]
#   e.g. bench/mmap_cgroup.sh 4G models/v2lite.gguf -p 32 -n 32 -r 2
set -euo pipefail
limit=${1:?usage: mmap_cgroup.sh LIMIT MODEL [bench flags]}
model=${2:?usage: mmap_cgroup.sh LIMIT MODEL [bench flags]}
shift 2
strata=${STRATA:-$(dirname "$0")/../build/release/tools/strata}
bytes=$(numfmt --from=iec "${limit%B}")
name=strata-mmap-$$
if [ -d /sys/fs/cgroup/memory ]; then            # cgroup v1
  cg=/sys/fs/cgroup/memory/$name
  mkdir "$cg"
  echo "$bytes" > "$cg/memory.limit_in_bytes"
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # cgroup v2
  cg=/sys/fs/cgroup/$name
  mkdir "$cg"
  echo "$bytes" > "$cg/memory.max"
else
  echo "mmap_cgroup.sh: no memory cgroup controller mounted" >&2
  exit 1
fi
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
sync
echo 3 > /proc/sys/vm/drop_caches
dev=$(basename "$(df --output=source "$model" | tail -1)")
echo "mmap baseline: memory limit $limit ($bytes bytes), readahead $(cat /sys/block/"$dev"/queue/read_ahead_kb 2>/dev/null || echo '?') KiB" >&2
# The subshell joins the cgroup, then runs bench; bench's own probes run inside too.
( echo $BASHPID > "$cg/cgroup.procs"; exec "$strata" bench -m "$model" --io mmap "$@" )
