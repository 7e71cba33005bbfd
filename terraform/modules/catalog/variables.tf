variable "name_prefix" {
  description = "Prefix of names (LAKEHOUSE_NAME_PREFIX): Glue databases are <prefix with - as _>_bronze|_silver|_marts, the Athena workgroup is <name_prefix>."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "lake_bucket" {
  description = "Name of the lake bucket holding the Delta tables (bronze/, silver/) and the dbt Iceberg marts (marts/)."
  type        = string
}

variable "athena_results_bucket" {
  description = "Name of the bucket receiving Athena query results."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key (Athena result encryption, Glue catalog encryption)."
  type        = string
}

variable "bronze_tables" {
  description = "Bronze Delta tables per source: registered as <source>_<table> at s3://<lake>/bronze/<source>/<table>."
  type        = map(list(string))
}

variable "silver_tables" {
  description = "Silver current-state Delta tables, registered at s3://<lake>/silver/<table>."
  type        = list(string)
}

variable "silver_history_tables" {
  description = "Tables with an SCD2 history, registered as <table>_history at s3://<lake>/silver/<table>_history."
  type        = list(string)
  default     = []
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Athena per-query data-scanned limit in bytes (minimum 10 MB); queries above it are cancelled."
  type        = number
  default     = 107374182400 # 100 GiB, about $0.50 per query at $5/TB
  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "Athena requires bytes_scanned_cutoff_per_query >= 10485760 (10 MB)."
  }
}

variable "create_athena_workgroup" {
  description = "Create the Athena workgroup (false for emulators without Athena)."
  type        = bool
  default     = true
}

variable "manage_catalog_encryption" {
  description = "Opt-in: manage the Glue Data Catalog encryption settings (SSE-KMS with the lakehouse key). They are ACCOUNT- and REGION-WIDE: every other catalog user of the account then needs kms:Decrypt on this key, and destroying this stack leaves the setting pointing at a key scheduled for deletion. Enable only in an account dedicated to the lakehouse; a plan with it on prints a warning."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
