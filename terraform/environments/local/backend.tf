# The local twin keeps its state on disk; `iotpm local up` and scripts/terraform-local-check.sh
# point it into their own state folder with -backend-config="path=...".
terraform {
  backend "local" {}
}
