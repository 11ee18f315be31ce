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
  description = "A Lambda zip holding iotpm.handlers.compaction and DuckDB (the analytics extra)."
}

variable "architecture" {
  type        = string
  description = "Lambda architecture (x86_64 or arm64), as the zip was built."
}

variable "memory_mb" {
  type        = number
  description = "Memory of the function, in MB (DuckDB works in it; an hour of 100 readings/s is ~15 MB of gzip JSON)."
  default     = 2048

  validation {
    condition     = var.memory_mb >= 512 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 512 and 10240."
  }
}

variable "archive_bucket" {
  type        = string
  description = "Name of the archive bucket (raw/, quarantine/ read; compacted/ written)."
}

variable "archive_bucket_arn" {
  type        = string
  description = "ARN of the archive bucket."
}

variable "glue_database" {
  type        = string
  description = "Glue database of the archive tables (the analytics module's)."
}

variable "projection_years" {
  type        = tuple([number, number])
  description = "First and last year the partition projection of compacted_readings covers."
  default     = [2024, 2099]

  validation {
    condition     = var.projection_years[0] >= 2000 && var.projection_years[0] <= var.projection_years[1]
    error_message = "projection_years must be [first, last] with 2000 <= first <= last."
  }
}

variable "grace_s" {
  type        = number
  description = "Seconds after an hour ends before it is compacted: at least the event source mapping's maximum record age."
  default     = 7200

  validation {
    condition     = var.grace_s >= 0
    error_message = "grace_s must not be negative."
  }
}

variable "window_h" {
  type        = number
  description = "Hours a retry's copy of a record can lag its first copy (the mapping's maximum record age, rounded up, plus one)."
  default     = 3

  validation {
    condition     = var.window_h >= 1 && var.window_h <= 48
    error_message = "window_h must be between 1 and 48."
  }
}

variable "max_hours" {
  type        = number
  description = "Hours one run compacts at most (the next run goes on)."
  default     = 48

  validation {
    condition     = var.max_hours >= 1
    error_message = "max_hours must be at least 1."
  }
}

variable "schedule_expression" {
  type        = string
  description = "When the job runs (EventBridge Scheduler expression)."
  default     = "cron(15 * * * ? *)"
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the function (S3 through the gateway endpoint)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the function."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the environment (archive, logs, schedule)."
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

variable "write_behind" {
  type = object({
    state_bucket        = string
    state_bucket_arn    = string
    tables              = map(string) # readings, devices, anomalies, rollups
    table_arns          = map(string)
    readings_ttl_days   = number
    compact_interval_s  = number
    processor_timeout_s = number
  })
  description = "The processor's write-behind stores, when it holds its table writes back: the function then also compacts, every hour, the batch log of shards no batch compacted for idle_after_s (a plant stopped), so the log's items can expire a week after they were written. null: no such job."
  default     = null

  # The job claims a shard's snapshot, waits the processor's timeout + 30 s (a batch that
  # read the snapshot before the claim has then finished), compacts and commits, all in
  # one run of this function (900 s, Lambda's most): a processor timeout over 600 s would
  # leave the compaction itself under 270 s, and one over 870 s no time at all.
  validation {
    condition     = var.write_behind == null || try(var.write_behind.processor_timeout_s >= 1 && var.write_behind.processor_timeout_s <= 600, false)
    error_message = "write_behind.processor_timeout_s must be between 1 and 600: the idle-shard job waits it + 30 s inside the compaction function's 900 s."
  }
}

variable "idle_after_s" {
  type        = number
  description = "A shard is the idle-shard job's once no batch compacted it for this long (seconds)."
  default     = 3600

  validation {
    condition     = var.idle_after_s >= 600 && var.idle_after_s <= 86400
    error_message = "idle_after_s must be between 600 and 86400: the batch log's items expire after 7 days."
  }
}
