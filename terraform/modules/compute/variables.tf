variable "name_prefix" {
  description = "Prefix of resource names (LAKEHOUSE_NAME_PREFIX)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "aws_region" {
  description = "Region (LAKEHOUSE_AWS_REGION, service endpoints in policies)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the tasks, the database and the Cloud Map namespace."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for ECS tasks, RDS and EMR Serverless."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups from the network module: needs keys dagster, database and spark."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["dagster", "database", "spark"] : contains(keys(var.security_group_ids), k)])
    error_message = "security_group_ids must contain dagster, database and spark."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key (RDS, secrets, logs, ECR, S3 objects)."
  type        = string
}

variable "buckets" {
  description = "Bucket names by role: landing, lake, athena_results, artifacts."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["landing", "lake", "athena_results", "artifacts"] : contains(keys(var.buckets), k)])
    error_message = "buckets must contain landing, lake, athena_results and artifacts."
  }
}

variable "glue_databases" {
  description = "Glue database name per layer (bronze, silver, marts)."
  type        = map(string)
}

variable "athena_workgroup" {
  description = "Athena workgroup used by dbt (LAKEHOUSE_ATHENA_WORKGROUP)."
  type        = string
}

variable "dynamodb_table_names" {
  description = "DynamoDB source table names (read by ingestion runs)."
  type        = map(string)
}

variable "kafka" {
  description = "MSK Serverless cluster (all \"\" when streaming is disabled): ARN, SASL/IAM bootstrap servers, topic/group ARN prefixes and the CDC topic name pattern (<prefix>.<schema>.*) read by runs and the sensor."
  type        = object({
    cluster_arn       = string
    bootstrap_servers = string
    topic_arn_prefix  = string
    group_arn_prefix  = string
    cdc_topic_pattern = string
  })
}

variable "kafka_consumer_group_prefix" {
  description = "Consumer groups the Dagster runs may use on MSK: <prefix>*."
  type        = string
  default     = "lakehouse"
}

variable "oltp" {
  description = "OLTP PostgreSQL source the runs connect to (LAKEHOUSE_POSTGRES_*; password from oltp_secret_arn)."
  type        = object({
    host     = string
    port     = optional(number, 5432)
    database = optional(string, "shop")
    user     = optional(string, "lakehouse")
  })
}

variable "oltp_secret_arn" {
  description = "Secrets Manager secret with the OLTP password (JSON key \"password\")."
  type        = string
}

variable "marketing_api_url" {
  description = "Base URL of the marketing REST API the dlt loader reads (https). Empty: the marketing schedule stays off and its asset fails with a clear message."
  type        = string
  default     = ""
  validation {
    condition     = var.marketing_api_url == "" || can(regex("^https://[^\\s/?#]+(/[^\\s?#]*)?$", var.marketing_api_url))
    error_message = "marketing_api_url must be empty or an https URL without query or fragment."
  }
}

variable "image_tag" {
  description = "Tag of the lakehouse image in the ECR repository (immutable tags: deploy = change this; rollback = previous tag)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable Docker tag (not \"latest\")."
  }
}

variable "task_sizes" {
  description = "Fargate cpu (units) and memory (MiB) per component: webserver, daemon, code_location, run."
  type        = map(object({
    cpu    = number
    memory = number
  }))
  default = {
    webserver     = { cpu = 512, memory = 1024 }
    daemon        = { cpu = 512, memory = 1024 }
    code_location = { cpu = 512, memory = 2048 }
    run           = { cpu = 1024, memory = 4096 }
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the Dagster storage database."
  type        = string
  default     = "db.t4g.small"
}

variable "db_engine_version" {
  description = "PostgreSQL major version of the Dagster storage database (minor upgrades are automatic)."
  type        = string
  default     = "16"
}

variable "db_allocated_storage" {
  description = "Initial storage (GiB); autoscaling up to db_max_allocated_storage."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Multi-AZ standby for the Dagster storage database (doubles its cost)."
  type        = bool
  default     = false
}

variable "db_performance_insights_enabled" {
  description = "Performance Insights on the Dagster database (free 7-day tier; not offered on some micro classes)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Automated backup (PITR) retention of the Dagster database."
  type        = number
  default     = 7
  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "emr_release_label" {
  description = "EMR Serverless release (Spark + Delta Lake) for heavy jobs."
  type        = string
  default     = "emr-7.8.0"
}

variable "emr_maximum_capacity" {
  description = "Upper bound of the EMR Serverless application (cost guard)."
  type        = object({
    cpu    = string
    memory = string
    disk   = string
  })
  default = { cpu = "16 vCPU", memory = "64 GB", disk = "200 GB" }
}

variable "log_retention_days" {
  description = "Retention of the ECS log groups."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
