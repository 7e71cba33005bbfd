variable "name_prefix" {
  description = "Prefix of resource names (LAKEHOUSE_NAME_PREFIX)."
  type        = string
}

variable "aws_region" {
  description = "Region (MSK Connect Secrets Manager config provider)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (at least two AZs) for MSK Serverless and the MSK Connect workers."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "MSK Serverless needs subnets in at least two availability zones."
  }
}

variable "kafka_security_group_id" {
  description = "Security group of the MSK Serverless cluster."
  type        = string
}

variable "connect_security_group_id" {
  description = "Security group of the MSK Connect workers."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key (connector log group, OLTP secret decryption)."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket holding the Debezium plugin zip."
  type        = string
}

variable "debezium_plugin_key" {
  description = "Object key of the MSK Connect custom plugin zip (Debezium PostgreSQL connector + msk-config-providers) in the artifacts bucket."
  type        = string
  default     = "msk-connect/debezium-connector-postgres.zip"
  validation {
    condition     = endswith(var.debezium_plugin_key, ".zip")
    error_message = "MSK Connect custom plugins are uploaded as a .zip."
  }
}

variable "create_connector" {
  description = "Create the plugin, worker configuration and Debezium connector (needs the plugin zip uploaded first, see docs/deploy.md)."
  type        = bool
  default     = false
}

variable "kafkaconnect_version" {
  description = "Apache Kafka Connect version of the MSK Connect workers."
  type        = string
  default     = "3.7.x"
}

variable "connector_mcu_count" {
  description = "MSK Connect units per worker (1 MCU = 1 vCPU, 4 GiB)."
  type        = number
  default     = 1
  validation {
    condition     = contains([1, 2, 4, 8], var.connector_mcu_count)
    error_message = "connector_mcu_count must be 1, 2, 4 or 8."
  }
}

variable "oltp" {
  description = "OLTP PostgreSQL source: host, port, database, user (password from oltp_secret_name)."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = optional(string, "shop")
    user     = optional(string, "lakehouse")
  })
}

variable "oltp_secret_arn" {
  description = "ARN of the Secrets Manager secret with the OLTP password (key \"password\")."
  type        = string
}

variable "oltp_secret_name" {
  description = "Name of the same secret (the config provider takes names, not ARNs)."
  type        = string
}

variable "oltp_schema" {
  description = "Captured PostgreSQL schema (Settings.oltp_schema)."
  type        = string
  default     = "shop"
}

variable "oltp_tables" {
  description = "Captured tables in foreign-key order (lakehouse.settings.OLTP_TABLES)."
  type        = list(string)
}

variable "cdc_topic_prefix" {
  description = "Debezium topic.prefix (Settings.cdc_topic_prefix); topics are <prefix>.<schema>.<table>."
  type        = string
  default     = "ecom"
}

variable "cdc_slot_name" {
  description = "Logical replication slot (Settings.cdc_slot_name)."
  type        = string
  default     = "lakehouse_cdc"
}

variable "cdc_publication_name" {
  description = "Publication (Settings.cdc_publication_name)."
  type        = string
  default     = "lakehouse_cdc"
}

variable "log_retention_days" {
  description = "Retention of the connector worker log group."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
