#!/usr/bin/env bash
# Resolves the Kafka broker jars named in pom.xml from Maven Central into .cache/kafka/<version>/libs
# (once; later runs reuse them). Prints the libs folder. Used by .ci/run and by the test harness.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs="${KAFKA_LIBS_DIR:-$root/.cache/kafka/$version/libs}"
if [ ! -f "$libs/.complete" ]; then
  command -v mvn >/dev/null || { echo "mvn is not on PATH: install Maven (apt-get install maven) to resolve the Kafka broker" >&2; exit 1; }
  rm -rf "$libs"
  mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies -Dkafka.libs.dir="$libs" >&2
  ls "$libs"/kafka_2.13-"$version".jar >/dev/null
  touch "$libs/.complete"
fi
echo "$libs"
