variable "aws_region" {
  description = "AWS region of the deployment (LAKEHOUSE_AWS_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "LAKEHOUSE_NAME_PREFIX of production: every bucket, Glue database, workgroup and table name derives from it (lakehouse/settings.py)."
  type        = string
  default     = "ecom-lakehouse-prod"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "image_tag" {
  description = "Tag of the lakehouse image in ECR to run (git SHA recommended; tags are immutable)."
  type        = string
}

variable "marketing_api_url" {
  description = "Base URL of the marketing REST API (https); empty leaves the marketing load off."
  type        = string
  default     = ""
}

variable "oltp" {
  description = "OLTP PostgreSQL source captured by Debezium and read by runs (database shop, user lakehouse)."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = optional(string, "shop")
    user     = optional(string, "lakehouse")
  })
}

variable "oltp_source_cidrs" {
  description = "CIDRs of the OLTP source database (egress on 5432 from Dagster runs and MSK Connect)."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR block of the lakehouse VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "profile" {
  description = "Deployment profile (terraform/COSTS.md): \"small\" (default, <= $45/month: Kinesis + the embedded Debezium publisher in the always-on task, Fargate Spot, no NAT gateway, db.t4g.micro) or \"scale\" (MSK Serverless + MSK Connect, NAT gateway, private subnets, on-demand Fargate, db.t4g.small). docs/deploy.md says when to move."
  type        = string
  default     = "small"
  validation {
    condition     = contains(["small", "scale"], var.profile)
    error_message = "profile must be \"small\" or \"scale\"."
  }
}

variable "create_cdc_connector" {
  description = "Profile scale: create the Debezium MSK Connect connector; set true after uploading the plugin zip to the artifacts bucket."
  type        = bool
  default     = false
}

variable "cdc_kinesis_shards" {
  description = "Profile small: provisioned shards of the CDC stream (LAKEHOUSE_CDC_KINESIS_SHARDS); 1 shard = 1,000 changes/s."
  type        = number
  default     = 1
}

variable "cdc_sink_pace_seconds" {
  description = "Minimum seconds between two batches of the always-on CDC sink: the freshness of silver in prod (history: up to 5x this), and what bounds its S3 requests (docs/deploy.md, terraform/COSTS.md). null: the profile's (small 600, scale 60)."
  type        = number
  default     = null
  validation {
    condition     = var.cdc_sink_pace_seconds == null || (coalesce(var.cdc_sink_pace_seconds, 0) >= 0 && coalesce(var.cdc_sink_pace_seconds, 0) <= 3600)
    error_message = "cdc_sink_pace_seconds must be between 0 and 3600."
  }
}

variable "dagster_db_password_version" {
  description = "Raise by one to rotate the Dagster database password: the apply generates a new one and writes it to RDS and to the secret <name_prefix>/dagster-db; then force a new deployment of the service (docs/deploy.md)."
  type        = number
  default     = 1
}

variable "manage_glue_catalog_encryption" {
  description = "Opt-in: let this stack own the ACCOUNT-WIDE Glue Data Catalog encryption settings (SSE-KMS with the lakehouse key). Only in an account dedicated to the lakehouse; plans warn while it is on."
  type        = bool
  default     = false
}

variable "create_dynamodb_tables" {
  description = "Create the DynamoDB source tables (false if the shop application already owns <name_prefix>-carts|sessions|reviews)."
  type        = bool
  default     = true
}

variable "athena_bytes_scanned_cutoff" {
  description = "Athena per-query scan limit in bytes."
  type        = number
  default     = 107374182400
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "alert_email" {
  description = "Optional e-mail address subscribed to the alerts SNS topic (empty: none; see docs/operations.md)."
  type        = string
  default     = ""
}
