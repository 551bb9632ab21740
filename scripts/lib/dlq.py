"""Lists and replays dead-lettered events (see scripts/dlq).

Kafka is read with the broker's own command-line tools (java on the cached
Kafka jars), one partition at a time and only up to the end offsets seen at
start, so events that come back to the dead-letter topic while a replay runs
(a replayed poison event, say) wait for the next replay instead of looping.
The replay position is the consumer group `todo-dlq-replay-<topic>`; it is
moved forward only past records that daprd accepted. Standard library only.

Two shapes sit on a dead-letter topic: the event itself, as daprd
dead-letters it (profile `dapr`), and, from the `scale-to-zero` profile's
KafkaSink, the KafkaSource's envelope of type `dev.knative.kafka.event`
(knative-extensions/eventing-kafka-broker knative-v1.23.0,
data-plane/dispatcher/.../InvalidCloudEventInterceptor.java): its data is the
Kafka record daprd wrote, i.e. our event, and it carries the source's
`ceOverrides` extensions, among them the push token. Both list and replay as
the original event; the envelope, and with it `pushtoken`, is dropped.
"""
import base64
import binascii
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

# Attributes Dapr adds when it delivers; it adds them again on publish. The
# push token is the Knative sources' secret and never goes back on a topic.
DAPR_ADDED = ("topic", "pubsubname", "traceid", "traceparent", "tracestate")
DROPPED = DAPR_ADDED + ("pushtoken",)
KNATIVE_KAFKA_EVENT = "dev.knative.kafka.event"
# Reports that sit on a dead-letter topic without being dead letters:
# notification publishes each delivery that failed to reminders-dlq for
# admins (functions/notification/src/history.rs). Replaying one would send
# nothing; it is skipped (and notification acknowledges one that arrives).
REPORTS = ("com.todo.notification.failed",)
CLIENT_CONFIG = os.environ.get("KAFKA_CLIENT_CONFIG")


def kafka(tool, *args):
    java = json.loads(os.environ["KAFKA_JAVA_JSON"])
    command = java + [tool, "--bootstrap-server", os.environ["KAFKA_BOOTSTRAP"], *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout


def offsets(topic, time):
    """{partition: offset} at the end (time -1) or the beginning (-2)."""
    extra = ["--command-config", CLIENT_CONFIG] if CLIENT_CONFIG else []
    code, out = kafka("org.apache.kafka.tools.GetOffsetShell", "--topic", topic, "--time", str(time), *extra)
    if code != 0:
        sys.exit(f"cannot read offsets of {topic} from {os.environ['KAFKA_BOOTSTRAP']}")
    found = {}
    for line in out.splitlines():
        match = re.fullmatch(r".*:(\d+):(\d+)", line.strip())
        if match:
            found[int(match.group(1))] = int(match.group(2))
    return found


def committed(group, topic):
    extra = ["--command-config", CLIENT_CONFIG] if CLIENT_CONFIG else []
    _, out = kafka("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--describe", "--group", group, *extra)
    found = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] == topic and cols[2].isdigit() and cols[3].isdigit():
            found[int(cols[2])] = int(cols[3])
    return found


def read(topic, partition, start, count):
    """The `count` records of one partition from `start`: (key, value) pairs."""
    if count <= 0:
        return []
    extra = ["--consumer.config", CLIENT_CONFIG] if CLIENT_CONFIG else []
    _, out = kafka(
        "org.apache.kafka.tools.consumer.ConsoleConsumer", "--topic", topic,
        "--partition", str(partition), "--offset", str(start), "--max-messages", str(count),
        "--timeout-ms", "15000", "--property", "print.key=true",
        "--property", "key.separator=\t", *extra)
    records = []
    for line in out.splitlines()[:count]:
        key, _, value = line.partition("\t")
        records.append((key, value))
    return records


def as_event(value):
    """A JSON text (or already decoded object) as a CloudEvent dict, or None."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    return value if isinstance(value, dict) and "id" in value else None


def unwrap(envelope):
    """The event a KafkaSource envelope carries (its Kafka record value), or
    None when it carries no CloudEvent. The record can arrive as JSON data,
    as a JSON string, or base64-encoded, depending on its content type."""
    if "data_base64" in envelope:
        try:
            return as_event(base64.b64decode(envelope["data_base64"], validate=True))
        except (binascii.Error, ValueError):
            return None
    return as_event(envelope.get("data"))


def parse(value, key=None):
    """(event, partition key) of a dead-letter record, or (None, key).

    A Knative envelope gives way to the event inside it; its partition key
    is the record's key, or the envelope's `partitionkey` / `key` extension
    (the KafkaSource copies the original record key into both)."""
    event = as_event(value)
    if event is not None and event.get("type") == KNATIVE_KAFKA_EVENT:
        if not key or key == "null":
            key = event.get("partitionkey") or event.get("key") or key
        event = unwrap(event)
    if event is None:
        return None, key
    return {k: v for k, v in event.items() if k != "pushtoken"}, key


def publish(topic, key, event):
    traceparent = event.get("traceparent")
    body = {k: v for k, v in event.items() if k not in DROPPED}
    query = urllib.parse.urlencode({"metadata.partitionKey": key}) if key and key != "null" else ""
    url = f"{os.environ['DAPR_HTTP_ENDPOINT']}/v1.0/publish/pubsub/{topic}?{query}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/cloudevents+json")
    if os.environ.get("DAPR_API_TOKEN"):
        request.add_header("dapr-api-token", os.environ["DAPR_API_TOKEN"])
    if traceparent:
        request.add_header("traceparent", traceparent)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def list_records(topic, last):
    dlq = f"{topic}-dlq"
    begin, end = offsets(dlq, -2), offsets(dlq, -1)
    total = 0
    for partition in sorted(end):
        start = max(begin.get(partition, 0), end[partition] - last) if last else begin.get(partition, 0)
        for key, value in read(dlq, partition, start, end[partition] - start):
            total += 1
            event, key = parse(value, key)
            if event is None:
                print(f"(not a CloudEvent)\t{key}\t{value[:120]}")
            else:
                print(f"{event.get('id')}\t{event.get('type')}\t{event.get('time')}\tkey={key}")
    print(f"{total} record(s) listed from {dlq}", file=sys.stderr)


def replayable(event):
    """Whether a parsed event is a dead letter to send again, not a report."""
    return event is not None and event.get("type") not in REPORTS


def replay(topic):
    dlq, group = f"{topic}-dlq", f"todo-dlq-replay-{topic}"
    begin, end, done = offsets(dlq, -2), offsets(dlq, -1), committed(group, dlq)
    replayed = failed = 0
    # Every subscriber of a topic dead-letters its own copy of a poison
    # event to the one -dlq topic (audit and recurring both read
    # task-events), so one event can stand there several times under one
    # id. It is sent once: sending each copy would multiply the event, and
    # a replayed event that is still poison comes back once per subscriber
    # again, so replaying every copy doubled the topic on each run.
    sent = set()
    for partition in sorted(end):
        start = max(done.get(partition, 0), begin.get(partition, 0))
        position = start
        for key, value in read(dlq, partition, start, end[partition] - start):
            event, key = parse(value, key)
            if event is not None and not replayable(event):
                print(f"skipped report {event.get('id')} ({event.get('type')})", file=sys.stderr)
            elif event is not None and event["id"] in sent:
                print(f"skipped another copy of {event['id']}", file=sys.stderr)
            elif event is not None:
                try:
                    publish(topic, key, event)
                except (urllib.error.URLError, OSError) as error:
                    # Stop this partition here, so order is kept next time.
                    print(f"FAILED {event['id']}: {error}", file=sys.stderr)
                    failed += 1
                    break
                print(f"replayed {event['id']} to {topic}")
                sent.add(event["id"])
                replayed += 1
            else:
                print(f"skipped (not a CloudEvent) at {dlq}:{partition}@{position}", file=sys.stderr)
            position += 1
        if position > start:
            code, _ = kafka("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--reset-offsets",
                            "--group", group, "--topic", f"{dlq}:{partition}", "--to-offset", str(position),
                            "--execute", *(["--command-config", CLIENT_CONFIG] if CLIENT_CONFIG else []))
            if code != 0:
                sys.exit(f"could not record the replay position of {dlq}:{partition}")
    print(f"{replayed} replayed to {topic}" + (f", {failed} failed" if failed else ""), file=sys.stderr)
    sys.exit(1 if failed else 0)


def main():
    action, topic = sys.argv[1], sys.argv[2]
    if action == "list":
        list_records(topic, int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else 0)
    else:
        replay(topic)


if __name__ == "__main__":
    main()
