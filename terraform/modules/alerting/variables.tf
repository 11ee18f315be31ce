variable "name" {
  type        = string
  description = "Name prefix of every resource (project-environment)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the topics and the route queues."
}

variable "pipeline_topic_arn" {
  type        = string
  description = "The pipeline-alarm topic (CloudWatch alarm actions; the observability module's topic)."
}

variable "routes" {
  type = map(object({
    topic      = string               # machine (the processor's alarms) or pipeline (CloudWatch alarms)
    protocol   = string               # email, https, http or sqs
    endpoint   = optional(string, "") # address or URL; empty for sqs: the module makes the queue
    sites      = optional(list(string), [])
    lines      = optional(list(string), [])
    severities = optional(list(string), [])
    events     = optional(list(string), []) # alarm_raised, alarm_cleared, report
  }))
  description = "Alert routes by name: which topic, where to, and the site/line/severity/event filters (empty list: any)."
  default     = {}

  validation {
    condition     = alltrue([for r in values(var.routes) : contains(["machine", "pipeline"], r.topic)])
    error_message = "A route's topic is machine or pipeline."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : contains(["email", "https", "http", "sqs"], r.protocol)])
    error_message = "A route's protocol is email, https, http or sqs."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : r.protocol == "sqs" || r.endpoint != ""])
    error_message = "email, https and http routes need an endpoint."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : alltrue([for s in r.severities : contains(["warning", "critical", "info"], s)])])
    error_message = "Severities are warning, critical (machine alarms) or info (reports)."
  }
}

variable "local_webhook_url" {
  type        = string
  description = "Replaces {local_webhook} in route endpoints (the local twin's webhook receiver); empty elsewhere."
  default     = ""
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
