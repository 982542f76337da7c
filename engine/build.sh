#!/usr/bin/env bash
# make engine: the real Pulumi CLI, its Python language host, the kubernetes provider and a local
# Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok),
# built from Go modules into a cache outside the repository, once per version.
#
#   engine/build.sh            build what is missing, write out/engine/env.sh, print the times
#   source out/engine/env.sh   PATH, PULUMI_HOME and the engine's variables for this shell
#
# A tool already on PATH at a compatible version is used as it is (a user with the Pulumi CLI
# installed builds no CLI). The cache is $SERVICE_LIFECYCLE_ENGINE_CACHE, else
# $XDG_CACHE_HOME/service-lifecycle/engine, else ~/.cache/service-lifecycle/engine; each tool lives in
# <tool>-<version>-<hash of its scratch module>/bin. Exit 2 when a tool cannot be built, naming the
# module and version and what to do.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=engine/versions.env
source "$repo/engine/versions.env"
cache_root="${SERVICE_LIFECYCLE_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/service-lifecycle/engine}"
out="$repo/out/engine"
mkdir -p "$cache_root" "$out"
log_dir="$out/logs"
mkdir -p "$log_dir"

if ! command -v go >/dev/null 2>&1; then
  echo "engine: no 'go' on PATH: the engine's tools build from Go modules (Go >= 1.26 and the Go module proxy)" >&2
  exit 2
fi
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# The module proxy only: with the default ",direct" a version the proxy refuses falls back to git
# over the network, which hangs on a machine without it.
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

path_dirs=()
report=()

# version_at_least HAVE WANT: dotted versions, numeric per part.
version_at_least() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# cache_dir TOOL VERSION: keyed by version and by the scratch module's exact content (go.mod, go.sum,
# main.go): a comment in versions.env rebuilds nothing.
cache_dir() {
  local tool="$1" version="$2" digest
  digest="$(cat "$repo/engine/go/$tool"/* | sha256sum | cut -c1-12)"
  echo "$cache_root/$tool-$version-$digest"
}

# build TOOL VERSION MODULE_DESCRIPTION BINARIES... : runs build_<tool> into a temp dir, then moves
# the finished bin/ into the cache in one rename (a killed build leaves nothing half-made).
build() {
  local tool="$1" version="$2" module="$3"
  shift 3
  local dir
  dir="$(cache_dir "$tool" "$version")"
  local missing=0
  for binary in "$@"; do
    [ -x "$dir/bin/$binary" ] || missing=1
  done
  if [ "$missing" -eq 0 ]; then
    report+=("$(printf '%-22s %-10s cached  %s' "$tool" "$version" "$dir/bin")")
    path_dirs+=("$dir/bin")
    return 0
  fi
  local work start
  work="$(mktemp -d "$cache_root/.build-$tool-XXXXXX")"
  start=$(date +%s)
  echo "engine: building $tool $version from $module (log: $log_dir/$tool.log)" >&2
  cp -r "$repo/engine/go/$tool/." "$work/src"  2>/dev/null || { mkdir -p "$work/src"; cp -r "$repo/engine/go/$tool/." "$work/src/"; }
  mkdir -p "$work/bin"
  # In the background and waited for: a subshell in an `if` condition would run with errexit off.
  (cd "$work/src" && "build_$tool" "$work/bin") >"$log_dir/$tool.log" 2>&1 &
  if ! wait $!; then
    tail -n 20 "$log_dir/$tool.log" >&2
    echo "engine: could not build $tool: module $module at $version (engine/go/$tool)." >&2
    echo "engine: check that the Go module proxy serves it (GOPROXY=$(go env GOPROXY)), or put a" >&2
    echo "engine: compatible $* on PATH and run make engine again." >&2
    rm -rf "$work"
    exit 2
  fi
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  mv "$work/bin" "$dir.tmp-$$" && mkdir -p "$dir" && mv "$dir.tmp-$$" "$dir/bin"
  rm -rf "$work"
  report+=("$(printf '%-22s %-10s built   %4ss  %s' "$tool" "$version" "$(($(date +%s) - start))" "$dir/bin")")
  path_dirs+=("$dir/bin")
}

go_build() {
  # go_build OUT PACKAGE [LDFLAGS]
  go build -trimpath -ldflags "-s -w ${3:-}" -o "$1" "$2"
}

build_pulumi() {
  go_build "$1/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
}

build_language-python() {
  go_build "$1/pulumi-language-python" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$LANGUAGE_PYTHON_VERSION"
  # The executor the host runs sits beside it, executable ("missing executor" otherwise): the one
  # of the CLI's release, which speaks to the Python SDK's current runtime.
  go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" >"$1/.sdk.json"
  local sdk
  sdk="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$1/.sdk.json")"
  rm "$1/.sdk.json"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$1/pulumi-language-python-exec"
}

build_kubernetes() {
  # The upstream main embeds schema-embed.json and terraform-mapping-embed.json, generated (and
  # gitignored) from the committed schema.json and terraform-mapping.json: made here the same way.
  local provider
  # `go mod download` (not `go list -m`, which answers an empty Dir for a module not downloaded yet:
  # a cold module cache failed here) fetches the go.mod's version and says where it is.
  go mod download -json github.com/pulumi/pulumi-kubernetes/provider/v4 >"$1/.provider.json"
  provider="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$1/.provider.json")"
  rm "$1/.provider.json"
  python3 - "$provider/cmd/pulumi-resource-kubernetes" "$KUBERNETES_PROVIDER_VERSION" <<'EOF'
import json, sys
source, version = sys.argv[1], sys.argv[2]
schema = json.load(open(f"{source}/schema.json"))
schema["version"] = version
open("schema-embed.json", "w").write(json.dumps(schema, separators=(",", ":")))
mapping = json.load(open(f"{source}/terraform-mapping.json"))
open("terraform-mapping-embed.json", "w").write(json.dumps(mapping, separators=(",", ":")))
EOF
  go_build "$1/pulumi-resource-kubernetes" . \
    "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION"
}

build_kube() {
  local v="v$KUBERNETES_VERSION" flags
  flags="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
  flags="$flags -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  flags="$flags -X k8s.io/component-base/version.gitTreeState=clean"
  flags="$flags -X k8s.io/client-go/pkg/version.gitVersion=$v"
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    go_build "$1/$component" "k8s.io/kubernetes/cmd/$component" "$flags"
  done
}

build_etcd() {
  # The version is the scratch module's unless overridden (versions.env): go get moves it.
  timeout 600 go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go_build "$1/etcd" .
}

build_kwok() {
  timeout 600 go get "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  go_build "$1/kwok" sigs.k8s.io/kwok/cmd/kwok
}

crds() {
  # The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule, ...) from its module.
  local dir="$cache_root/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"
  if [ ! -f "$dir/.complete" ]; then
    local info
    info="$(cd "$repo/engine/go/kwok" && go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION")" || {
      echo "engine: could not fetch github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION (its CRDs)" >&2
      exit 2
    }
    local src
    src="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    mkdir -p "$dir"
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
      "$src/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
      "$src/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" "$dir/"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

started=$(date +%s)
# SERVICE_LIFECYCLE_ENGINE_ONLY=<tool>: build that one tool (and write no env.sh).
only="${SERVICE_LIFECYCLE_ENGINE_ONLY:-}"
if [ -n "$only" ]; then
  case "$only" in
    pulumi) build pulumi "$PULUMI_VERSION" "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi" pulumi ;;
    kwok) build kwok "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" kwok ;;
    etcd) build etcd "$ETCD_VERSION" "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" etcd ;;
    *) echo "engine: SERVICE_LIFECYCLE_ENGINE_ONLY=$only: expected pulumi, kwok or etcd" >&2; exit 2 ;;
  esac
  for line in "${report[@]}"; do echo "engine: $line"; done
  exit 0
fi

# The CLI: used from PATH when one is there at >= 3.180 (the sunset's preview_destroy needs it).
if command -v pulumi >/dev/null 2>&1 && [ -z "${SERVICE_LIFECYCLE_BUILD_ALL:-}" ] \
  && version_at_least "$(pulumi version 2>/dev/null | sed 's/^v//')" 3.180.0; then
  report+=("$(printf '%-22s %-10s on PATH %s' pulumi "$(pulumi version)" "$(command -v pulumi)")")
else
  build pulumi "$PULUMI_VERSION" "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi" pulumi
fi
if command -v pulumi-language-python >/dev/null 2>&1 && [ -z "${SERVICE_LIFECYCLE_BUILD_ALL:-}" ]; then
  report+=("$(printf '%-22s %-10s on PATH %s' language-python - "$(command -v pulumi-language-python)")")
else
  build language-python "$LANGUAGE_PYTHON_VERSION" "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python" \
    pulumi-language-python pulumi-language-python-exec
fi
if command -v pulumi-resource-kubernetes >/dev/null 2>&1 && [ -z "${SERVICE_LIFECYCLE_BUILD_ALL:-}" ]; then
  report+=("$(printf '%-22s %-10s on PATH %s' kubernetes - "$(command -v pulumi-resource-kubernetes)")")
else
  build kubernetes "$KUBERNETES_PROVIDER_VERSION" "github.com/pulumi/pulumi-kubernetes/provider/v4@$KUBERNETES_PROVIDER_MODULE" \
    pulumi-resource-kubernetes
fi
build etcd "$ETCD_VERSION" "go.etcd.io/etcd/server/v3" etcd
build kube "$KUBERNETES_VERSION" "k8s.io/kubernetes" kube-apiserver kube-controller-manager kube-scheduler
build kwok "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok" kwok
crd_dir="$(crds)"

# The stand-in providers for what cannot be built here (pulumi-cloudflare, pulumi-docker: their
# provider modules are not served): scripts of this repository, run by the project's venv.
path_dirs+=("$repo/engine/standin/bin")

joined="$(IFS=:; echo "${path_dirs[*]}")"
cat >"$out/env.sh" <<EOF
# Written by engine/build.sh: the real engine's tools for this shell. source out/engine/env.sh
export PATH="$joined:\$PATH"
export PULUMI_HOME="$out/home"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export SERVICE_LIFECYCLE_ENGINE_CRDS="$crd_dir"
EOF
python3 - "$out/env.json" "$out/home" "$crd_dir" "${path_dirs[@]}" <<'PY'
import json, sys
target, home, crds, *path = sys.argv[1:]
json.dump({
    "PATH_PREPEND": path,
    "PULUMI_HOME": home,
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
    "SERVICE_LIFECYCLE_ENGINE_CRDS": crds,
}, open(target, "w"), indent=2)
PY
mkdir -p "$out/home"
for line in "${report[@]}"; do echo "engine: $line"; done
echo "engine: ready in $(($(date +%s) - started)) s; source out/engine/env.sh"
