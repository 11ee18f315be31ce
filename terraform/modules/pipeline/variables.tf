# Every setting of an environment, declared here and nowhere else: the environment roots pass
# each through (scripts/terraform-passthrough.py generates them) with null where a tfvars
# leaves it unset, and `nullable = false` turns that null into the default below.

variable "project" {
  type        = string
  description = "Project name, the first part of every resource name."
  default     = "iotpm"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.project))
    error_message = "project must be 2-16 lower-case letters, digits or -, starting with a letter."
  }
}

variable "environment" {
  type        = string
  description = "Environment name: dev, staging, prod or local (part of every resource name)."

  validation {
    condition     = contains(["dev", "staging", "prod", "local"], var.environment)
    error_message = "environment must be one of dev, staging, prod, local."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "At least two availability zones for the private subnets."

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones so the Lambdas survive the loss of one."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the VPC."
  default     = "10.40.0.0/16"
  nullable    = false
}

variable "extra_interface_endpoints" {
  type        = list(string)
  description = "Interface endpoints beyond the ones the code needs (main.tf derives those from the services the Lambdas call), e.g. [\"xray\"]."
  default     = []
  nullable    = false
}

variable "things" {
  type = map(object({
    device_type = string
    site        = string
    line        = string
    gateway     = optional(string)
  }))
  description = "The fleet: thing name (= device id) => machine type, site, line and, for a device behind a gateway, the gateway thing it publishes through (device_type \"gateway\" makes a thing a gateway). The device registry is seeded from it once, when a thing is first deployed: a later change here to a deployed thing's site, line, type or gateway changes the IoT thing but not the registry the processor checks; change a deployed device with PUT /devices/{id}/registration or iotpm devices import (docs/operate.md)."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, t in var.things : t.gateway == null ? true : t.gateway != k && t.device_type != "gateway" && try(var.things[t.gateway].device_type == "gateway", false)])
    error_message = "A thing's gateway must name another thing (not itself) in things whose device_type is \"gateway\"; a gateway is not under a gateway."
  }
}

variable "lambda_architecture" {
  type        = string
  description = "x86_64 or arm64; the zips must be built for it (lambda_build/build.py --arch)."
  default     = "arm64"
  nullable    = false
}

variable "processor_zip" {
  type        = string
  description = "Path of the processor zip (lambda_build/out/processor-<arch>.zip)."
}

variable "api_zip" {
  type        = string
  description = "Path of the API zip (lambda_build/out/api-<arch>.zip)."
}

variable "compaction_zip" {
  type        = string
  description = "Path of the compaction zip, with DuckDB (lambda_build/out/compaction-<arch>.zip)."
}

variable "stream_mode" {
  type        = string
  description = "Kinesis capacity mode: ON_DEMAND (scales itself; bills every record as at least 1 KB and runs at least 4 shards, so every per-batch cost is 4x) or PROVISIONED (shard_count shards, each taking 1,000 records/s or 1 MB/s in)."
  default     = "ON_DEMAND"
  nullable    = false

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  type        = number
  description = "Shards when stream_mode is PROVISIONED: the fleet's readings/s / 1,000 (or its MB/s), times 2 for headroom, rounded up (docs/cost.md)."
  default     = 1
  nullable    = false

  validation {
    condition     = floor(var.shard_count) == var.shard_count && var.shard_count >= 1 && var.shard_count <= 500
    error_message = "shard_count must be a whole number from 1 to 500."
  }
}

variable "processor_tracing" {
  type        = string
  description = "X-Ray tracing of the processor: Active (a trace per sampled batch: Lambda's 1/s plus 5 %) or PassThrough (none, as the stream carries no trace header; the processor's metrics, logs and alarms are unchanged). The API keeps Active."
  default     = "Active"
  nullable    = false

  validation {
    condition     = contains(["Active", "PassThrough"], var.processor_tracing)
    error_message = "processor_tracing must be Active or PassThrough."
  }
}

variable "api_xray_sampling_rate" {
  type        = number
  description = "Fraction of the API's requests X-Ray traces (a sampling rule for its stage, no reservoir). null: X-Ray's default rule, which traces the first request each second and 5 % of the rest, so nearly every request of an API that gets well under one a second. Metrics, access logs and alarms see every request either way."
  default     = null

  validation {
    condition     = var.api_xray_sampling_rate == null ? true : (var.api_xray_sampling_rate >= 0 && var.api_xray_sampling_rate <= 1)
    error_message = "api_xray_sampling_rate must be null or a fraction from 0 to 1."
  }
}

variable "endpoint_az_count" {
  type        = number
  description = "Availability zones that hold the interface endpoints (the first n of availability_zones; null: all). An endpoint bills per AZ-hour; Lambdas in the other AZs reach it across AZs by the same DNS name. At least 2, so they survive the loss of one AZ."
  default     = null

  validation {
    condition     = var.endpoint_az_count == null ? true : (floor(var.endpoint_az_count) == var.endpoint_az_count && var.endpoint_az_count >= 2 && var.endpoint_az_count <= length(var.availability_zones))
    error_message = "endpoint_az_count must be null (all) or a whole number from 2 to the number of availability_zones."
  }
}

variable "report_in_vpc" {
  type        = bool
  description = "Run the scheduled report function in the VPC (true: the pipeline adds an Athena interface endpoint for it, ~$8 an AZ a month); false: outside any VPC, reaching Athena, S3, DynamoDB and SNS over AWS's public endpoints with IAM and TLS, with no path into the VPC (or the plant's network behind it). A security-posture choice, not a delivery guarantee: the report only reads and publishes a summary (docs/deploy.md)."
  default     = true
  nullable    = false
}

variable "stream_retention_hours" {
  type        = number
  description = "Hours records stay in the stream."
  default     = 24
  nullable    = false
}

variable "processor_memory_mb" {
  type        = number
  description = "Processor memory in MB."
  default     = 1024
  nullable    = false
}

variable "batch_size" {
  type        = number
  description = "Kinesis records per processor invocation (1-10,000)."
  default     = 1000
  nullable    = false

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000 (the Kinesis event source mapping's limit)."
  }
}

variable "batching_window_s" {
  type        = number
  description = "Seconds the event source mapping gathers records before invoking."
  default     = 1
  nullable    = false
}

variable "max_retries" {
  type        = number
  description = "Retries of a failing batch before it goes to the on-failure queue."
  default     = 5
  nullable    = false
}

variable "max_record_age_s" {
  type        = number
  description = "Records older than this are sent to the on-failure queue."
  default     = 3600
  nullable    = false
}

variable "readings_ttl_days" {
  type        = number
  description = "Days a reading stays in DynamoDB."
  default     = 90
  nullable    = false
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the tables from deletion."
  default     = false
  nullable    = false
}

variable "enable_timestream" {
  type        = bool
  description = "Create and feed the Timestream sink (not possible in AWS accounts created after 2025-06-20)."
  default     = false
  nullable    = false
}

variable "object_lock_mode" {
  type        = string
  description = "Default Object Lock mode of the archive: GOVERNANCE, COMPLIANCE or NONE."
  default     = "GOVERNANCE"
  nullable    = false
}

variable "object_lock_days" {
  type        = number
  description = "Default Object Lock retention of the archive, in days."
  default     = 30
  nullable    = false
}

variable "archive_expiration_days" {
  type        = number
  description = "Days after which archived raw records expire (0: never)."
  default     = 0
  nullable    = false
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Let destroy delete every bucket with its objects (archive, state, results, rule errors): only the local environment."
  default     = false
  nullable    = false

  validation {
    condition     = !var.force_destroy_buckets || var.environment == "local"
    error_message = "force_destroy_buckets is for the local environment only: elsewhere a destroy must not delete data."
  }
}

variable "buckets_tls_only" {
  type        = bool
  description = "Deny plain-HTTP requests to every bucket (aws:SecureTransport). Only the local environment turns it off: the emulator speaks HTTP."
  default     = true
  nullable    = false

  validation {
    condition     = var.buckets_tls_only || var.environment == "local"
    error_message = "Every bucket refuses plain HTTP outside the local environment."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group, in days (0: never expire; otherwise a value CloudWatch Logs accepts)."
  default     = 30
  nullable    = false
}

variable "api_throttle_rate" {
  type        = number
  description = "API requests per second per key."
  default     = 50
  nullable    = false
}

variable "api_throttle_burst" {
  type        = number
  description = "API burst per key."
  default     = 100
  nullable    = false
}

variable "api_quota_per_day" {
  type        = number
  description = "API requests per key per day."
  default     = 100000
  nullable    = false
}

variable "alert_emails" {
  type        = list(string)
  description = "Emails subscribed to the alert topic."
  default     = []
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource."
  default     = {}
  nullable    = false
}

variable "processor_reserved_concurrency" {
  type        = number
  description = "Concurrency reserved for the processor (-1: none; a fresh account's concurrency quota may be too small to reserve any)."
  default     = 10
  nullable    = false
}

variable "archive_noncurrent_days" {
  type        = number
  description = "Days a noncurrent (expired or replaced) archive version is kept before deletion, when archive_expiration_days is set."
  default     = 1
  nullable    = false
}

variable "manage_api_gateway_account" {
  type        = bool
  description = "Set API Gateway's account-wide CloudWatch Logs role here (needed once per account and region; false where another stack sets it)."
  default     = true
  nullable    = false
}

# -- the analytics layer ------------------------------------------------------------

variable "report_schedule_expression" {
  type        = string
  description = "When the fleet reports run (EventBridge Scheduler expression, UTC)."
  default     = "cron(0 6 * * ? *)"
  nullable    = false
}

variable "report_scopes" {
  type = map(object({
    site  = optional(string)
    line  = optional(string)
    hours = optional(number, 24)
  }))
  description = "One scheduled report per entry: the fleet, a site or a line, over the last `hours`."
  default     = { fleet = {} }
  nullable    = false
}

variable "alert_routes" {
  type = map(object({
    topic      = string
    protocol   = string
    endpoint   = optional(string, "")
    sites      = optional(list(string), [])
    lines      = optional(list(string), [])
    severities = optional(list(string), [])
    events     = optional(list(string), [])
    # endpoints that carry secrets: an SSM SecureString parameter's name, or secret = true (alert_route_secrets)
    endpoint_ssm_parameter = optional(string, "")
    secret                 = optional(bool, false)
  }))
  description = "Alert routes (modules/alerting): topic machine|pipeline, protocol email|https|sqs (http only in the local environment), filters."
  default     = {}
  nullable    = false
}

variable "alert_route_secrets" {
  type        = map(string)
  description = "Endpoints that carry secrets (webhook URLs with tokens) by route name, for routes with secret = true; give them with TF_VAR_alert_route_secrets, never in terraform.tfvars."
  default     = {}
  nullable    = false
  sensitive   = true
}

variable "local_webhook_url" {
  type        = string
  description = "The local twin's webhook receiver ({local_webhook} in route endpoints); set by iotpm local up."
  default     = ""
  nullable    = false
}

variable "write_behind" {
  type        = bool
  description = "Hold each device's table writes and write them every compact_interval_s (one log item and one S3 snapshot a batch instead of items per device); false writes every batch through."
  default     = true
  nullable    = false
}

variable "compact_interval_s" {
  type        = number
  description = "Write-behind: how often a shard's logged readings go to the readings chunks, rollups and device records (the fleet list's values are this old at most; a device's own endpoint is current)."
  default     = 600
  nullable    = false
}

variable "max_channels" {
  type        = number
  description = "A device's channel set (its metric names) stops growing at this many (1..64; modules/processor)."
  default     = 64
  nullable    = false
}

variable "max_channels_by_type" {
  type        = map(number)
  description = "Per device type, another channel cap than max_channels (1..64 each; modules/processor)."
  default     = {}
  nullable    = false
}
