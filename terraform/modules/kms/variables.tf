variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "deletion_window_days" {
  type        = number
  description = "Days a deleted key can still be recovered (7 to 30)."
  default     = 30

  validation {
    condition     = var.deletion_window_days >= 7 && var.deletion_window_days <= 30
    error_message = "deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
