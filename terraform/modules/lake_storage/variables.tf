variable "name_prefix" {
  description = "Prefix of every bucket name (LAKEHOUSE_NAME_PREFIX); buckets are <name_prefix>-landing|lake|athena-results|artifacts."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "extra_buckets" {
  description = "Additional logical buckets named <name_prefix>-<name>, e.g. [\"broker\"] for the local stack's durable Kafka storage."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key used for SSE-KMS on every data bucket."
  type        = string
}

variable "landing_expiration_days" {
  description = "Days after which raw landing files (clickstream/, partner_feeds/, ...) expire."
  type        = number
  default     = 30
  validation {
    condition     = var.landing_expiration_days >= 1
    error_message = "landing_expiration_days must be at least 1."
  }
}

variable "tmp_expiration_days" {
  description = "Days after which objects under tmp/ (lake, artifacts) expire."
  type        = number
  default     = 7
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results expire."
  type        = number
  default     = 14
}

variable "noncurrent_transitions" {
  description = "Storage class transitions of noncurrent object versions in the lake and artifacts buckets (days after becoming noncurrent)."
  type = list(object({
    days          = number
    storage_class = string
  }))
  default = [
    { days = 30, storage_class = "STANDARD_IA" },
    { days = 90, storage_class = "GLACIER_IR" },
  ]
  validation {
    condition     = alltrue([for t in var.noncurrent_transitions : t.days >= 30 || t.storage_class != "STANDARD_IA"])
    error_message = "S3 requires at least 30 days before a transition to STANDARD_IA."
  }
}

variable "noncurrent_expiration_days" {
  description = "Days after which noncurrent object versions in the lake and artifacts buckets are deleted (bounds the cost of versioning; also the undelete window)."
  type        = number
  default     = 180
}

variable "transient_noncurrent_expiration_days" {
  description = "Days after which noncurrent versions in the landing and Athena-results buckets are deleted (so expired landing files really disappear)."
  type        = number
  default     = 7
}

variable "access_log_expiration_days" {
  description = "Days after which S3 server access logs expire."
  type        = number
  default     = 365
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets (local/test environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
