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

variable "nat_gateway" {
  description = "Create NAT gateway(s) so tasks in the private subnets reach AWS APIs and the internet (~$37/month each). false: no NAT; tasks run in the public subnets with a public IPv4 address and egress-only security groups (profile small)."
  type        = bool
  default     = true
}

variable "flow_log_traffic_type" {
  description = "Traffic recorded by the VPC flow logs: ALL, ACCEPT or REJECT (REJECT keeps the CloudWatch ingestion of a small deployment near zero)."
  type        = string
  default     = "ALL"
  validation {
    condition     = contains(["ALL", "ACCEPT", "REJECT"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ALL, ACCEPT or REJECT."
  }
}

variable "single_nat_gateway" {
  description = "With nat_gateway: one NAT gateway for all private subnets (cheaper) instead of one per AZ (zone-redundant)."
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

variable "enable_msk" {
  description = "Create the security groups of MSK Serverless and MSK Connect (profile scale)."
  type        = bool
  default     = true
}
