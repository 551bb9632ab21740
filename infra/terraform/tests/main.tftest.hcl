# Runs offline: the provider is mocked (its schema still comes from the real
# provider binary, so every attribute used in the configuration is checked).

mock_provider "redpanda" {
  mock_resource "redpanda_serverless_cluster" {
    defaults = {
      id = "mock-cluster"
      dataplane_api = {
        url         = "https://api-mock.example.test"
        private_url = ""
      }
      kafka_api = {
        seed_brokers         = ["seed-mock.example.test:9092"]
        private_seed_brokers = []
      }
    }
  }
}

variables {
  serverless_region = "pro-us-east-1"
  user_passwords = {
    task-api     = "task-api-password-0123456789"
    audit        = "audit-password-0123456789abc"
    recurring    = "recurring-password-012345678"
    notification = "notification-password-012345"
    sync-gateway = "sync-gateway-password-012345"
  }
  dlq_operator_password = "dlq-operator-password-0123456"
}

run "topics_and_dead_letter_topics" {
  command = apply

  assert {
    condition     = toset([for t in redpanda_topic.main : t.name]) == toset(["task-events", "reminders", "task-updates"])
    error_message = "the three main topics must exist"
  }

  assert {
    condition     = toset([for t in redpanda_topic.dead_letter : t.name]) == toset(["task-events-dlq", "reminders-dlq", "task-updates-dlq"])
    error_message = "every main topic needs its dead-letter topic"
  }

  assert {
    condition     = redpanda_topic.main["task-events"].partition_count == 6 && redpanda_topic.main["reminders"].partition_count == 3
    error_message = "partition counts must come from var.topic_partitions"
  }

  assert {
    condition     = redpanda_topic.main["task-updates"].configuration["retention.ms"] == "86400000"
    error_message = "task-updates keeps one day by default"
  }

  assert {
    condition     = redpanda_topic.dead_letter["reminders"].configuration["retention.ms"] == "2592000000"
    error_message = "dead letters keep 30 days by default"
  }

  assert {
    condition     = alltrue([for t in merge(redpanda_topic.main, redpanda_topic.dead_letter) : t.cluster_api_url == "https://api-mock.example.test"])
    error_message = "topics must be created through the serverless cluster's dataplane API"
  }
}

run "one_scram_user_per_function" {
  command = apply

  assert {
    condition     = toset(keys(redpanda_user.function)) == toset(["task-api", "audit", "recurring", "notification", "sync-gateway"])
    error_message = "every function needs its own user"
  }

  assert {
    condition     = alltrue([for u in redpanda_user.function : u.mechanism == "scram-sha-256"])
    error_message = "users must use SCRAM-SHA-256, which the Dapr pubsub's saslMechanism SHA-256 expects"
  }

  assert {
    condition     = output.users["sync-gateway"] == "sync-gateway"
    error_message = "the users output must map functions to user names"
  }
}

run "least_privilege_acls" {
  command = apply

  assert {
    condition     = length(redpanda_acl.function) == 18
    error_message = "expected exactly 18 ACLs; a new grant needs a reason"
  }

  assert {
    condition     = alltrue([for a in redpanda_acl.function : a.permission_type == "ALLOW" && a.host == "*"])
    error_message = "only ALLOW entries are expected"
  }

  assert {
    condition = (
      !contains(keys(redpanda_acl.function), "audit/TOPIC/task-events/WRITE") &&
      contains(keys(redpanda_acl.function), "audit/TOPIC/task-events/READ") &&
      contains(keys(redpanda_acl.function), "audit/TOPIC/task-events-dlq/WRITE") &&
      contains(keys(redpanda_acl.function), "audit/GROUP/audit/READ")
    )
    error_message = "audit may read task-events, write its dead letters and use its group, nothing else"
  }

  assert {
    condition     = length([for k, a in redpanda_acl.function : k if a.principal == "User:task-api" && a.operation != "WRITE"]) == 0
    error_message = "task-api only produces"
  }

  assert {
    condition = (
      redpanda_acl.function["sync-gateway/GROUP/sync-gateway-/READ"].resource_pattern_type == "PREFIXED" &&
      redpanda_acl.function["audit/GROUP/audit/READ"].resource_pattern_type == "LITERAL"
    )
    error_message = "sync-gateway's per-pod groups need a prefix grant; the others a literal one"
  }

  assert {
    condition     = length([for k, a in redpanda_acl.function : k if a.principal == "User:notification" && a.resource_name == "task-events"]) == 0
    error_message = "notification must not see task-events"
  }
}

run "dlq_operator_reads_dead_letters_only" {
  command = apply

  assert {
    condition     = redpanda_user.dlq_operator.name == "dlq-operator" && redpanda_user.dlq_operator.mechanism == "scram-sha-256"
    error_message = "scripts/dlq needs one SCRAM operator identity"
  }

  assert {
    condition = toset(keys(redpanda_acl.dlq_operator)) == toset([
      "TOPIC/task-events-dlq/READ", "TOPIC/reminders-dlq/READ", "TOPIC/task-updates-dlq/READ",
      "GROUP/todo-dlq-replay-/READ",
    ])
    error_message = "the operator reads every dead-letter topic and its replay groups, nothing else"
  }

  assert {
    condition = alltrue([
      for a in redpanda_acl.dlq_operator : a.principal == "User:dlq-operator" && a.operation == "READ" && a.permission_type == "ALLOW"
    ])
    error_message = "the operator never writes: replays go through daprd"
  }

  assert {
    condition = (
      redpanda_acl.dlq_operator["GROUP/todo-dlq-replay-/READ"].resource_pattern_type == "PREFIXED" &&
      redpanda_acl.dlq_operator["TOPIC/task-events-dlq/READ"].resource_pattern_type == "LITERAL"
    )
    error_message = "scripts/dlq's groups are todo-dlq-replay-<topic>: a prefix grant; topics literal"
  }

  assert {
    condition = (
      strcontains(output.dlq_client_config_command, "username=\\\"dlq-operator\\\"") &&
      strcontains(output.dlq_client_config_command, "$KAFKA_PASSWORD_DLQ_OPERATOR") &&
      !strcontains(output.dlq_client_config_command, "password-0123")
    )
    error_message = "the client config command names the operator and reads its password from the environment"
  }
}

run "rejects_a_short_operator_password" {
  command = plan

  variables {
    dlq_operator_password = "short"
  }

  expect_failures = [var.dlq_operator_password]
}

run "secret_commands_for_each_namespace" {
  command = apply

  assert {
    condition     = output.seed_brokers == "seed-mock.example.test:9092"
    error_message = "seed_brokers must come from the cluster's Kafka API"
  }

  assert {
    condition = (
      strcontains(output.kafka_secret_commands["sync-gateway"], "--namespace todo-sync-gateway") &&
      strcontains(output.kafka_secret_commands["sync-gateway"], "$KAFKA_PASSWORD_SYNC_GATEWAY") &&
      strcontains(output.kafka_secret_commands["sync-gateway"], "kafka-brokers=seed-mock.example.test:9092") &&
      strcontains(output.kafka_secret_commands["sync-gateway"], "sasl.mechanism=SCRAM-SHA-256")
    )
    error_message = "each command must target the function's namespace and read its password from the environment"
  }

  assert {
    condition     = !strcontains(join(" ", values(output.kafka_secret_commands)), "password-0123")
    error_message = "no password may appear in an output"
  }
}

run "rejects_a_missing_password" {
  command = plan

  variables {
    user_passwords = {
      task-api     = "task-api-password-0123456789"
      audit        = "audit-password-0123456789abc"
      recurring    = "recurring-password-012345678"
      notification = "notification-password-012345"
    }
  }

  expect_failures = [var.user_passwords]
}

run "rejects_a_short_password" {
  command = plan

  variables {
    user_passwords = {
      task-api     = "short"
      audit        = "audit-password-0123456789abc"
      recurring    = "recurring-password-012345678"
      notification = "notification-password-012345"
      sync-gateway = "sync-gateway-password-012345"
    }
  }

  expect_failures = [var.user_passwords]
}

run "rejects_an_unknown_topic" {
  command = plan

  variables {
    topic_partitions = {
      task-events  = 6
      reminders    = 3
      task-updates = 6
      extra        = 1
    }
  }

  expect_failures = [var.topic_partitions]
}

run "rejects_zero_retention" {
  command = plan

  variables {
    topic_retention_hours = {
      task-events  = 0
      reminders    = 168
      task-updates = 24
    }
  }

  expect_failures = [var.topic_retention_hours]
}
