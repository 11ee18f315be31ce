variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "environment" {
  type        = string
  description = "Environment name (the dimension of the processor's EMF metrics)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the alert topic."
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses subscribed to alerts and alarms (each must confirm)."

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails must be email addresses."
  }
}

variable "processor_function_name" {
  type        = string
  description = "Processor function to watch."
}

variable "api_function_name" {
  type        = string
  description = "API function to watch."
}

variable "compaction_function_name" {
  type        = string
  description = "Compaction function to watch (the archive's Parquet job and write-behind's idle-shard job: a failing idle-shard run leaves a stopped shard's last readings to the batch log's 7-day expiry)."
}

variable "stream_name" {
  type        = string
  description = "Telemetry stream to watch."
}

variable "on_failure_queue_name" {
  type        = string
  description = "Processor on-failure queue to watch."
}

variable "rest_api_name" {
  type        = string
  description = "REST API name (API Gateway metrics dimension)."
}

variable "stage_name" {
  type        = string
  description = "REST API stage."
}

variable "iterator_age_alarm_ms" {
  type        = number
  description = "Alarm when the processor falls this far behind the stream (ms)."
  default     = 60000
}

variable "anomalies_per_5min_alarm" {
  type        = number
  description = "Alarm when the fleet raises more alarms than this in 5 minutes (a plant-wide problem or a bad deploy)."
  default     = 50
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "iot_rule_name" {
  type        = string
  description = "The telemetry topic rule (its Failure and ParseError metrics are alarmed)."
}
