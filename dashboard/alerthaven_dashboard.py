"""alerthaven's dashboard: a deephaven.ui dashboard over the tables the publisher publishes.

Run by Deephaven's Application Mode (alerthaven.app, in this directory) when the server starts; it exports one
field, `alerthaven_dashboard`, which the IDE lists under Panels. Nothing here writes a table: every panel reads
the publisher's read-only tables, joined and filtered server-side.

The publisher creates its tables after the server is up, and creates them anew whenever it rebuilds them (an
emptied server, a replay). So the dashboard does not bind to tables when this script runs: it looks them up by
name in the server's query scope, and checks every few seconds whether the publisher has replaced them, then
redraws with the new ones. Until the tables exist it says what it is waiting for.

Env: ALERTHAVEN_TABLE_PREFIX, the publisher's `deephaven.table_prefix` (default none).
"""

import os
import threading

import __main__
import jpy
from deephaven import merge, ui
from deephaven.appmode import get_app_state
from deephaven.table import Table
from deephaven.updateby import cum_sum
import deephaven.plot.express as dx

PREFIX = os.environ.get("ALERTHAVEN_TABLE_PREFIX", "")
# How often the dashboard checks for tables created anew: the longest it shows replaced tables after a rebuild.
RESCAN_SECONDS = 5.0
# The span of the incident timeline and of the firing count over time.
WINDOW = "PT24h"

# The publisher's names (schemas/src/tables.rs, TableNames::with_prefix).
NAMES = {
    "by_severity": f"{PREFIX}alerts_firing_by_severity",
    "episodes": f"{PREFIX}alert_episodes",
    "mttr_24h": f"{PREFIX}alert_mttr_24h",
    "flapping": f"{PREFIX}alert_flapping",
    "clock": f"_{PREFIX}clock",
}

_System = jpy.get_type("java.lang.System")


def published_tables():
    """The publisher's tables by role, or None while any is missing from the query scope."""
    scope = vars(__main__)
    tables = {}
    for role, name in NAMES.items():
        value = scope.get(name)
        if not isinstance(value, Table):
            return None
        tables[role] = value
    return tables


def identity(tables):
    """What tells one set of published tables from the set the publisher creates next."""
    if tables is None:
        return None
    return tuple(_System.identityHashCode(table.j_table) for table in tables.values())


def recent_episodes(tables):
    """Episodes open now or resolved within WINDOW, each with an `Until`: its end, or the clock's now while open."""
    return (
        tables["episodes"]
        .natural_join(tables["clock"], on=[], joins=["Now"])
        .where(f"isNull(EndsAt) || EndsAt >= Now - '{WINDOW}'")
        .update_view(["Until = isNull(EndsAt) ? Now : EndsAt"])
    )


def firing_over_time(tables):
    """How many alerts fired at each moment within WINDOW: +1 at every episode's start, -1 at every end, summed
    in time order over the whole history (so alerts that started earlier count), then cut to WINDOW. The clock's
    now adds no change, so the line runs on to the present."""
    episodes = tables["episodes"]
    changes = merge(
        [
            episodes.view(["Time = StartsAt", "Change = 1L"]),
            episodes.where("!isNull(EndsAt)").view(["Time = EndsAt", "Change = -1L"]),
            tables["clock"].view(["Time = Now", "Change = 0L"]),
        ]
    )
    return (
        changes.sort("Time")
        .update_by(cum_sum("Firing = Change"))
        .natural_join(tables["clock"], on=[], joins=["Now"])
        .where(f"Time >= Now - '{WINDOW}'")
        .view(["Time", "Firing"])
    )


def panels(tables):
    # No chart is split by a column (`color=`, `by=`): plotly-express 0.21 draws a split that first appears after
    # the chart is open (a severity that starts firing) without its time axis and its axis titles.
    return ui.column(
        ui.row(
            ui.panel(dx.bar(tables["by_severity"], x="Severity", y="Firing"), title="Firing now by severity"),
            ui.panel(
                dx.line(firing_over_time(tables), x="Time", y="Firing", line_shape="hv"),
                title="Alerts firing, last 24 h",
            ),
            height=28,
        ),
        ui.row(
            ui.panel(
                dx.timeline(recent_episodes(tables), x_start="StartsAt", x_end="Until", y="AlertName"),
                title="Incidents, last 24 h",
            ),
            height=40,
        ),
        ui.row(
            ui.panel(tables["mttr_24h"], title="Time to resolve, last 24 h"),
            ui.panel(tables["flapping"], title="Flapping"),
            height=32,
        ),
    )


def waiting():
    missing = ", ".join(name for name in NAMES.values() if name not in vars(__main__))
    return ui.panel(
        ui.text(f"Waiting for the publisher to create its tables (missing: {missing})."),
        title="alerthaven",
    )


@ui.component
def alerthaven_layout():
    """The dashboard's content, one per open dashboard: the panels over the tables published now, or what it waits
    for; a background thread watches for tables created anew and has the component redraw with them."""
    tables, set_tables = ui.use_state(published_tables)
    queue = ui.use_render_queue()

    def watch_for_new_tables():
        stop = threading.Event()
        seen = identity(tables)

        def rescan():
            while not stop.wait(RESCAN_SECONDS):
                latest = published_tables()
                if identity(latest) != seen:
                    queue(lambda: set_tables(latest))
                    return

        threading.Thread(target=rescan, name="alerthaven-dashboard-rescan", daemon=True).start()
        return stop.set

    ui.use_effect(watch_for_new_tables, [identity(tables)])
    built = ui.use_memo(lambda: panels(tables) if tables else None, [identity(tables)])
    return built if built is not None else waiting()


get_app_state()["alerthaven_dashboard"] = ui.dashboard(alerthaven_layout())
