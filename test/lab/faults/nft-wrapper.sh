#!/bin/sh
# A stand-in for nft, first in the agent's PATH (test/lab/faults.test.ts). The file `mode` next to
# it says what it does with each call; every call is logged to `calls.log` next to it.
#   pass      run the real nft
#   fail      print an nft-like error and exit 1 (nothing reaches the kernel)
#   hang      block until the mode changes, then do what the new mode says
#   refuse    transactions (`-f`, not `-c`) get a rule appended that jumps to a chain that does not
#             exist: nft -c passes, the kernel refuses the commit (ENOENT) and nft reports it
#   kill-early, kill-mid, kill-after
#             on the next transaction (`-f`, not `-c`): SIGKILL the caller (the agent) right away
#             (while it is still writing the transaction to our stdin), 0.15 s into nft's run, or
#             once nft has committed; the mode goes back to pass first
# (`missing` is done by the test: it renames this file away, so spawning `nft` fails with ENOENT.)
dir=$(dirname "$0")
REAL=${FWA_REAL_NFT:-/usr/sbin/nft}
mode() { cat "$dir/mode" 2>/dev/null || echo pass; }
m=$(mode)
echo "$(date +%s.%N) $$ $m $*" >>"$dir/calls.log"
while [ "$m" = hang ]; do
  sleep 0.05
  m=$(mode)
done
tx=false
check=false
for a in "$@"; do
  case "$a" in
    -f) tx=true ;;
    -c) check=true ;;
  esac
done
case "$m" in
  fail)
    echo "Error: injected failure (nft wrapper, mode fail)" >&2
    exit 1
    ;;
  refuse)
    if $tx && ! $check; then
      { cat; printf '\nadd rule inet firewall forward jump fault-injected-no-such-chain\n'; } | "$REAL" "$@"
      exit $?
    fi
    ;;
  kill-early | kill-mid | kill-after)
    if $tx && ! $check; then
      echo pass >"$dir/mode"
      parent=$PPID
      echo "$(date +%s.%N) $$ $m: killing $parent" >>"$dir/calls.log"
      case "$m" in
        kill-early)
          kill -9 "$parent"
          exec "$REAL" "$@"
          ;;
        kill-mid)
          (sleep 0.15; kill -9 "$parent") &
          exec "$REAL" "$@"
          ;;
        kill-after)
          "$REAL" "$@"
          rc=$?
          kill -9 "$parent"
          exit $rc
          ;;
      esac
    fi
    ;;
esac
exec "$REAL" "$@"
