variable "region" {
  type        = string
  description = "AWS region to deploy to."
  default     = "eu-west-1"
}

variable "environment" {
  type        = string
  description = "Environment name: dev, staging or prod."
  default     = "dev"
}

variable "processor_reserved_concurrency" {
  type        = number
  description = "Concurrency reserved for the processor (-1: none, for a fresh account with a concurrency quota of 10)."
  default     = 10
}

variable "alert_emails" {
  type        = list(string)
  description = "Addresses subscribed to the alert topic (each confirms by email)."
  default     = []
}

variable "processor_zip" {
  type        = string
  description = "The processor zip (python3 lambda_build/build.py processor --arch arm64)."
  default     = "../../../lambda_build/out/processor-arm64.zip"
}

variable "api_zip" {
  type        = string
  description = "The API zip (python3 lambda_build/build.py api --arch arm64)."
  default     = "../../../lambda_build/out/api-arm64.zip"
}

variable "compaction_zip" {
  type        = string
  description = "The compaction zip, with DuckDB (python3 lambda_build/build.py compaction --arch arm64)."
  default     = "../../../lambda_build/out/compaction-arm64.zip"
}
