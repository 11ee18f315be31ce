variable "name" {
  type        = string
  description = "Bucket name (globally unique: the callers add the account id)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "A bucket name is 3-63 lower-case letters, digits, . or -, starting and ending with a letter or digit."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the bucket's default encryption (SSE-KMS, with a bucket key)."
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the bucket while it holds objects (only for disposable environments: the local one)."
  default     = false
}

variable "tls_only" {
  type        = bool
  description = "Deny every request that does not use TLS (aws:SecureTransport). Only the local emulator, which speaks plain HTTP, turns it off."
  default     = true
}

variable "object_lock" {
  type = object({
    mode = string # GOVERNANCE, COMPLIANCE, or NONE: Object Lock on, no default retention
    days = number
  })
  description = "Object Lock with a default retention (null: no Object Lock; it can only be chosen when the bucket is created)."
  default     = null

  validation {
    condition     = var.object_lock == null || try(contains(["GOVERNANCE", "COMPLIANCE", "NONE"], var.object_lock.mode) && var.object_lock.days >= 1 && var.object_lock.days <= 36500, false)
    error_message = "object_lock.mode must be GOVERNANCE, COMPLIANCE or NONE, and object_lock.days between 1 and 36500."
  }
}

variable "lifecycle_rules" {
  type = list(object({
    id                         = string
    prefix                     = optional(string)          # null: the whole bucket
    transitions                = optional(map(number), {}) # storage class => days after creation
    noncurrent_transitions     = optional(map(number), {}) # storage class => days after becoming noncurrent
    expiration_days            = optional(number)
    noncurrent_expiration_days = optional(number)
  }))
  description = "Lifecycle rules (each enabled), beside the module's own rule that aborts incomplete uploads. At least one: every bucket says how long what it holds stays."

  validation {
    condition     = length(var.lifecycle_rules) > 0
    error_message = "Give at least one lifecycle rule."
  }
  validation {
    condition     = alltrue([for r in var.lifecycle_rules : alltrue([for c, d in r.transitions : d >= 30 || c != "STANDARD_IA"])])
    error_message = "S3 accepts Standard-IA transitions from 30 days on."
  }
}

variable "abort_incomplete_upload_days" {
  type        = number
  description = "Days after which the parts of an upload that never completed are deleted (a rule on the whole bucket)."
  default     = 1

  validation {
    condition     = var.abort_incomplete_upload_days >= 1
    error_message = "abort_incomplete_upload_days must be at least 1."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
