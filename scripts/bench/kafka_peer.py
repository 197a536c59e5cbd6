"""The benchmark's peer: Deephaven's own Kafka consumer reading the alerts topic, run inside the server.

Executed by scripts/deephaven_server.py --script in the server's Python session (its globals are the query scope),
started by scripts/bench.sh with BENCH_PEER_BROKERS and BENCH_PEER_TOPIC. It consumes the topic from the beginning
into an append-only table with the columns of `alert_events` that a JSON mapping can take (every column but the
`Labels` and `Annotations` objects; times kept as text), and adds the view a user would: the last row per
fingerprint. Both are published as `peer_alert_log` and `peer_alerts`. It prints the wall-clock time consuming
started, for bench.sh to time it.
"""

import os
import time

from deephaven import dtypes
from deephaven.stream.kafka import consumer

COLUMNS = {
    "EventId": "/event_id",
    "Fingerprint": "/fingerprint",
    "Status": "/status",
    "AlertName": "/labels/alertname",
    "Severity": "/labels/severity",
    "Instance": "/labels/instance",
    "Job": "/labels/job",
    "Summary": "/annotations/summary",
    "Description": "/annotations/description",
    "StartsAt": "/starts_at",
    "EndsAt": "/ends_at",
    "GeneratorUrl": "/generator_url",
    "Receiver": "/notification/receiver",
    "GroupKey": "/notification/group_key",
    "ExternalUrl": "/notification/external_url",
    "NotificationReason": "/notification/notification_reason",
    "ReceivedAt": "/received_at",
}

print(f"kafka-peer-started {time.time():.3f}", flush=True)
peer_alert_log = consumer.consume(
    {"bootstrap.servers": os.environ["BENCH_PEER_BROKERS"], "group.id": f"bench-peer-{os.getpid()}"},
    os.environ["BENCH_PEER_TOPIC"],
    offsets=consumer.ALL_PARTITIONS_SEEK_TO_BEGINNING,
    key_spec=consumer.KeyValueSpec.IGNORE,
    value_spec=consumer.json_spec(
        {name: dtypes.string for name in COLUMNS},
        mapping={pointer: name for name, pointer in COLUMNS.items()},
    ),
    table_type=consumer.TableType.append(),
)
peer_alerts = peer_alert_log.last_by("Fingerprint")
