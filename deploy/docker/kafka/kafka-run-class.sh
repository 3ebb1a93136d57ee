#!/bin/sh
# kafka-run-class.sh CLASS ARGS...: one of Kafka's command-line tools, with a small client JVM
# that starts quickly (health checks run one every few seconds).
set -eu
class=${1:?usage: kafka-run-class.sh CLASS [ARGS...]}
shift
exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties \
    -cp "/opt/kafka/libs/*" "$class" "$@"
