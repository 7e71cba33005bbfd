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
  description = "Private subnets (at least two AZs) of the RDS database; also the ECS tasks' subnets when task_subnet_ids is empty."
  type        = list(string)
}

variable "task_subnet_ids" {
  description = "Subnets of the ECS tasks (the always-on service task and the runs): private behind a NAT gateway, or public with assign_public_ip (profile small). Empty: private_subnet_ids."
  type        = list(string)
  default     = []
}

variable "assign_public_ip" {
  description = "Give ECS tasks a public IPv4 address (needed without a NAT gateway to reach AWS APIs; $0.005/hour each). Their security group accepts no inbound traffic either way."
  type        = bool
  default     = false
}

variable "service_capacity_provider" {
  description = "Capacity provider of the always-on service task: FARGATE_SPOT (interruptions restart it; everything in it resumes from durable state) or FARGATE."
  type        = string
  default     = "FARGATE"
  validation {
    condition     = contains(["FARGATE", "FARGATE_SPOT"], var.service_capacity_provider)
    error_message = "service_capacity_provider must be FARGATE or FARGATE_SPOT."
  }
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the cluster (billed as custom metrics; off in the small profile)."
  type        = bool
  default     = true
}

variable "cdc" {
  description = "CDC wiring: transport (kafka | kinesis, LAKEHOUSE_CDC_TRANSPORT), whether the embedded Debezium publisher runs as a container of the service task (kinesis: yes; kafka: MSK Connect publishes), the Kinesis stream (name, ARN, shards; empty for kafka) and the always-on sink's minimum seconds between batches (bounds S3 requests, see terraform/COSTS.md)."
  type = object({
    transport           = string
    publisher           = bool
    kinesis_stream_name = optional(string, "")
    kinesis_stream_arn  = optional(string, "")
    kinesis_shards      = optional(number, 1)
    sink_pace_seconds   = optional(number, 120)
  })
  validation {
    condition     = contains(["kafka", "kinesis"], var.cdc.transport) && (var.cdc.transport == "kafka" || var.cdc.kinesis_stream_arn != "")
    error_message = "cdc.transport must be kafka or kinesis (kinesis needs kinesis_stream_arn)."
  }
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
  type = object({
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
  type = object({
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
  description = "Fargate cpu (units) and memory (MiB) of the always-on service task (Dagster webserver, daemon and code server, the CDC sink and publisher) and of each run task."
  type = object({
    service = object({ cpu = number, memory = number })
    run     = object({ cpu = number, memory = number })
  })
  default = {
    service = { cpu = 1024, memory = 4096 }
    run     = { cpu = 1024, memory = 4096 }
  }
}

variable "ecr_keep_images" {
  description = "Images kept in ECR (the rollback window; each costs storage)."
  type        = number
  default     = 30
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
  description = "Performance Insights on the Dagster database (free 7-day tier; off in the small profile)."
  type        = bool
  default     = true
}

variable "db_monitoring_interval" {
  description = "RDS enhanced monitoring interval in seconds (0 = off; its OS metrics are billed as CloudWatch Logs)."
  type        = number
  default     = 60
  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval)
    error_message = "db_monitoring_interval must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "db_password_version" {
  description = "Version of the Dagster database password: raising it generates a new one and writes it to RDS and to the secret <name_prefix>/dagster-db in the same apply (rolling rotation, docs/deploy.md)."
  type        = number
  default     = 1
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

variable "emr_subnet_ids" {
  description = "Subnets of EMR Serverless jobs (with NAT: the private subnets). Empty: jobs run outside the VPC with AWS-managed internet access (they only touch S3 and CloudWatch Logs), which needs no NAT gateway."
  type        = list(string)
  default     = []
}

variable "emr_maximum_capacity" {
  description = "Upper bound of the EMR Serverless application (cost guard)."
  type = object({
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

variable "alerts_topic_arn" {
  description = "SNS topic of the notifications (LAKEHOUSE_ALERT_SNS_TOPIC_ARN); the service and run roles may publish to it. Used when alerts_enabled."
  type        = string
  default     = ""
}

variable "alerts_enabled" {
  description = "Whether an alerts topic is wired (known at plan time, unlike the topic's ARN: it decides which IAM policies exist)."
  type        = bool
  default     = false
}
