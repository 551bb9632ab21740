output "cluster_id" {
  description = "ID of the Redpanda Serverless cluster."
  value       = redpanda_serverless_cluster.this.id
}

output "seed_brokers" {
  description = "Kafka seed brokers (host:port), comma separated: Dapr's \"brokers\" and the KafkaSources' bootstrapServers."
  value       = join(",", redpanda_serverless_cluster.this.kafka_api.seed_brokers)
}

output "users" {
  description = "The Redpanda user of each function (SCRAM-SHA-256)."
  value       = { for fn, u in redpanda_user.function : fn => u.name }
}

output "namespaces" {
  description = "The Kubernetes namespace of each function."
  value       = { for fn in keys(local.functions) : fn => "${var.namespace_prefix}${fn}" }
}

output "acls" {
  description = "Every ACL granted, as \"<function>/<resource type>/<name>/<operation>\"."
  value       = sort(keys(local.acls))
}

# The passwords are write-only, so no output can hold them. Instead, one
# command per function creates its namespace's Secret "kafka" (read by the
# Dapr pubsub, the KafkaSources and the KafkaSinks) from the password in an
# environment variable, e.g. KAFKA_PASSWORD_SYNC_GATEWAY.
output "kafka_secret_commands" {
  description = "Shell commands that create each function's Secret \"kafka\"; each reads the password from KAFKA_PASSWORD_<FUNCTION>."
  value = {
    for fn in keys(local.functions) : fn => join(" ", [
      "kubectl create secret generic kafka",
      "--namespace ${var.namespace_prefix}${fn}",
      "--from-literal=kafka-brokers=${join(",", redpanda_serverless_cluster.this.kafka_api.seed_brokers)}",
      "--from-literal=kafka-username=${redpanda_user.function[fn].name}",
      "--from-literal=kafka-password=\"$KAFKA_PASSWORD_${upper(replace(fn, "-", "_"))}\"",
      "--from-literal=user=${redpanda_user.function[fn].name}",
      "--from-literal=password=\"$KAFKA_PASSWORD_${upper(replace(fn, "-", "_"))}\"",
      "--from-literal=protocol=SASL_SSL",
      "--from-literal=sasl.mechanism=SCRAM-SHA-256",
      "--dry-run=client -o yaml | kubectl apply -f -",
    ])
  }
}

# scripts/dlq against Redpanda Cloud: a Kafka client properties file for the
# dead-letter operator, written with the password from
# KAFKA_PASSWORD_DLQ_OPERATOR (never from the state). Use it as
# KAFKA_CLIENT_CONFIG, with KAFKA_BOOTSTRAP set to seed_brokers.
output "dlq_client_config_command" {
  description = "A shell command that writes dlq-client.properties (SASL_SSL, SCRAM-SHA-256, the dlq operator's user) for scripts/dlq; reads the password from KAFKA_PASSWORD_DLQ_OPERATOR."
  value = join("", [
    "umask 077; printf '%s\\n' 'security.protocol=SASL_SSL' 'sasl.mechanism=SCRAM-SHA-256' ",
    "\"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\\\"${redpanda_user.dlq_operator.name}\\\" password=\\\"$KAFKA_PASSWORD_DLQ_OPERATOR\\\";\" ",
    "> dlq-client.properties",
  ])
}

output "dlq_operator_acls" {
  description = "The dead-letter operator's ACLs, as \"<resource type>/<name>/<operation>\"."
  value       = sort(keys(local.dlq_operator_acls))
}
