#!/usr/bin/env bash
# Installs the Debian packages barometre needs that pip cannot bring, when they are missing.
#   infra/system-deps.sh run    Java 17 and Maven (Kafka from Apache's jars)
#   infra/system-deps.sh test   the above, plus kcat (an independent Kafka client) and docker-compose
#                               (validates docker-compose.yml; no engine needed), promtool, and Chromium
#                               with the Liberation fonts for the dashboard's browser tests
# As root it installs with apt-get; otherwise it prints the command to run and fails.
set -euo pipefail
want=("java:openjdk-17-jre-headless" "mvn:maven")
if [ "${1:-run}" = "test" ]; then
  want+=("kcat:kcat" "docker-compose:docker-compose" "curl:curl" "promtool:prometheus" "chromium:chromium")
fi
missing=()
for pair in "${want[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# Chromium only recommends its fonts; without them pages render with boxes in place of text.
if [ "${1:-run}" = "test" ] && [ ! -d /usr/share/fonts/truetype/liberation ]; then
  missing+=("fonts-liberation")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing: ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}" >&2
  echo "(or run the stack in containers with: docker compose up)" >&2
  exit 1
fi
