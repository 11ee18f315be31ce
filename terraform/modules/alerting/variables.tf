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
    topic    = string               # machine (the processor's alarms) or pipeline (CloudWatch alarms)
    protocol = string               # email, https, http or sqs
    endpoint = optional(string, "") # address or URL; empty for sqs: the module makes the queue
    # an endpoint with a secret in it (a webhook URL with a token): the name of an SSM
    # SecureString parameter holding it, or secret = true and the URL in route_secrets
    endpoint_ssm_parameter = optional(string, "")
    secret                 = optional(bool, false)
    sites                  = optional(list(string), [])
    lines                  = optional(list(string), [])
    severities             = optional(list(string), [])
    events                 = optional(list(string), []) # alarm_raised, alarm_escalated, alarm_cleared, report
  }))
  description = "Alert routes by name: which topic, where to, and the site/line/severity/event filters (empty list: any)."

  validation {
    condition     = alltrue([for r in values(var.routes) : contains(["machine", "pipeline"], r.topic)])
    error_message = "A route's topic is machine or pipeline."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : contains(["email", "https", "http", "sqs"], r.protocol)])
    error_message = "A route's protocol is email, https, http or sqs."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : r.protocol == "sqs" || r.endpoint != "" || r.endpoint_ssm_parameter != "" || r.secret])
    error_message = "email, https and http routes need an endpoint (endpoint, endpoint_ssm_parameter, or secret = true with route_secrets)."
  }
  validation {
    condition     = var.allow_http || alltrue([for r in values(var.routes) : r.protocol != "http"])
    error_message = "Plain http routes are allowed only where allow_http is set (the local environment's webhook receiver): use https."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : r.protocol != "https" || r.endpoint == "" || startswith(r.endpoint, "https://")])
    error_message = "An https route's endpoint must be an https:// URL."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : length([for x in [r.endpoint != "", r.endpoint_ssm_parameter != "", r.secret] : x if x]) <= 1])
    error_message = "A route takes its endpoint from one place: endpoint, endpoint_ssm_parameter or route_secrets."
  }
  validation {
    condition     = alltrue([for r in values(var.routes) : alltrue([for s in r.severities : contains(["warning", "critical", "info"], s)])])
    error_message = "Severities are warning, critical (machine alarms) or info (reports)."
  }
}

variable "allow_http" {
  type        = bool
  description = "Allow plain-http routes (the local environment's webhook receiver, which has no TLS). Off everywhere else: routes are https."
  default     = false
}

variable "route_secrets" {
  type        = map(string)
  description = "Endpoints that carry secrets (webhook URLs with tokens), by route name, for routes with secret = true. Give them with TF_VAR_ or a -var-file kept out of git."
  sensitive   = true
}

variable "local_webhook_url" {
  type        = string
  description = "Replaces {local_webhook} in route endpoints (the local twin's webhook receiver); empty elsewhere."
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
