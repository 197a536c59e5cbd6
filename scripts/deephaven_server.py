#!/usr/bin/env python3
"""Runs an embedded Deephaven server (PyPI deephaven-server) until SIGTERM.

Started by scripts/deephaven.sh with the venv's python; usable alone:

    .tools/venv/bin/python scripts/deephaven_server.py --port 10000 --state-dir /tmp/dh

Authentication is anonymous unless --psk (or env DEEPHAVEN_PSK) gives a
pre-shared key, or env DEEPHAVEN_BASIC_USER and DEEPHAVEN_BASIC_PASSWORD give
the one user name and password HTTP basic authentication accepts. Basic auth
uses the handler in scripts/deephaven-auth/, compiled here with the JDK's javac
(when its jar is missing or older than the source) and read by the JVM from
the environment: the password is never a command-line argument, JVM option or
system property. --session-duration-ms (or env DEEPHAVEN_SESSION_DURATION_MS)
sets http.session.durationMs, the server's session lifetime (default 300000).

The package's default JVM arguments include -Xrs, which makes SIGTERM kill the
process without running Deephaven's shutdown hooks; they are used here without
it, so the JVM handles SIGTERM/SIGINT: it runs its shutdown hooks and exits the
whole process (status 143 for SIGTERM). Python only has to block until then.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading

# This file's name equals the package's: drop its own directory from the module
# search path, or "import deephaven_server" would import this file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

ANONYMOUS_HANDLER = "io.deephaven.auth.AnonymousAuthenticationHandler"
PSK_HANDLER = "io.deephaven.authentication.psk.PskAuthenticationHandler"
BASIC_HANDLER = "alerthaven.deephaven.EnvBasicAuthHandler"
BASIC_HANDLER_SOURCE = os.path.join(
    _HERE, "deephaven-auth", "alerthaven", "deephaven", "EnvBasicAuthHandler.java"
)
# What the server tells the web IDE (ConfigService): deephaven-server 42.7's own list (dh-defaults.prop), and
# timeZone, which the IDE takes as its default display zone instead of its built-in America/New_York.
CLIENT_CONFIGURATION = (
    "timeZone,java.version,deephaven.version,barrage.version,groovy.version,python.version,"
    "http.session.durationMs,file.separator,web.storage.layout.directory,web.storage.notebook.directory,"
    "web.webgl,web.webgl.editable,web.flattenViewports"
)
# alerthaven's dashboard, an Application Mode directory (dashboard/alerthaven.app).
DASHBOARD_DIR = os.path.join(os.path.dirname(_HERE), "dashboard")
# Read by BASIC_HANDLER itself, in the JVM this process hosts.
BASIC_USER_ENV = "DEEPHAVEN_BASIC_USER"
BASIC_PASSWORD_ENV = "DEEPHAVEN_BASIC_PASSWORD"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10000)
    parser.add_argument("--heap", default="2g", help="JVM -Xmx, e.g. 2g")
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="the server's default time zone, and the one the IDE shows times in",
    )
    parser.add_argument(
        "--state-dir",
        required=True,
        help="parent of the server's data/, cache/ and config/ directories",
    )
    parser.add_argument("--psk", default=os.environ.get("DEEPHAVEN_PSK") or None)
    parser.add_argument(
        "--jvm-options",
        default=os.environ.get("DEEPHAVEN_JVM_OPTIONS", ""),
        help="more JVM options, separated by spaces (e.g. a garbage collector); after every other",
    )
    parser.add_argument(
        "--script",
        default=os.environ.get("DEEPHAVEN_SCRIPT") or None,
        help="a Python file run in the server's session once it serves (its globals are the query scope)",
    )
    parser.add_argument(
        "--app-dir",
        default=os.environ.get("DEEPHAVEN_APP_DIR", DASHBOARD_DIR),
        help="an Application Mode directory the server runs at start ('' for none; default: the dashboard)",
    )
    parser.add_argument(
        "--session-duration-ms",
        type=int,
        default=int(os.environ["DEEPHAVEN_SESSION_DURATION_MS"])
        if os.environ.get("DEEPHAVEN_SESSION_DURATION_MS")
        else None,
    )
    args = parser.parse_args(argv)
    args.basic = bool(os.environ.get(BASIC_USER_ENV))
    if args.basic and not os.environ.get(BASIC_PASSWORD_ENV):
        parser.error(f"{BASIC_USER_ENV} is set but {BASIC_PASSWORD_ENV} is not")
    if args.basic and args.psk:
        parser.error(f"choose pre-shared key (DEEPHAVEN_PSK) or basic ({BASIC_USER_ENV}) authentication")
    return args


def basic_handler_jar(deephaven_jars):
    """The jar holding BASIC_HANDLER, compiled against `deephaven_jars` when missing or older
    than its source.

    It lives in the venv, next to the Deephaven jars it is compiled against. Each build happens
    in a directory of its own and is renamed into place, so launches racing each other never
    load a half-written jar.
    """
    target = os.path.join(sys.prefix, "alerthaven", "deephaven-basic-auth.jar")
    if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(BASIC_HANDLER_SOURCE):
        return target
    jdk_bin = os.path.join(os.environ.get("JAVA_HOME") or "/usr", "bin")
    javac, jar = os.path.join(jdk_bin, "javac"), os.path.join(jdk_bin, "jar")
    if not os.access(javac, os.X_OK):
        sys.exit(
            f"deephaven_server.py: basic auth needs {javac} (a JDK): run scripts/install-deephaven.sh"
        )
    print(f"deephaven_server.py: compiling {BASIC_HANDLER_SOURCE}", flush=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as build:
        classes, built = os.path.join(build, "classes"), os.path.join(build, "handler.jar")
        # "-Xlint:-path": some Deephaven jars' manifests name jars the wheel does not ship.
        classpath = os.path.join(deephaven_jars, "*")
        subprocess.run(
            [javac, "--release", "17", "-Xlint:all,-path", "-cp", classpath, "-d", classes]
            + [BASIC_HANDLER_SOURCE],
            check=True,
        )
        subprocess.run([jar, "--create", "--file", built, "-C", classes, "."], check=True)
        os.replace(built, target)
    return target


def jvm_args_for(args):
    """JVM options for `args`. Credentials stay out of them, except the pre-shared key: its
    handler reads a system property (visible to `jcmd`; not to `ps`, the JVM being embedded)."""
    dirs = {}
    for name in ("data", "cache", "config"):
        dirs[name] = os.path.join(args.state_dir, name)
        os.makedirs(dirs[name], exist_ok=True)
    jvm_args = [
        f"-Xmx{args.heap}",
        f"-Duser.timezone={args.timezone}",
        # The IDE's default zone for tables and charts; each user can still pick another in its settings.
        f"-DtimeZone={args.timezone}",
        f"-Dclient.configuration.list={CLIENT_CONFIGURATION}",
        f"-Ddeephaven.dataDir={dirs['data']}",
        f"-Ddeephaven.cacheDir={dirs['cache']}",
        f"-Ddeephaven.configDir={dirs['config']}",
    ]
    if args.psk:
        # Property read by PskAuthenticationHandler (checked in its 42.7 class file).
        jvm_args += [f"-DAuthHandlers={PSK_HANDLER}", f"-Dauthentication.psk={args.psk}"]
    elif args.basic:
        jvm_args.append(f"-DAuthHandlers={BASIC_HANDLER}")
    else:
        jvm_args.append(f"-DAuthHandlers={ANONYMOUS_HANDLER}")
    if args.app_dir:
        jvm_args.append(f"-Ddeephaven.application.dir={os.path.abspath(args.app_dir)}")
    if args.session_duration_ms is not None:
        jvm_args.append(f"-Dhttp.session.durationMs={args.session_duration_ms}")
    # Last, so that they win over the package's defaults (its G1 settings among them).
    jvm_args += args.jvm_options.split()
    return jvm_args


def main(argv):
    args = parse_args(argv)
    # Imported late: --help works without the package, and a missing package is a clear error.
    import deephaven_server
    from deephaven_server import Server
    from deephaven_server.start_jvm import DEFAULT_JVM_ARGS

    default_jvm_args = [a for a in DEFAULT_JVM_ARGS if a != "-Xrs"]
    extra_classpath = []
    if args.basic:
        jars = os.path.join(os.path.dirname(deephaven_server.__file__), "jars")
        extra_classpath.append(basic_handler_jar(jars))
    auth = "psk" if args.psk else "basic" if args.basic else "anonymous"
    print(
        f"deephaven_server.py: starting on {args.host}:{args.port} (auth {auth}, heap {args.heap})",
        flush=True,
    )
    server = Server(
        host=args.host,
        port=args.port,
        jvm_args=jvm_args_for(args),
        extra_classpath=extra_classpath,
        default_jvm_args=default_jvm_args,
    )
    server.start()
    print(f"deephaven_server.py: serving on http://{args.host}:{args.port}/ide/", flush=True)
    if args.script:
        with open(args.script, encoding="utf-8") as source:
            code = compile(source.read(), args.script, "exec")
        exec(code, sys.modules["__main__"].__dict__)  # noqa: S102 - the operator's own file, by design
    # Block for good: the JVM's own signal handler ends the process.
    forever = threading.Event()
    while not forever.wait(3600):
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
