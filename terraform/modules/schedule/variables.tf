variable "role_name" {
  type        = string
  description = "Name of the role the scheduler assumes (project-environment-job-scheduler)."
}

variable "policy_name" {
  type        = string
  description = "Name of the role's inline policy (invoke-<job>)."
}

variable "function_arn" {
  type        = string
  description = "The Lambda function every schedule invokes."
}

variable "schedules" {
  type = map(object({
    name        = string
    description = string
    input       = string
  }))
  description = "The schedules by key: each one's name, description and the JSON the function is invoked with."
}

variable "schedule_expression" {
  type        = string
  description = "When every schedule fires (EventBridge Scheduler expression: cron(...), rate(...) or at(...))."

  validation {
    condition     = can(regex("^(cron|rate|at)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be cron(...), rate(...) or at(...)."
  }
}

variable "timezone" {
  type        = string
  description = "Time zone of the schedule expression (IANA name)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key the schedules are encrypted with."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the role."
}
