#!/usr/bin/env bash
# Builds a test control plane -- kube-apiserver and etcd -- from Go modules with the local Go
# toolchain, into a cache directory outside the repository, and reuses it on later runs.
#
# Only the Go module proxy is needed (no GitHub, no release tarballs). Nothing is written into the
# repository: the small wrapper modules live in the cache directory too.
#
# Usage: scripts/controlplane/build.sh        # prints the bin dir on the last line of stdout
# Env:   FIREWALL_AGENT_CACHE  cache root (default: $HOME/.cache/firewall-agent)
#        CONTROLPLANE_REBUILD=1  rebuild even if the binaries exist
set -euo pipefail

# k8s.io/kubernetes v1.36.3 needs go >= 1.26.0 and uses the etcd v3.6 client. (v1.37.2's go.mod is
# on the proxy but its module zip is refused with 403 "not available", so it cannot be built here.)
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16  # go.etcd.io/etcd/server/v3; needs go >= 1.26.0

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

CACHE_ROOT=${FIREWALL_AGENT_CACHE:-${HOME:?}/.cache/firewall-agent}
BASE_DIR="$CACHE_ROOT/controlplane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BIN_DIR="$BASE_DIR/bin"
WORK_DIR="$BASE_DIR/work"

# go mod download -json <module@version>: downloads it into the module cache and prints the path of
# its go.mod file; on failure shows go's error and exits.
download_gomod() {
  local json rc=0 gomod
  json=$(go mod download -json "$1") || rc=$?
  if ((rc != 0)); then
    log "go mod download $1 failed:"
    printf '%s\n' "$json" >&2
    exit 1
  fi
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  [[ -n $gomod && -f $gomod ]] || die "could not locate the go.mod of $1"
  echo "$gomod"
}

have_binaries() { [[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/etcd" ]]; }

if [[ ${CONTROLPLANE_REBUILD:-0} != 1 ]] && have_binaries; then
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not on PATH"
mkdir -p "$BIN_DIR" "$WORK_DIR"

# One build at a time per cache entry; a second caller waits and then reuses the result.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$BASE_DIR/.lock"
  if ! flock -n 9; then
    log "another build is running; waiting for $BASE_DIR/.lock"
    flock 9
  fi
  if [[ ${CONTROLPLANE_REBUILD:-0} != 1 ]] && have_binaries; then
    echo "$BIN_DIR"
    exit 0
  fi
fi

# Module mode, no workspace, static binaries; keep the caller's GOFLAGS but make sure -mod=mod wins
# (command-line flags override GOFLAGS) because the wrapper modules are resolved on the fly.
export GO111MODULE=on GOWORK=off CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
GO_VERSION=$(go env GOVERSION)
log "using $GO_VERSION, module cache $(go env GOMODCACHE)"

IFS=. read -r k8s_major k8s_minor k8s_patch <<<"${K8S_VERSION#v}"
STAGING_VERSION="v0.$k8s_minor.$k8s_patch"   # the staging modules' release, e.g. v0.36.3

TMP_OUT=$(mktemp -d "$BASE_DIR/.out.XXXXXX")   # same filesystem as BIN_DIR, so mv is atomic
trap 'rm -rf "$TMP_OUT"' EXIT

started=$SECONDS

# ---------------------------------------------------------------------------------------------
# kube-apiserver
# ---------------------------------------------------------------------------------------------
build_kube_apiserver() {
  local dir="$WORK_DIR/kube-apiserver" gomod staging
  rm -rf "$dir"
  mkdir -p "$dir"
  cd "$dir"

  log "fetching k8s.io/kubernetes@$K8S_VERSION (large download on first run)"
  gomod=$(download_gomod "k8s.io/kubernetes@$K8S_VERSION")

  # Every k8s.io/* module that kubernetes' own go.mod replaces with ./staging/src/...
  staging=$(sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' "$gomod" | sort -u)
  [[ -n $staging ]] || die "no staging replace directives found in $gomod"
  log "replacing $(wc -w <<<"$staging") staging modules with $STAGING_VERSION"

  {
    echo "module firewall-agent.local/controlplane/kube-apiserver"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    local m
    for m in $staging; do
      echo "	$m => $m $STAGING_VERSION"
    done
    echo ")"
  } >go.mod

  log "resolving kube-apiserver dependencies"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2

  # What hack/lib/version.sh would stamp into a release build.
  local build_date pkg ldflags="-s -w"
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION"
    ldflags+=" -X $pkg.gitMajor=$k8s_major"
    ldflags+=" -X $pkg.gitMinor=$k8s_minor"
    ldflags+=" -X $pkg.gitCommit="
    ldflags+=" -X $pkg.gitTreeState=archive"
    ldflags+=" -X $pkg.buildDate=$build_date"
  done

  log "building kube-apiserver $K8S_VERSION (several minutes on a small machine)"
  go build -trimpath -ldflags="$ldflags" -o "$TMP_OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
}

# ---------------------------------------------------------------------------------------------
# etcd -- go install refuses go.etcd.io/etcd/server/v3@version because its go.mod has replace
# directives, so build it from a wrapper module too.
# ---------------------------------------------------------------------------------------------
build_etcd() {
  local dir="$WORK_DIR/etcd" gomod
  rm -rf "$dir"
  mkdir -p "$dir"
  cd "$dir"

  gomod=$(download_gomod "go.etcd.io/etcd/server/v3@$ETCD_VERSION")

  {
    echo "module firewall-agent.local/controlplane/etcd"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    # The server's own go.mod points these at ../ siblings; use the matching releases instead.
    echo "replace ("
    local m
    for m in go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
      echo "	$m => $m $ETCD_VERSION"
    done
    echo ")"
  } >go.mod

  log "resolving etcd dependencies"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2

  log "building etcd $ETCD_VERSION"
  go build -trimpath -ldflags="-s -w" -o "$TMP_OUT/etcd" go.etcd.io/etcd/server/v3
}

(build_etcd)
log "etcd built after $((SECONDS - started))s"
(build_kube_apiserver)
log "kube-apiserver built after $((SECONDS - started))s"

"$TMP_OUT/etcd" --version >&2
"$TMP_OUT/kube-apiserver" --version >&2

mv -f "$TMP_OUT/etcd" "$BIN_DIR/etcd"
mv -f "$TMP_OUT/kube-apiserver" "$BIN_DIR/kube-apiserver"
log "done in $((SECONDS - started))s"
echo "$BIN_DIR"
