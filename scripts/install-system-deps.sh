#!/usr/bin/env bash
# System packages the integration tests drive for real (Debian 12):
#   docker.io        the Docker engine that builds and runs the app image
#   docker-registry  an OCI registry (distribution 2.8) to push to and decommission from
#   prometheus       promtool, which checks and unit-tests the alert rules
#   prometheus-alertmanager  amtool, which checks the Alertmanager configuration Monitoring generates
#   debootstrap      builds a local Python base image (no public registry can be pulled here)
#   iproute2         removes the docker0 bridge after the engine stops
#   nodejs, npm      run Mermaid's parser on the pull-request comment's diagrams (tests/mermaid)
# Installs only what is missing; needs root (as on CI). Without root it lists what is missing.
set -euo pipefail

packages=(docker.io docker-registry prometheus prometheus-alertmanager debootstrap iproute2 git make)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Node.js: any install will do (Debian's nodejs+npm, or a nodejs package that bundles npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "install them as root: apt-get install -y ${missing[*]}" >&2
  echo "(integration tests that need them are skipped outside CI, and fail in CI)" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The Debian packages start nothing we rely on: tests start their own engine and registry.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages installed"
