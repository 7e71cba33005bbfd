variable "endpoint" {
  description = "Emulator endpoint (LAKEHOUSE_S3_ENDPOINT_URL of the local stack)."
  type        = string
  default     = "http://localhost:4566"
}

variable "aws_region" {
  description = "Region the emulator pretends to be (LAKEHOUSE_AWS_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "LAKEHOUSE_NAME_PREFIX of the local stack (settings default)."
  type        = string
  default     = "ecom-lakehouse"
}

variable "create_athena_workgroup" {
  description = "Create the Athena workgroup (moto supports it; LocalStack only in its paid tiers)."
  type        = bool
  default     = false
}
