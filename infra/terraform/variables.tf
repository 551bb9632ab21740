variable "resource_group_name" {
  description = "Name of the Redpanda Cloud resource group that holds the cluster."
  type        = string
  default     = "todo-events"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,62}$", var.resource_group_name))
    error_message = "resource_group_name must be 3-63 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cluster_name" {
  description = "Name of the Redpanda Serverless cluster."
  type        = string
  default     = "todo-events"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,62}$", var.cluster_name))
    error_message = "cluster_name must be 3-63 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "serverless_region" {
  description = "Redpanda Serverless region, for example \"pro-us-east-1\" or \"eu-west-1\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.serverless_region))
    error_message = "serverless_region must be a Redpanda Serverless region id (lowercase letters, digits and dashes)."
  }
}

variable "topic_partitions" {
  description = "Partitions per topic. user_id is the partition key, so this bounds each topic's consumer parallelism."
  type        = map(number)
  default = {
    task-events  = 6
    reminders    = 3
    task-updates = 6
  }

  validation {
    condition = (
      length(setsubtract(["task-events", "reminders", "task-updates"], keys(var.topic_partitions))) == 0 &&
      length(setsubtract(keys(var.topic_partitions), ["task-events", "reminders", "task-updates"])) == 0
    )
    error_message = "topic_partitions must name exactly task-events, reminders and task-updates."
  }

  validation {
    condition     = alltrue([for p in values(var.topic_partitions) : p >= 1 && p <= 128 && floor(p) == p])
    error_message = "every partition count must be a whole number from 1 to 128."
  }
}

variable "topic_retention_hours" {
  description = "Retention of each main topic, in hours. Consumers must catch up within it; the sync gateway replays from the database, not from Kafka."
  type        = map(number)
  default = {
    task-events  = 168
    reminders    = 168
    task-updates = 24
  }

  validation {
    condition = (
      length(setsubtract(["task-events", "reminders", "task-updates"], keys(var.topic_retention_hours))) == 0 &&
      length(setsubtract(keys(var.topic_retention_hours), ["task-events", "reminders", "task-updates"])) == 0
    )
    error_message = "topic_retention_hours must name exactly task-events, reminders and task-updates."
  }

  validation {
    condition     = alltrue([for h in values(var.topic_retention_hours) : h >= 1 && h <= 8760 && floor(h) == h])
    error_message = "every retention must be a whole number of hours from 1 to 8760 (one year)."
  }
}

variable "dlq_partitions" {
  description = "Partitions of each dead-letter topic. Dead letters are rare; one partition keeps them in arrival order."
  type        = number
  default     = 1

  validation {
    condition     = var.dlq_partitions >= 1 && var.dlq_partitions <= 16 && floor(var.dlq_partitions) == var.dlq_partitions
    error_message = "dlq_partitions must be a whole number from 1 to 16."
  }
}

variable "dlq_retention_hours" {
  description = "Retention of the dead-letter topics, in hours: long enough to inspect and replay."
  type        = number
  default     = 720

  validation {
    condition     = var.dlq_retention_hours >= 24 && var.dlq_retention_hours <= 8760 && floor(var.dlq_retention_hours) == var.dlq_retention_hours
    error_message = "dlq_retention_hours must be a whole number of hours from 24 to 8760."
  }
}

variable "user_passwords" {
  description = "SCRAM password of each function's Redpanda user, keyed by function name. Write-only: sent to Redpanda, never stored in the state."
  type        = map(string)
  sensitive   = true
  ephemeral   = true

  validation {
    condition = (
      length(setsubtract(["task-api", "audit", "recurring", "notification", "sync-gateway"], keys(var.user_passwords))) == 0 &&
      length(setsubtract(keys(var.user_passwords), ["task-api", "audit", "recurring", "notification", "sync-gateway"])) == 0
    )
    error_message = "user_passwords must have exactly one entry per function: task-api, audit, recurring, notification, sync-gateway."
  }

  validation {
    condition     = alltrue([for p in values(var.user_passwords) : length(p) >= 24])
    error_message = "every password must be at least 24 characters long."
  }
}

variable "dlq_operator_user" {
  description = "Redpanda user of the operator who lists and replays dead letters (scripts/dlq): READ on every <topic>-dlq and the groups todo-dlq-replay-*."
  type        = string
  default     = "dlq-operator"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,62}$", var.dlq_operator_user)) && !contains(["task-api", "audit", "recurring", "notification", "sync-gateway"], var.dlq_operator_user)
    error_message = "dlq_operator_user must be 3-63 lowercase letters, digits or dashes, and not a function's user."
  }
}

variable "dlq_operator_password" {
  description = "SCRAM password of the dead-letter operator's user. Write-only, like user_passwords; rotated with user_passwords_version."
  type        = string
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = length(var.dlq_operator_password) >= 24
    error_message = "dlq_operator_password must be at least 24 characters long."
  }
}

variable "user_passwords_version" {
  description = "Increase to rotate the users' passwords: write-only values cannot be compared, so this number is what tells the provider to send them again."
  type        = number
  default     = 1

  validation {
    condition     = var.user_passwords_version >= 1 && floor(var.user_passwords_version) == var.user_passwords_version
    error_message = "user_passwords_version must be a whole number, 1 or more."
  }
}

variable "namespace_prefix" {
  description = "Prefix of the per-function Kubernetes namespaces (knative/base uses \"todo-\")."
  type        = string
  default     = "todo-"

  validation {
    condition     = can(regex("^[a-z0-9-]{0,40}$", var.namespace_prefix))
    error_message = "namespace_prefix must be at most 40 lowercase letters, digits or dashes."
  }
}
