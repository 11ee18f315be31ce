variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "stream_mode" {
  type        = string
  description = "ON_DEMAND (scales itself) or PROVISIONED (fixed shards, cheaper at steady load)."

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  type        = number
  description = "Shards when stream_mode is PROVISIONED (1 MB/s or 1,000 records/s in per shard)."

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number from 1 to 500."
  }
}

variable "retention_hours" {
  type        = number
  description = "How long records stay in the stream (24 to 8760 hours); the processor can replay this far back."

  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760
    error_message = "retention_hours must be between 24 and 8760."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the stream."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
