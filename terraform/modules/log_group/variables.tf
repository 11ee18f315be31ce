variable "name" {
  type        = string
  description = "Name of the log group (/aws/lambda/<function>, /iotpm/<project-environment>/<what>)."
}

variable "retention_days" {
  type        = number
  description = "Days the group keeps its events (0: never expire)."

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.retention_days)
    error_message = "The log retention must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...), or 0 to keep events for good."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key the group's events are encrypted with."
}

variable "writer" {
  type = object({
    service     = string                 # the service principal, e.g. vpc-flow-logs.amazonaws.com
    role_name   = string                 # project-environment-<what>
    policy_name = string                 # the role's inline policy
    actions     = list(string)           # on this group's streams only
    source_arn  = optional(string, null) # aws:SourceArn the service must act for (ArnLike)
  })
  description = "The role an AWS service assumes to write to the group itself (null: the group's writer has a role of its own elsewhere)."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
}
