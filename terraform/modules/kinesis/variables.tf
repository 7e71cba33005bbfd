variable "name_prefix" {
  description = "Prefix of names (LAKEHOUSE_NAME_PREFIX): the stream is <name_prefix>-cdc (Settings.cdc_kinesis_stream)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "shard_count" {
  description = "Provisioned shards (LAKEHOUSE_CDC_KINESIS_SHARDS). One shard takes 1,000 records/s or 1 MB/s: enough for a small shop's OLTP changes."
  type        = number
  default     = 1
  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 64
    error_message = "shard_count must be between 1 and 64."
  }
}

variable "retention_hours" {
  description = "How long the stream keeps records. 24 h is included in the shard price; longer costs $0.02/shard-hour. The always-on sink reads within seconds; a sink stopped for longer than this loses its position and stops loudly (docs/cdc.md)."
  type        = number
  default     = 24
  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760
    error_message = "retention_hours must be between 24 and 8760."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the stream at rest."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
