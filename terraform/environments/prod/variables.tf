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
  type        = object({
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

variable "enable_streaming" {
  description = "Deploy MSK Serverless + MSK Connect (the largest cost item, see terraform/README.md)."
  type        = bool
  default     = true
}

variable "create_cdc_connector" {
  description = "Create the Debezium MSK Connect connector; set true after uploading the plugin zip to the artifacts bucket."
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
