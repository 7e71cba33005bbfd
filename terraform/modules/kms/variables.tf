variable "name_prefix" {
  description = "Prefix of every resource name (LAKEHOUSE_NAME_PREFIX); see lakehouse/settings.py."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 chars of lowercase letters, digits and '-' (same rule as lakehouse.settings)."
  }
}

variable "aws_region" {
  description = "Region of the key (used to scope the CloudWatch Logs service principal)."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion completes."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
