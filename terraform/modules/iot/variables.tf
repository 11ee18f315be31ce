variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "things" {
  type = map(object({
    device_type = string
    site        = string
    line        = string
  }))
  description = "The fleet: thing name (= device id) => machine type, site and line."
  default     = {}

  validation {
    condition     = alltrue([for k, _ in var.things : can(regex("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", k))])
    error_message = "Thing names are device ids: letters, digits, _ . : - (at most 128, first a letter or digit)."
  }
}

variable "topic_prefix" {
  type        = string
  description = "Devices publish to <topic_prefix>/<thing name>/telemetry."
  default     = "iotpm"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,30}$", var.topic_prefix))
    error_message = "topic_prefix must be lower-case letters, digits, _ or - (at most 31)."
  }
}

variable "stream_name" {
  type        = string
  description = "Kinesis stream the topic rule writes to."
}

variable "stream_arn" {
  type        = string
  description = "ARN of that stream."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the stream (the rule's role encrypts with it)."
}

variable "error_log_retention_days" {
  type        = number
  description = "Retention of the topic rule's error log group, in days."
  default     = 30
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
