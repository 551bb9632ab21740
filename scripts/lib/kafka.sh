# Apache Kafka in KRaft mode (one combined broker+controller node on
# loopback), with its jars resolved from Maven Central by scripts/kafka/pom.xml
# into $TODO_EVENTS_CACHE. Sourced, not run.

KAFKA_LIBS="$TODO_EVENTS_CACHE/kafka/$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO_ROOT/scripts/kafka/pom.xml")/libs"
KAFKA_DATA="$TODO_EVENTS_RUN/kafka"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
: "${KAFKA_PARTITIONS:=3}"
KAFKA_TOPICS=(task-events reminders task-updates task-events-dlq reminders-dlq task-updates-dlq)

kafka_ensure_installed() {
  need_cmd java "install a Java 17 runtime (Debian: openjdk-17-jre-headless)"
  [[ -f $KAFKA_LIBS/.complete ]] && return 0
  need_cmd mvn "install Maven (Debian: maven); it resolves the Kafka jars"
  say "resolving Apache Kafka jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$REPO_ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >>"$LOG_DIR/kafka-install.log" 2>&1 \
    || die "resolving Kafka from Maven Central failed; see $LOG_DIR/kafka-install.log"
  touch "$KAFKA_LIBS/.complete"
}

kafka_java() {
  java -Xms128m -Xmx512m -XX:+UseG1GC -Dlog4j.configuration="file:$KAFKA_DATA/log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DATA/logs"
  cat >"$KAFKA_DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA/logs
num.partitions=$KAFKA_PARTITIONS
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Consumers join groups at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# A development broker: six hours of records, in 16 MiB segments (retention
# deletes only closed segments, and the 1 GiB default would never close),
# checked every minute. Tests that read a topic from its beginning then
# stay bounded however many earlier runs wrote to it; a consumer stopped
# for longer than that starts at the newest record (daprd's initialOffset).
log.retention.hours=6
log.segment.bytes=16777216
log.retention.check.interval.ms=60000
PROPS
  kafka_write_log_config
}

# Tools and the broker log to stderr, so tools' stdout is only their output.
kafka_write_log_config() {
  cat >"$KAFKA_DATA/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Target=System.err
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
PROPS
}

kafka_topics() { kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }

kafka_up() {
  kafka_ensure_installed
  if pid_alive kafka && port_open "$KAFKA_PORT"; then
    say "Kafka already running on $KAFKA_BOOTSTRAP"
  else
    port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT"
    kafka_write_config
    if [[ ! -f $KAFKA_DATA/logs/meta.properties ]]; then
      say "formatting Kafka KRaft storage"
      local cluster_id
      cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka.log")
      kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DATA/server.properties" \
        >>"$LOG_DIR/kafka.log" 2>&1 || die "formatting Kafka storage failed; see $LOG_DIR/kafka.log"
    fi
    say "starting Kafka (KRaft) on $KAFKA_BOOTSTRAP"
    start_bg kafka java -Xms256m -Xmx768m -XX:+UseG1GC \
      -Dlog4j.configuration="file:$KAFKA_DATA/log4j.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DATA/server.properties"
    wait_for "Kafka" 90 port_open "$KAFKA_PORT"
  fi
  kafka_ensure_topics
}

kafka_ensure_topics() {
  local existing missing=()
  existing=$(kafka_topics --list 2>>"$LOG_DIR/kafka.log") || die "Kafka does not answer on $KAFKA_BOOTSTRAP; see $LOG_DIR/kafka.log"
  for topic in "${KAFKA_TOPICS[@]}"; do
    grep -qx "$topic" <<<"$existing" || missing+=("$topic")
  done
  for topic in "${missing[@]}"; do
    say "creating topic $topic"
    kafka_topics --create --if-not-exists --topic "$topic" --partitions "$KAFKA_PARTITIONS" \
      --replication-factor 1 >>"$LOG_DIR/kafka.log" 2>&1 || die "creating topic $topic failed"
  done
}

# kafka_read TOPIC SECONDS: prints the topic's records (values) from the
# start, until SECONDS pass with no new record, and at most 4×SECONDS in all
# (under steady traffic the idle timeout alone would never fire).
kafka_read() {
  # The hard cap guards against a consumer that never goes idle; a caller
  # reading a long topic under load (the order test) raises it and stops the
  # consumer itself.
  local idle=${2:-5} cap=${3:-$((${2:-5} * 4 + 10))}
  timeout "$cap" java -Xms64m -Xmx256m -Dlog4j.configuration="file:$KAFKA_DATA/log4j.properties" \
    -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --topic "$1" --from-beginning --timeout-ms "$((idle * 1000))" 2>/dev/null || true
}

# kafka_groups: every consumer group's position per partition (GROUP, TOPIC,
# PARTITION, CURRENT-OFFSET, LOG-END-OFFSET, LAG, CONSUMER-ID, ...), one
# block per group; a group without connected consumers shows CONSUMER-ID -.
kafka_groups() {
  kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --describe --all-groups 2>>"$LOG_DIR/kafka.log"
}

kafka_down() {
  pid_alive kafka || return 0
  say "stopping Kafka"
  stop_bg kafka
}
