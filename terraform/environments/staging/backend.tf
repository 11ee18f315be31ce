# State in S3 with native locking (a .tflock object; Terraform >= 1.10), one key per environment.
# The bucket and its region are given at init (see docs/deploy.md):
#   terraform init -backend-config="bucket=<state bucket>" -backend-config="region=<region>"
terraform {
  backend "s3" {
    key          = "iotpm/staging/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
