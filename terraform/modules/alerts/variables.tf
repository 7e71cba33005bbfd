variable "name_prefix" {
  description = "Prefix of names (LAKEHOUSE_NAME_PREFIX): the topic is <name_prefix>-alerts."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the topic at rest (publishers need kms:GenerateDataKey via SNS)."
  type        = string
}

variable "email" {
  description = "Optional e-mail address subscribed to the alerts (empty: none). SNS sends it a confirmation link."
  type        = string
  default     = ""
  validation {
    condition     = var.email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.email))
    error_message = "email must be empty or an e-mail address."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
