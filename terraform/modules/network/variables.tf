variable "name_prefix" {
  description = "Prefix of every resource name (LAKEHOUSE_NAME_PREFIX)."
  type        = string
}

variable "aws_region" {
  description = "Region of the VPC (used for the gateway endpoint service names)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into /20 subnets (public first, then private)."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /18 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zone names to use (at least 2: MSK Serverless and RDS subnet groups need two AZs). Pinned explicitly so a new AZ never changes the subnet layout."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Give 2 or 3 availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper) instead of one per AZ (zone-redundant)."
  type        = bool
  default     = true
}

variable "oltp_source_cidrs" {
  description = "CIDRs where the OLTP PostgreSQL source (Debezium source, LAKEHOUSE_POSTGRES_HOST) lives; reachable on 5432 from Dagster runs and MSK Connect."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the flow-log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the VPC flow-log group."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
