variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "environment" {
  type        = string
  description = "Environment name, passed to the function."
}

variable "zip_path" {
  type        = string
  description = "API zip from lambda_build/build.py."
}

variable "architecture" {
  type        = string
  description = "x86_64 or arm64 (must match the zip)."
}

variable "memory_mb" {
  type        = number
  description = "Memory of the API function, in MB."
  default     = 512
}

variable "tables" {
  type        = map(string)
  description = "DynamoDB table names by role."
}

variable "table_arns" {
  type        = map(string)
  description = "DynamoDB table ARNs by role."
}

variable "stage_name" {
  type        = string
  description = "Stage of the REST API (part of its URL)."
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,64}$", var.stage_name))
    error_message = "stage_name must be letters, digits or _ (at most 64)."
  }
}

variable "xray_sampling_rate" {
  type        = number
  description = "Fraction of the stage's requests X-Ray traces (a sampling rule for this stage, no reservoir; the API function follows the stage's decision). null: X-Ray's default rule (the first request each second and 5 % of the rest, so nearly every request of a quiet API)."

  validation {
    condition     = var.xray_sampling_rate == null ? true : (var.xray_sampling_rate >= 0 && var.xray_sampling_rate <= 1)
    error_message = "xray_sampling_rate must be null or a fraction from 0 to 1."
  }
}

variable "throttle_rate" {
  type        = number
  description = "Steady requests per second allowed per API key."
}

variable "throttle_burst" {
  type        = number
  description = "Burst of requests allowed per API key."
}

variable "quota_per_day" {
  type        = number
  description = "Requests per API key per day."

  validation {
    condition     = var.quota_per_day >= 1
    error_message = "quota_per_day must be at least 1."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the environment's data."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's and the access log groups, in days."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "manage_account_logging_role" {
  type        = bool
  description = "Create API Gateway's account-wide CloudWatch Logs role and set it (aws_api_gateway_account). Needed once per account and region; false where another stack already sets it."
}
