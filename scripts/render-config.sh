#!/usr/bin/env bash
# render-config.sh TEMPLATE DESTINATION: fills in the ${NAME} placeholders of
# one of the repo's config templates (prometheus/*.yml, alertmanager/*.yml)
# from the environment and writes the result to DESTINATION (atomically).
#
# The one renderer of those templates: the local stack calls it through
# lib.sh's render_config, the compose stack runs it in its `config` init
# service (compose/docker-compose.yml), and e2e/tests/compose.rs runs it
# with that service's environment. Plain bash, no envsubst: it runs in the
# project's runtime image as it is.
#
# Only the placeholders listed below are replaced; any other '$' (such as the
# {{ $labels.instance }} of alerting rules) is left alone. A missing variable
# is an error, never an empty string.
#
# Inputs (environment):
#   INGEST_URL                  Alertmanager's webhook target
#   PROMETHEUS_TARGET           this Prometheus, host:port
#   ALERTMANAGER_TARGET         Alertmanager, host:port
#   DEAD_TARGET                 a host:port where nothing listens
#   INGEST_METRICS_TARGETS      where to scrape ingest: a comma-separated
#   PUBLISHER_METRICS_TARGETS   list of host:port (static targets), or
#                               dns+NAME:PORT: every address NAME resolves to
#                               (A records), each scraped on PORT, e.g. the
#                               replicas of a compose service.
#
# Placeholders in the templates:
#   ${INGEST_URL} ${PROMETHEUS_TARGET} ${ALERTMANAGER_TARGET} ${DEAD_TARGET}
#       the values above, as they are;
#   ${INGEST_STATIC_CONFIGS} ${INGEST_DNS_SD_CONFIGS}
#   ${PUBLISHER_STATIC_CONFIGS} ${PUBLISHER_DNS_SD_CONFIGS}
#       a scrape job's static_configs and dns_sd_configs, as YAML flow lists,
#       from *_METRICS_TARGETS: the kind not in use is [].
set -euo pipefail

PLAIN_VARS=(INGEST_URL PROMETHEUS_TARGET ALERTMANAGER_TARGET DEAD_TARGET)
TARGET_VARS=(INGEST PUBLISHER)

fail() {
  echo "render-config.sh: $*" >&2
  exit 1
}

yaml_quote() { # value -> a double-quoted YAML scalar
  local value=${1//\\/\\\\}
  printf '"%s"' "${value//\"/\\\"}"
}

# scrape_configs SPEC -> sets static_configs and dns_sd_configs (YAML flow).
scrape_configs() {
  local spec=$1 target targets=() quoted=()
  if [[ "$spec" == dns+* ]]; then
    local name_port=${spec#dns+}
    [[ "$name_port" =~ ^([A-Za-z0-9._-]+):([0-9]+)$ ]] ||
      fail "expected dns+NAME:PORT, got '$spec'"
    static_configs='[]'
    dns_sd_configs="[{names: [$(yaml_quote "${BASH_REMATCH[1]}")], type: A, port: ${BASH_REMATCH[2]}, refresh_interval: 10s}]"
    return 0
  fi
  IFS=, read -r -a targets <<<"$spec"
  for target in "${targets[@]}"; do
    target=${target//[[:space:]]/}
    [[ "$target" =~ ^[^:[:space:]]+:[0-9]+$ ]] || fail "expected host:port, got '$target' (in '$spec')"
    quoted+=("$(yaml_quote "$target")")
  done
  ((${#quoted[@]} > 0)) || fail "no targets in '$spec'"
  local joined
  joined=$(printf '%s, ' "${quoted[@]}")
  static_configs="[{targets: [${joined%, }]}]"
  dns_sd_configs='[]'
}

main() {
  (($# == 2)) || fail "usage: render-config.sh TEMPLATE DESTINATION"
  local template=$1 destination=$2 text name spec static_configs dns_sd_configs
  [[ -f "$template" ]] || fail "no template $template"
  text=$(<"$template")
  for name in "${PLAIN_VARS[@]}"; do
    [[ "$text" == *"\${$name}"* ]] || continue
    [[ -n "${!name:-}" ]] || fail "$name is not set (needed by $template)"
    text=${text//"\${$name}"/"${!name}"}
  done
  for name in "${TARGET_VARS[@]}"; do
    [[ "$text" == *"\${${name}_STATIC_CONFIGS}"* || "$text" == *"\${${name}_DNS_SD_CONFIGS}"* ]] || continue
    spec="${name}_METRICS_TARGETS"
    [[ -n "${!spec:-}" ]] || fail "$spec is not set (needed by $template)"
    scrape_configs "${!spec}"
    text=${text//"\${${name}_STATIC_CONFIGS}"/"$static_configs"}
    text=${text//"\${${name}_DNS_SD_CONFIGS}"/"$dns_sd_configs"}
  done
  mkdir -p "$(dirname "$destination")"
  printf '%s\n' "$text" >"$destination.tmp"
  mv -f "$destination.tmp" "$destination"
}

main "$@"
