variable "name" {
  type        = string
  description = "Name prefix of every resource (project-environment)."
}

variable "environment" {
  type        = string
  description = "Environment name (IOTPM_ENVIRONMENT of the function)."
}

variable "zip_path" {
  type        = string
  description = "The API's Lambda zip: the report handler (iotpm.handlers.report) ships in it with the same dependencies."
}

variable "architecture" {
  type        = string
  description = "Lambda architecture (x86_64 or arm64), as the zip was built."
}

variable "tables" {
  type        = map(string)
  description = "DynamoDB table names by role (readings, devices, anomalies, rollups)."
}

variable "table_arns" {
  type        = map(string)
  description = "DynamoDB table ARNs by role."
}

variable "archive_bucket_arn" {
  type        = string
  description = "ARN of the archive bucket Athena reads."
}

variable "results_bucket" {
  type        = string
  description = "Bucket of the Athena results; reports are written under its reports/ prefix."
}

variable "results_bucket_arn" {
  type        = string
  description = "ARN of the results bucket."
}

variable "athena_workgroup" {
  type        = string
  description = "Athena workgroup that runs the data-quality named queries."
}

variable "athena_workgroup_arn" {
  type        = string
  description = "ARN of the Athena workgroup."
}

variable "glue_database" {
  type        = string
  description = "Glue database of the archive tables."
}

variable "summary_topic_arn" {
  type        = string
  description = "SNS topic the report's summary is published to (empty: none)."
  default     = ""
}

variable "schedule_expression" {
  type        = string
  description = "When the reports run (EventBridge Scheduler expression)."

  validation {
    condition     = can(regex("^(cron|rate|at)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be cron(...), rate(...) or at(...)."
  }
}

variable "schedule_timezone" {
  type        = string
  description = "Time zone of the schedule expression (IANA name)."
  default     = "UTC"
}

variable "scopes" {
  type = map(object({
    site  = optional(string)
    line  = optional(string)
    hours = optional(number, 24)
  }))
  description = "One report per entry (a schedule each): the whole fleet, a site, or a line; hours is the period."

  validation {
    condition     = alltrue([for s in values(var.scopes) : s.hours > 0 && s.hours <= 2208])
    error_message = "A report's period is between 0 and 92 days (the API's longest range)."
  }
}

variable "in_vpc" {
  type        = bool
  description = "Run the report in the VPC (its calls to Athena then need an interface endpoint); false: outside any VPC, over AWS's public endpoints with IAM and TLS, with no path into the VPC."
  nullable    = false
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the function (when in_vpc)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the function."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the environment (tables, archive, results, logs, schedules)."
}

variable "log_retention_days" {
  type        = number
  description = "Days the function's logs are kept."
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
