variable "name" {
  type        = string
  description = "Full name of the function (project-environment-role)."
}

variable "description" {
  type        = string
  description = "What the function does."
}

variable "zip_path" {
  type        = string
  description = "Path of the zip built by lambda_build/build.py."
}

variable "handler" {
  type        = string
  description = "Module path and attribute of the handler, e.g. iotpm.handlers.processor.handler."
}

variable "architecture" {
  type        = string
  description = "x86_64 or arm64 (must match the zip: lambda_build/build.py --arch)."
  default     = "arm64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_mb" {
  type        = number
  description = "Memory (and so CPU) of the function, in MB."
  default     = 1024

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 128 and 10240."
  }
}

variable "timeout_s" {
  type        = number
  description = "Timeout in seconds."
  default     = 60

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 900
    error_message = "timeout_s must be between 1 and 900."
  }
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing: Active (the function samples and records its own traces) or PassThrough (it records a trace only when its caller's sampled one; a Kinesis-invoked function then records none)."
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be Active or PassThrough."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrency (-1: unreserved)."
  default     = -1
}

variable "environment" {
  type        = map(string)
  description = "Environment variables (names of tables, topics, ... from other modules)."
  default     = {}
}

variable "policy_json" {
  type        = string
  description = "IAM policy document with exactly what the function's code calls."
}

variable "in_vpc" {
  type        = bool
  description = "Run in the VPC's private subnets (subnet_ids, security_group_ids); false: outside any VPC, reaching AWS's public endpoints with IAM and TLS, no network interface and no path into the VPC."
  default     = true
  nullable    = false
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets to run in (when in_vpc)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the function."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group, in days."
  default     = 30
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the log group and the environment variables."
}

variable "dead_letter_arn" {
  type        = string
  description = "SQS queue for failed asynchronous invocations (empty: none)."
  default     = ""
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
