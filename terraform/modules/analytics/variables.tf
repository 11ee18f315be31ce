variable "name" {
  type        = string
  description = "Name prefix of every resource (project-environment)."
}

variable "archive_bucket" {
  type        = string
  description = "Name of the archive bucket the processor writes raw/ and quarantine/ to."
}

variable "archive_bucket_arn" {
  type        = string
  description = "ARN of the archive bucket."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the query results (and decrypts the archive)."
}

variable "named_queries" {
  type = map(object({
    description = string
    query       = string
  }))
  description = "Named queries of the workgroup by name (the environment root renders src/iotpm/analytics/sql/*.sql)."
  default     = {}
}

variable "projection_years" {
  type        = tuple([number, number])
  description = "First and last year the partition projection covers (year=YYYY under raw/ and quarantine/)."
  default     = [2024, 2099]

  validation {
    condition     = var.projection_years[0] >= 2000 && var.projection_years[0] <= var.projection_years[1]
    error_message = "projection_years must be [first, last] with 2000 <= first <= last."
  }
}

variable "bytes_scanned_cutoff" {
  type        = number
  description = "Bytes one query may scan before Athena cancels it (at least 10 MB)."
  default     = 10737418240 # 10 GiB

  validation {
    condition     = var.bytes_scanned_cutoff >= 10485760
    error_message = "Athena's smallest per-query cutoff is 10 MB (10485760 bytes)."
  }
}

variable "results_expiration_days" {
  type        = number
  description = "Days query results are kept in the results bucket."
  default     = 30

  validation {
    condition     = var.results_expiration_days >= 1
    error_message = "results_expiration_days must be at least 1."
  }
}

variable "force_destroy_results" {
  type        = bool
  description = "Let terraform destroy the results bucket while it holds results (disposable environments)."
}

variable "tls_only" {
  type        = bool
  description = "Deny every request to the results bucket that does not use TLS (off only on the local emulator, which speaks plain HTTP)."
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
