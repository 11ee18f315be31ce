# Sourced by the scripts that run terraform. Makes `terraform init` work offline:
# when the public registry cannot be reached, a local filesystem mirror of the
# hashicorp/aws provider is looked for (IOTPM_TF_MIRROR, the standard plugin folders,
# then a bounded search of the disk) and a CLI config naming it is written to
# $IOTPM_HOME/terraformrc. With the registry reachable, nothing changes.

iotpm_home() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  echo "${IOTPM_HOME:-$root/.iotpm}"
}

find_provider_mirror() {
  local dir found
  for dir in "${IOTPM_TF_MIRROR:-}" "$HOME/.terraform.d/plugins" "$HOME/.local/share/terraform/plugins" \
             /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
    if [ -n "$dir" ] && [ -d "$dir/registry.terraform.io/hashicorp/aws" ]; then
      echo "$dir"; return 0
    fi
  done
  found="$(find / -maxdepth 8 -type f -name 'terraform-provider-aws*' -path '*/registry.terraform.io/hashicorp/aws/*' \
           -not -path '/proc/*' -not -path '*/.terraform/*' 2>/dev/null | head -n 1)"
  [ -n "$found" ] || return 1
  # <mirror>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_...
  dirname "$(dirname "$(dirname "$(dirname "$(dirname "$(dirname "$found")")")")")"
}

terraform_offline_setup() {
  command -v terraform >/dev/null || { echo "terraform is not installed (https://developer.hashicorp.com/terraform/install)" >&2; return 1; }
  # Python, not curl: a minimal Debian has no curl, and Python is a prerequisite anyway.
  if "${PYTHON:-python3}" -c 'import urllib.request as u; u.urlopen("https://registry.terraform.io/.well-known/terraform.json", timeout=5)' >/dev/null 2>&1; then
    return 0
  fi
  local home mirror
  home="$(iotpm_home)"; mkdir -p "$home"
  if [ -f "$home/terraformrc" ] && [ -z "${IOTPM_TF_MIRROR:-}" ]; then
    export TF_CLI_CONFIG_FILE="$home/terraformrc"; return 0
  fi
  mirror="$(find_provider_mirror)" || { echo "registry.terraform.io unreachable and no provider mirror found (set IOTPM_TF_MIRROR)" >&2; return 1; }
  cat > "$home/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
}
RC
  export TF_CLI_CONFIG_FILE="$home/terraformrc"
  echo "==> registry unreachable: terraform providers from the mirror at $mirror" >&2
}
