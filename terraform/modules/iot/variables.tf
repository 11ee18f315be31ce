variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "things" {
  type = map(object({
    device_type = string
    site        = string
    line        = string
    gateway     = optional(string)
  }))
  description = "The fleet: thing name (= device id) => machine type, site, line and, for a device behind a gateway, the gateway thing it publishes through (device_type \"gateway\" makes a thing a gateway)."

  validation {
    condition     = alltrue([for k, _ in var.things : can(regex("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", k))])
    error_message = "Thing names are device ids: letters, digits, _ . : - (at most 128, first a letter or digit)."
  }
}

variable "topic_prefix" {
  type        = string
  description = "Devices publish to $aws/rules/<rule>/<topic_prefix>/<thing name>/telemetry (IoT Basic Ingest; the rule's own filter is <topic_prefix>/+/telemetry)."

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
  description = "KMS key of the stream and of the rule-errors bucket (the rule's role encrypts with it)."
}

variable "error_retention_days" {
  type        = number
  description = "Days a message the rule failed to deliver stays in the rule-errors bucket (replayed or not)."
  default     = 30

  validation {
    condition     = var.error_retention_days >= 1
    error_message = "error_retention_days must be at least 1."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the rule-errors bucket with its objects (only the local environment)."
}

variable "tls_only" {
  type        = bool
  description = "Deny plain-HTTP requests to the rule-errors bucket (off only on the local emulator, which speaks HTTP)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
