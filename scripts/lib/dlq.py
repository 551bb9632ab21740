"""Lists and replays dead-lettered events (see scripts/dlq).

Kafka is read with the broker's own command-line tools (java on the cached
Kafka jars), one partition at a time and only up to the end offsets seen at
start, so events that come back to the dead-letter topic while a replay runs
(a replayed poison event, say) wait for the next replay instead of looping.
The replay position is the consumer group `todo-dlq-replay-<topic>`; it is
moved forward only past records that daprd accepted. Standard library only.
"""
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

# Attributes Dapr adds when it delivers; it adds them again on publish.
DAPR_ADDED = ("topic", "pubsubname", "traceid", "traceparent", "tracestate")
JAVA = json.loads(os.environ["KAFKA_JAVA_JSON"])
BOOTSTRAP = os.environ["KAFKA_BOOTSTRAP"]
CLIENT_CONFIG = os.environ.get("KAFKA_CLIENT_CONFIG")


def kafka(tool, *args):
    command = JAVA + [tool, "--bootstrap-server", BOOTSTRAP, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout


def offsets(topic, time):
    """{partition: offset} at the end (time -1) or the beginning (-2)."""
    extra = ["--command-config", CLIENT_CONFIG] if CLIENT_CONFIG else []
    code, out = kafka("org.apache.kafka.tools.GetOffsetShell", "--topic", topic, "--time", str(time), *extra)
    if code != 0:
        sys.exit(f"cannot read offsets of {topic} from {BOOTSTRAP}")
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


def parse(value):
    try:
        event = json.loads(value)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "id" in event else None


def publish(topic, key, event):
    traceparent = event.get("traceparent")
    body = {k: v for k, v in event.items() if k not in DAPR_ADDED}
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
            event = parse(value)
            if event is None:
                print(f"(not a CloudEvent)\t{key}\t{value[:120]}")
            else:
                print(f"{event.get('id')}\t{event.get('type')}\t{event.get('time')}\tkey={key}")
    print(f"{total} record(s) listed from {dlq}", file=sys.stderr)


def replay(topic):
    dlq, group = f"{topic}-dlq", f"todo-dlq-replay-{topic}"
    begin, end, done = offsets(dlq, -2), offsets(dlq, -1), committed(group, dlq)
    replayed = failed = 0
    for partition in sorted(end):
        start = max(done.get(partition, 0), begin.get(partition, 0))
        position = start
        for key, value in read(dlq, partition, start, end[partition] - start):
            event = parse(value)
            if event is not None:
                try:
                    publish(topic, key, event)
                except (urllib.error.URLError, OSError) as error:
                    # Stop this partition here, so order is kept next time.
                    print(f"FAILED {event['id']}: {error}", file=sys.stderr)
                    failed += 1
                    break
                print(f"replayed {event['id']} to {topic}")
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
