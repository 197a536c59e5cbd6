#!/usr/bin/env python3
"""Runs an embedded Deephaven server (PyPI deephaven-server) until SIGTERM.

Started by scripts/deephaven.sh with the venv's python; usable alone:

    .tools/venv/bin/python scripts/deephaven_server.py --port 10000 --state-dir /tmp/dh

Authentication is anonymous unless --psk (or env DEEPHAVEN_PSK) gives a
pre-shared key. --session-duration-ms (or env DEEPHAVEN_SESSION_DURATION_MS)
sets http.session.durationMs, the server's session lifetime (default 300000).

The package's default JVM arguments include -Xrs, which makes SIGTERM kill the
process without running Deephaven's shutdown hooks; they are used here without
it, so the JVM handles SIGTERM/SIGINT: it runs its shutdown hooks and exits the
whole process (status 143 for SIGTERM). Python only has to block until then.
"""

import argparse
import os
import sys
import threading

# This file's name equals the package's: drop its own directory from the module
# search path, or "import deephaven_server" would import this file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

ANONYMOUS_HANDLER = "io.deephaven.auth.AnonymousAuthenticationHandler"
PSK_HANDLER = "io.deephaven.authentication.psk.PskAuthenticationHandler"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10000)
    parser.add_argument("--heap", default="2g", help="JVM -Xmx, e.g. 2g")
    parser.add_argument(
        "--state-dir",
        required=True,
        help="parent of the server's data/, cache/ and config/ directories",
    )
    parser.add_argument("--psk", default=os.environ.get("DEEPHAVEN_PSK") or None)
    parser.add_argument(
        "--session-duration-ms",
        type=int,
        default=int(os.environ["DEEPHAVEN_SESSION_DURATION_MS"])
        if os.environ.get("DEEPHAVEN_SESSION_DURATION_MS")
        else None,
    )
    return parser.parse_args(argv)


def jvm_args_for(args):
    dirs = {}
    for name in ("data", "cache", "config"):
        dirs[name] = os.path.join(args.state_dir, name)
        os.makedirs(dirs[name], exist_ok=True)
    jvm_args = [
        f"-Xmx{args.heap}",
        f"-Ddeephaven.dataDir={dirs['data']}",
        f"-Ddeephaven.cacheDir={dirs['cache']}",
        f"-Ddeephaven.configDir={dirs['config']}",
    ]
    if args.psk:
        # Property read by PskAuthenticationHandler (checked in its 42.7 class file).
        jvm_args += [f"-DAuthHandlers={PSK_HANDLER}", f"-Dauthentication.psk={args.psk}"]
    else:
        jvm_args.append(f"-DAuthHandlers={ANONYMOUS_HANDLER}")
    if args.session_duration_ms is not None:
        jvm_args.append(f"-Dhttp.session.durationMs={args.session_duration_ms}")
    return jvm_args


def main(argv):
    args = parse_args(argv)
    # Imported late: --help works without the package, and a missing package is a clear error.
    from deephaven_server import Server
    from deephaven_server.start_jvm import DEFAULT_JVM_ARGS

    default_jvm_args = [a for a in DEFAULT_JVM_ARGS if a != "-Xrs"]
    auth = "psk" if args.psk else "anonymous"
    print(
        f"deephaven_server.py: starting on {args.host}:{args.port} (auth {auth}, heap {args.heap})",
        flush=True,
    )
    server = Server(
        host=args.host,
        port=args.port,
        jvm_args=jvm_args_for(args),
        default_jvm_args=default_jvm_args,
    )
    server.start()
    print(f"deephaven_server.py: serving on http://{args.host}:{args.port}/ide/", flush=True)
    # Block for good: the JVM's own signal handler ends the process.
    forever = threading.Event()
    while not forever.wait(3600):
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
