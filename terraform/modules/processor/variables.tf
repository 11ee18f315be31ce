variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "environment" {
  type        = string
  description = "Environment name, passed to the function (dimension of its metrics)."
}

variable "zip_path" {
  type        = string
  description = "Processor zip from lambda_build/build.py."
}

variable "architecture" {
  type        = string
  description = "x86_64 or arm64 (must match the zip)."
}

variable "memory_mb" {
  type        = number
  description = "Memory of the processor, in MB (CPU grows with it)."
}

variable "timeout_s" {
  type        = number
  description = "Processor timeout in seconds (1 to 600: with write_behind, the hourly idle-shard job waits a batch's timeout + 30 s inside the compaction function's 900 s)."
  default     = 120

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 600
    error_message = "timeout_s must be between 1 and 600: the idle-shard job waits the processor's timeout + 30 s inside the compaction function's 900 s (Lambda's most)."
  }
}

variable "stream_arn" {
  type        = string
  description = "Kinesis stream the processor reads."
}

variable "batch_size" {
  type        = number
  description = "Records per invocation (1 to 10,000)."

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "batching_window_s" {
  type        = number
  description = "Seconds to gather records before invoking (0 to 300)."

  validation {
    condition     = var.batching_window_s >= 0 && var.batching_window_s <= 300
    error_message = "batching_window_s must be between 0 and 300."
  }
}

variable "parallelization_factor" {
  type        = number
  description = "Concurrent batches per shard (1 to 10; order per device is kept, the key is the device id)."
  default     = 1

  validation {
    condition     = var.parallelization_factor >= 1 && var.parallelization_factor <= 10
    error_message = "parallelization_factor must be between 1 and 10."
  }
}

variable "max_retries" {
  type        = number
  description = "Retries of a failing batch before it goes to the on-failure queue."

  validation {
    condition     = var.max_retries >= 0 && var.max_retries <= 10000
    error_message = "max_retries must be between 0 and 10000."
  }
}

variable "max_record_age_s" {
  type        = number
  description = "Records older than this go to the on-failure queue instead of being retried (60 to 604800)."

  validation {
    condition     = var.max_record_age_s >= 60 && var.max_record_age_s <= 604800
    error_message = "max_record_age_s must be between 60 and 604800."
  }
}

variable "tables" {
  type        = map(string)
  description = "DynamoDB table names by role (readings, devices, anomalies, rollups)."
}

variable "table_arns" {
  type        = map(string)
  description = "DynamoDB table ARNs by role."
}

variable "archive_bucket" {
  type        = string
  description = "Archive bucket name."
}

variable "archive_bucket_arn" {
  type        = string
  description = "Archive bucket ARN."
}

variable "alerts_topic_arn" {
  type        = string
  description = "SNS topic for alarm raise/clear alerts."
}

variable "timestream_database" {
  type        = string
  description = "Timestream database (empty: the sink is off)."
  default     = ""
}

variable "timestream_table" {
  type        = string
  description = "Timestream table (empty: the sink is off)."
  default     = ""
}

variable "timestream_table_arn" {
  type        = string
  description = "Timestream table ARN (empty: the sink is off)."
  default     = ""
}

variable "readings_ttl_days" {
  type        = number
  description = "Days a reading stays in DynamoDB."
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
  description = "Retention of the processor's log group, in days."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "reserved_concurrency" {
  type        = number
  description = "Concurrency reserved for the processor, so API load cannot starve it (-1: none). Needs shards x parallelization_factor to keep up; the account must keep 10 unreserved."

  validation {
    condition     = var.reserved_concurrency == -1 || var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be -1 (none) or at least 1."
  }
}

variable "state_bucket" {
  description = "Bucket of the per-shard snapshots; empty writes every batch through to the tables (no write-behind)."
  type        = string
  default     = ""
}

variable "state_bucket_arn" {
  description = "ARN of state_bucket (empty when it is)."
  type        = string
  default     = ""
}

variable "compact_interval_s" {
  description = "Write-behind: how often a shard's logged readings are written to the readings chunks, rollups and device records."
  type        = number
  validation {
    condition     = var.compact_interval_s >= 10 && var.compact_interval_s <= 3600
    error_message = "compact_interval_s must be 10..3600 seconds."
  }
}

variable "max_channels" {
  description = "A device's channel set (its metric names) stops growing at this many; names past it are refused (too_many_metrics) and counted per device (ReadingsRefused). At most 64: the detector's C kernel takes 64 channels, and a device's hour of minute rollups stays well inside one DynamoDB item."
  type        = number
  validation {
    condition     = var.max_channels >= 1 && var.max_channels <= 64 && floor(var.max_channels) == var.max_channels
    error_message = "max_channels must be a whole number 1..64."
  }
}

variable "max_channels_by_type" {
  description = "Per device type, another channel cap than max_channels (e.g. { vibration_probe = 8 }); 1..64 each."
  type        = map(number)
  validation {
    condition     = alltrue([for k, v in var.max_channels_by_type : v >= 1 && v <= 64 && floor(v) == v && can(regex("^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,63}$", k))])
    error_message = "max_channels_by_type maps a device type name to a whole number 1..64."
  }
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing of the processor: Active (a trace per sampled batch) or PassThrough (none: the stream carries no trace header). Metrics, logs and alarms are the same in both."

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be Active or PassThrough."
  }
}
