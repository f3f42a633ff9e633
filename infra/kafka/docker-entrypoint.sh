#!/bin/bash
# Entrypoint of the Kafka brokers of docker-compose.yml (apache/kafka image), in place of the image's own:
# that one formats the storage without SCRAM users, and SCRAM users can only be written into a KRaft
# cluster's metadata when its storage is formatted (or later, by a user who can already log in).
#
# 1. Writes server.properties from the KAFKA_* variables, with the image's naming rule
#    (KAFKA_LOG_DIRS -> log.dirs; "__" -> "_", "___" -> "-").
# 2. Formats the storage on the first start only, adding the SCRAM-SHA-512 users of
#    BAROMETRE_KAFKA_SCRAM_USERS ("name=password name=password ...", passwords of [A-Za-z0-9._~-]).
# 3. Writes the administrator's client settings (for the healthcheck's kafka-broker-api-versions.sh) to
#    $BAROMETRE_KAFKA_CONFIG_DIR/admin-client.properties, readable by this user only.
# 4. Runs the broker.
#
# `docker-entrypoint.sh --print` prints the server properties and the format command (passwords
# masked) and exits: what tests/unit/test_compose.py checks.
set -euo pipefail

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
CONFIG_DIR=${BAROMETRE_KAFKA_CONFIG_DIR:-/tmp/barometre-kafka}
: "${CLUSTER_ID:?CLUSTER_ID is not set}"
: "${BAROMETRE_KAFKA_SCRAM_USERS:?BAROMETRE_KAFKA_SCRAM_USERS is not set}"
: "${BAROMETRE_KAFKA_ADMIN_PASSWORD:?BAROMETRE_KAFKA_ADMIN_PASSWORD is not set}"

# Variables the Kafka scripts read themselves: not server properties.
not_a_property='^KAFKA_(HEAP_OPTS|OPTS|JVM_PERFORMANCE_OPTS|GC_LOG_OPTS|LOG4J_OPTS|JMX_OPTS|DEBUG|HOME|VERSION)='

properties() {
  env | grep '^KAFKA_' | grep -Ev "$not_a_property" | sort | while IFS='=' read -r name value; do
    key=${name#KAFKA_}
    key=$(printf '%s' "$key" | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g' | tr '[:upper:]' '[:lower:]')
    printf '%s=%s\n' "$key" "$value"
  done
}

scram_args=()
for pair in $BAROMETRE_KAFKA_SCRAM_USERS; do
  name=${pair%%=*}
  password=${pair#*=}
  if [[ ! $name =~ ^[A-Za-z0-9._-]+$ || ! $password =~ ^[A-Za-z0-9._~-]+$ || $pair != *=* ]]; then
    echo "docker-entrypoint.sh: BAROMETRE_KAFKA_SCRAM_USERS: '$name' is not name=password with [A-Za-z0-9._~-]" >&2
    exit 2
  fi
  scram_args+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$password]")
done

if [[ ${1:-} == --print ]]; then
  properties | sed -E 's/(password=")[^"]*"/\1***"/g; s/(user_[A-Za-z0-9._-]+=")[^"]*"/\1***"/g'
  printf 'format:'
  printf ' %s' "${scram_args[@]}" | sed -E 's/password=[^],]*/password=***/g'
  printf '\n'
  exit 0
fi

mkdir -p "$CONFIG_DIR"
chmod 700 "$CONFIG_DIR"
umask 077
properties > "$CONFIG_DIR/server.properties"
cat > "$CONFIG_DIR/admin-client.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$BAROMETRE_KAFKA_ADMIN_PASSWORD";
EOF

# --ignore-formatted: on later starts the storage (and the users in its metadata) is kept as it is;
# `barometre access kafka` changes passwords from then on.
"$KAFKA_HOME/bin/kafka-storage.sh" format --ignore-formatted -t "$CLUSTER_ID" \
  -c "$CONFIG_DIR/server.properties" "${scram_args[@]}"
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$CONFIG_DIR/server.properties"
