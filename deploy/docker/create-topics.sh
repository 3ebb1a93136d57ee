#!/bin/sh
# Creates the topics of proto/topics.yaml (name, partitions, retention) with Kafka's own kafka-topics.sh.
# Runs inside the official apache/kafka image (a POSIX shell and awk, no Python), as the
# compose "topics" one-shot service; deploy/local/create-topics.py does the same job for the
# local stack. Existing topics are left as they are.
#
#   create-topics.sh BOOTSTRAP TOPICS_YAML [REPLICATION_FACTOR]
#
# KAFKA_TOPICS_BIN overrides the path of kafka-topics.sh.
set -eu

bootstrap=${1:?usage: create-topics.sh BOOTSTRAP TOPICS_YAML [REPLICATION_FACTOR]}
file=${2:?usage: create-topics.sh BOOTSTRAP TOPICS_YAML [REPLICATION_FACTOR]}
rf=${3:-1}
bin=${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}

case "$rf" in ''|*[!0-9]*|0) echo "create-topics: replication factor must be a positive integer, got '$rf'" >&2; exit 2 ;; esac
[ -r "$file" ] || { echo "create-topics: cannot read $file" >&2; exit 2; }

# The contract file needs only "- name: X", "partitions: N" and optionally "retention_ms: N"
# under "topics:"; print "NAME PARTITIONS RETENTION" per topic (RETENTION "-" when not given),
# and fail on a topic without a valid partition count.
pairs=$(awk '
    { sub(/#.*/, "") }
    /^[ \t]*-[ \t]*name:[ \t]*[A-Za-z0-9._-]+[ \t]*$/ {
        if (name != "") { print name, parts, ret; }
        name = $0; sub(/^[ \t]*-[ \t]*name:[ \t]*/, "", name); sub(/[ \t]*$/, "", name)
        parts = ""; ret = "-"; next
    }
    /^[ \t]+partitions:[ \t]*[0-9]+[ \t]*$/ && name != "" {
        parts = $0; sub(/^[ \t]+partitions:[ \t]*/, "", parts); sub(/[ \t]*$/, "", parts)
    }
    /^[ \t]+retention_ms:[ \t]*-?[0-9]+[ \t]*$/ && name != "" {
        ret = $0; sub(/^[ \t]+retention_ms:[ \t]*/, "", ret); sub(/[ \t]*$/, "", ret)
    }
    END { if (name != "") print name, parts, ret }
' "$file")

[ -n "$pairs" ] || { echo "create-topics: no topics found in $file" >&2; exit 2; }
echo "$pairs" | while read -r name parts ret; do
    case "$parts" in ''|*[!0-9]*|0)
        echo "create-topics: topic $name in $file has no valid partitions" >&2; exit 2 ;;
    esac
done

echo "$pairs" | while read -r name parts ret; do
    config=
    [ "$ret" = "-" ] || config="--config retention.ms=$ret" # digits only: splits safely
    # shellcheck disable=SC2086
    "$bin" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
        --partitions "$parts" --replication-factor "$rf" $config >/dev/null
    echo "create-topics: $name ($parts partitions, replication $rf)"
done
