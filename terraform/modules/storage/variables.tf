variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the tables, the archive and Timestream."
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Continuous backups (35 days) on every table."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the tables (turn on in prod)."
}

variable "archive_ia_days" {
  type        = number
  description = "Days after which archived objects move to Standard-IA."
  default     = 30

  validation {
    condition     = var.archive_ia_days >= 30
    error_message = "S3 accepts Standard-IA transitions from 30 days on."
  }
}

variable "archive_glacier_days" {
  type        = number
  description = "Days after which archived objects move to Glacier Flexible Retrieval."
  default     = 90
}

variable "archive_expiration_days" {
  type        = number
  description = "Days after which archived objects expire (0 keeps them forever)."

  validation {
    condition     = var.archive_expiration_days >= 0
    error_message = "archive_expiration_days must be 0 (never) or a positive number of days."
  }
}

variable "object_lock_mode" {
  type        = string
  description = "Default Object Lock retention of the archive: GOVERNANCE, COMPLIANCE, or NONE (no default retention)."

  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE", "NONE"], var.object_lock_mode)
    error_message = "object_lock_mode must be GOVERNANCE, COMPLIANCE or NONE."
  }
}

variable "object_lock_days" {
  type        = number
  description = "Default retention in days for locked archive objects."

  validation {
    condition     = var.object_lock_days >= 1 && var.object_lock_days <= 36500
    error_message = "object_lock_days must be between 1 and 36500."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the archive and state buckets with their objects (only the local environment)."
}

variable "tls_only" {
  type        = bool
  description = "Deny every request to the buckets that does not use TLS (turned off only for the local emulator, which speaks plain HTTP)."
}

variable "enable_timestream" {
  type        = bool
  description = "Create the Timestream for LiveAnalytics sink. AWS accounts created after 2025-06-20 cannot create it: leave false there."
}

variable "timestream_memory_hours" {
  type        = number
  description = "Timestream memory-store retention, in hours."
  default     = 24
}

variable "timestream_magnetic_days" {
  type        = number
  description = "Timestream magnetic-store retention, in days."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "archive_noncurrent_days" {
  type        = number
  description = "Days a replaced or expired (noncurrent) archive version is kept before it is deleted, when archive_expiration_days is set."

  validation {
    condition     = var.archive_noncurrent_days >= 1
    error_message = "archive_noncurrent_days must be at least 1."
  }
}
