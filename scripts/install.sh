#!/usr/bin/env bash
# install.sh: installs everything the local stack needs (broker, Deephaven,
# Prometheus + Alertmanager) and what checks the Kubernetes manifests
# (scripts/test.sh also runs install-browser.sh).
# Idempotent; a few seconds when all is present.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"

bash "$here/install-broker.sh"
bash "$here/install-deephaven.sh"
bash "$here/install-monitoring.sh"
bash "$here/install-kubernetes-tools.sh"
