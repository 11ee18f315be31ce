# Every AWS API goes to the local emulator (iotpm emulator start). Retries are bounded so an
# unsupported call fails fast instead of being retried for minutes.
variable "emulator_endpoint" {
  type        = string
  description = "URL of the local AWS emulator."
  default     = "http://127.0.0.1:4566"
}

provider "aws" {
  region                      = var.region
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true
  max_retries                 = 4 # bounded (TOOLS-NOTES), but past one dropped connection: CI met "use of closed network connection" twice in a row

  endpoints {
    apigateway      = var.emulator_endpoint
    athena          = var.emulator_endpoint
    cloudwatch      = var.emulator_endpoint
    dynamodb        = var.emulator_endpoint
    ec2             = var.emulator_endpoint
    glue            = var.emulator_endpoint
    iam             = var.emulator_endpoint
    iot             = var.emulator_endpoint
    kinesis         = var.emulator_endpoint
    kms             = var.emulator_endpoint
    lambda          = var.emulator_endpoint
    logs            = var.emulator_endpoint
    scheduler       = var.emulator_endpoint
    s3              = var.emulator_endpoint
    sns             = var.emulator_endpoint
    sqs             = var.emulator_endpoint
    sts             = var.emulator_endpoint
    timestreamwrite = var.emulator_endpoint
  }
}
