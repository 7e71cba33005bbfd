variable "name_prefix" {
  description = "Prefix of names (LAKEHOUSE_NAME_PREFIX): DynamoDB tables are <name_prefix>-<logical name>."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "dynamodb_tables" {
  description = "DynamoDB source tables: logical name => string hash-key attribute (lakehouse.settings.DYNAMODB_TABLES)."
  type        = map(string)
  default = {
    carts    = "cart_id"
    sessions = "session_id"
    reviews  = "review_id"
  }
}

variable "create_dynamodb_tables" {
  description = "Create the DynamoDB tables (false when the shop application already owns them; IAM still scopes to these names)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Deletion protection of the DynamoDB tables (disable only for throw-away local stacks)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key (DynamoDB SSE, Secrets Manager)."
  type        = string
}

variable "create_oltp_secret" {
  description = "Create the Secrets Manager secret with the OLTP source connection (user lakehouse, generated password)."
  type        = bool
  default     = true
}

variable "oltp" {
  description = "OLTP PostgreSQL source (Debezium and Dagster runs connect to it): host, port, database and user."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = optional(string, "shop")
    user     = optional(string, "lakehouse")
  })
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the Secrets Manager secret after deletion (0 = immediate, local only)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
