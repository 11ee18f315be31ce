# The smallest complete deployment: the whole pipeline as one module call, in the region
# the provider names. Build the zips first (python3 lambda_build/build.py --arch arm64),
# then: terraform init && terraform apply -var environment=dev.

provider "aws" {
  region = var.region
}

module "pipeline" {
  source = "../../modules/pipeline"

  environment         = var.environment
  availability_zones  = ["${var.region}a", "${var.region}b"]
  lambda_architecture = "arm64"
  processor_zip       = var.processor_zip
  api_zip             = var.api_zip
  compaction_zip      = var.compaction_zip

  # A fresh account: API Gateway's CloudWatch role is set by the module (one per account
  # and region; false where another stack sets it), and its concurrency quota may be 10,
  # too small to reserve any for the processor (-1: none; ask for a quota increase).
  manage_api_gateway_account     = true
  processor_reserved_concurrency = var.processor_reserved_concurrency
  alert_emails                   = var.alert_emails
}
