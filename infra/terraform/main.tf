provider "redpanda" {
  # Credentials come from REDPANDA_CLIENT_ID and REDPANDA_CLIENT_SECRET
  # (a Redpanda Cloud service account), never from a file in this folder.
}

locals {
  topics = toset(["task-events", "reminders", "task-updates"])

  # What each function may do, and nothing more. Topic access:
  # - produce: publishes through Dapr (the outbox relay).
  # - consume: subscribes (Dapr subscription or KafkaSource).
  # - dead letters: a consumer writes its own topic's dead-letter topic
  #   (Dapr's deadLetterTopic, or the KafkaSink in the scale-to-zero profile).
  # group is the consumer group: Dapr's "{appID}" and the KafkaSource's
  # consumerGroup are both the function's name; sync-gateway uses one group
  # per pod ("{podName}"), hence a prefix.
  functions = {
    task-api = {
      produce       = ["task-events", "reminders", "task-updates"]
      consume       = []
      group         = null
      group_pattern = null
    }
    audit = {
      produce       = []
      consume       = ["task-events"]
      group         = "audit"
      group_pattern = "LITERAL"
    }
    recurring = {
      # The next occurrence goes through the task domain and its outbox.
      produce       = ["task-events", "reminders", "task-updates"]
      consume       = ["task-events"]
      group         = "recurring"
      group_pattern = "LITERAL"
    }
    notification = {
      produce       = []
      consume       = ["reminders"]
      group         = "notification"
      group_pattern = "LITERAL"
    }
    sync-gateway = {
      produce       = []
      consume       = ["task-updates"]
      group         = "sync-gateway-"
      group_pattern = "PREFIXED"
    }
  }

  # One entry per ACL: "<function>/<resource type>/<name>/<operation>".
  acls = merge(
    {
      for pair in flatten([
        for fn, f in local.functions : [
          for t in f.produce : { fn = fn, name = t, op = "WRITE" }
        ]
      ]) : "${pair.fn}/TOPIC/${pair.name}/${pair.op}" => merge(pair, { type = "TOPIC", pattern = "LITERAL" })
    },
    {
      for pair in flatten([
        for fn, f in local.functions : [
          for t in f.consume : [
            { fn = fn, name = t, op = "READ" },
            { fn = fn, name = "${t}-dlq", op = "WRITE" },
          ]
        ]
      ]) : "${pair.fn}/TOPIC/${pair.name}/${pair.op}" => merge(pair, { type = "TOPIC", pattern = "LITERAL" })
    },
    {
      for fn, f in local.functions : "${fn}/GROUP/${f.group}/READ" => {
        fn = fn, name = f.group, op = "READ", type = "GROUP", pattern = f.group_pattern
      } if f.group != null
    },
  )

  # The operator identity for scripts/dlq: it reads every dead-letter topic
  # and keeps its replay position in the groups "todo-dlq-replay-<topic>".
  # It never writes to Kafka: a replay publishes through task-api's daprd.
  dlq_operator_acls = merge(
    {
      for t in local.topics : "TOPIC/${t}-dlq/READ" => {
        name = "${t}-dlq", op = "READ", type = "TOPIC", pattern = "LITERAL"
      }
    },
    {
      "GROUP/todo-dlq-replay-/READ" = {
        name = "todo-dlq-replay-", op = "READ", type = "GROUP", pattern = "PREFIXED"
      }
    },
  )

  cluster_api_url = redpanda_serverless_cluster.this.dataplane_api.url
}

resource "redpanda_resource_group" "this" {
  name = var.resource_group_name
}

resource "redpanda_serverless_cluster" "this" {
  name              = var.cluster_name
  resource_group_id = redpanda_resource_group.this.id
  serverless_region = var.serverless_region
}

resource "redpanda_topic" "main" {
  for_each = local.topics

  name            = each.key
  partition_count = var.topic_partitions[each.key]
  cluster_api_url = local.cluster_api_url
  allow_deletion  = false

  configuration = {
    "cleanup.policy" = "delete"
    "retention.ms"   = tostring(var.topic_retention_hours[each.key] * 3600000)
  }

  # allow_deletion alone is not enough: `destroy` removes dependents first,
  # so the users and ACLs (which depend on the topics) would be gone before
  # the provider refused the topic. prevent_destroy fails the plan itself,
  # before anything is deleted.
  lifecycle {
    prevent_destroy = true
  }
}

resource "redpanda_topic" "dead_letter" {
  for_each = local.topics

  name            = "${each.key}-dlq"
  partition_count = var.dlq_partitions
  cluster_api_url = local.cluster_api_url
  allow_deletion  = false

  configuration = {
    "cleanup.policy" = "delete"
    "retention.ms"   = tostring(var.dlq_retention_hours * 3600000)
  }

  # See redpanda_topic.main.
  lifecycle {
    prevent_destroy = true
  }
}

resource "redpanda_user" "function" {
  for_each = local.functions

  name                = each.key
  mechanism           = "scram-sha-256"
  password_wo         = var.user_passwords[each.key]
  password_wo_version = var.user_passwords_version
  cluster_api_url     = local.cluster_api_url
  allow_deletion      = true

  # Right after a new cluster is created its dataplane hostname may not
  # resolve yet. Provider 1.9.0 does not wait for it: user creation has no
  # retry loop (redpanda/resources/user/resource_user.go Create), and the
  # gRPC client retries Unavailable only 5 times from 100 ms
  # (redpanda/cloud/cloud.go SpawnConnWithConcurrency). Topic creation
  # retries for 2 min, but only on permission and broker errors
  # (resource_topic.go Create, isTransientBrokerError), not on DNS. So users
  # come after the topics: a warm-up failure stops the apply at the topics,
  # before any user or ACL, and re-running `tofu apply` finishes it
  # (docs/deploy.md).
  depends_on = [redpanda_topic.main, redpanda_topic.dead_letter]
}

resource "redpanda_user" "dlq_operator" {
  name                = var.dlq_operator_user
  mechanism           = "scram-sha-256"
  password_wo         = var.dlq_operator_password
  password_wo_version = var.user_passwords_version
  cluster_api_url     = local.cluster_api_url
  allow_deletion      = true

  depends_on = [redpanda_topic.main, redpanda_topic.dead_letter]
}

resource "redpanda_acl" "dlq_operator" {
  for_each = local.dlq_operator_acls

  principal             = "User:${redpanda_user.dlq_operator.name}"
  resource_type         = each.value.type
  resource_name         = each.value.name
  resource_pattern_type = each.value.pattern
  operation             = each.value.op
  permission_type       = "ALLOW"
  host                  = "*"
  cluster_api_url       = local.cluster_api_url
  allow_deletion        = true
}

resource "redpanda_acl" "function" {
  for_each = local.acls

  principal             = "User:${redpanda_user.function[each.value.fn].name}"
  resource_type         = each.value.type
  resource_name         = each.value.name
  resource_pattern_type = each.value.pattern
  operation             = each.value.op
  permission_type       = "ALLOW"
  host                  = "*"
  cluster_api_url       = local.cluster_api_url
  allow_deletion        = true

  # The ACLs name topics; create them first so a consumer never starts on a
  # topic that is not there yet.
  depends_on = [redpanda_topic.main, redpanda_topic.dead_letter]
}
