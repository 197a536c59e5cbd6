#!/usr/bin/env bash
# install-kubernetes-tools.sh: what checks the Kubernetes manifests offline
# (e2e/tests/kubernetes.rs): kubectl (its built-in kustomize renders
# deploy/kubernetes; Debian's package only when missing) and the pinned PyPI
# package kubernetes-validate (the objects against the Kubernetes schemas) in
# the shared venv $TOOLS_DIR/venv. Idempotent; quick when installed.
#
# Env: TOOLS_DIR (default $REPO/.tools), PYTHON (interpreter for a new venv).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBERNETES_VALIDATE_PIN="kubernetes-validate==1.37.0"

main() {
  if command -v kubectl >/dev/null; then
    log "kubectl present"
  else
    apt_install kubectl
  fi
  ensure_venv
  pip_install_pinned "$KUBERNETES_VALIDATE_PIN"
}

main "$@"
