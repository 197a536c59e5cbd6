#!/usr/bin/env bash
# install-monitoring.sh: installs Debian's prometheus and
# prometheus-alertmanager (with promtool and amtool), and haproxy (the local
# load balancer in front of several ingest instances), each only when missing.
# Their postinst would start services; a temporary policy-rc.d stops that.
# Idempotent; quick (no apt-get at all) when everything is present.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# command -> Debian package that provides it
declare -A PACKAGE_OF=(
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/promtool]=prometheus
  [/usr/bin/prometheus-alertmanager]=prometheus-alertmanager
  [/usr/bin/amtool]=prometheus-alertmanager
  [/usr/sbin/haproxy]=haproxy
)

main() {
  local path missing=()
  for path in "${!PACKAGE_OF[@]}"; do
    [[ -x "$path" ]] || missing+=("${PACKAGE_OF[$path]}")
  done
  if ((${#missing[@]} == 0)); then
    log "prometheus, alertmanager and haproxy present"
    return 0
  fi
  # sort -u: one package may provide several of the missing commands.
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt_install "${missing[@]}"
  for path in "${!PACKAGE_OF[@]}"; do
    [[ -x "$path" ]] || die "$path still missing after installing ${PACKAGE_OF[$path]}"
  done
}

main "$@"
