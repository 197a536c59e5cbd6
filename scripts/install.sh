#!/usr/bin/env bash
# install.sh: installs everything the local stack needs (broker, Deephaven,
# Prometheus + Alertmanager), what checks the Kubernetes manifests, and the
# browser the dashboard test drives.
# Idempotent; a few seconds when all is present.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"

bash "$here/install-broker.sh"
bash "$here/install-deephaven.sh"
bash "$here/install-monitoring.sh"
bash "$here/install-kubernetes-tools.sh"
bash "$here/install-browser.sh"
