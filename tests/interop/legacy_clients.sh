#!/usr/bin/env bash
# Interop with two legacy SOAP stacks, against the release binary with the demo directory:
#  - PHP's ext-soap SoapClient in WSDL mode (tests/interop/php/client.php);
#  - Java JAX-WS (the RI of Debian's libjaxws-java): wsimport generates the classes from the
#    live WSDL (?wsdl with its imported XSD; ?singleWsdl if that fails, and either way it
#    checks ?singleWsdl generates the same classes) into a temporary directory, javac
#    compiles them with tests/interop/java/Client.java, and that runs.
# Each client calls every operation over the SOAP 1.1 and the SOAP 1.2 port, each port on a
# fresh server (a fresh temporary database with the demo directory).
#
# Usage: tests/interop/legacy_clients.sh BIN   (BIN: the soap-passwd binary, e.g. target/release/soap-passwd)
#
# Needs php (with ext-soap), a JDK (>= 11) and libjaxws-java; when one is missing it installs
# them with apt-get (Debian 12: php-cli php-soap default-jdk-headless libjaxws-java), as root
# or through sudo.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BIN (the soap-passwd binary)" >&2; exit 2; }
[ -x "$1" ] || { echo "error: $1 is not an executable soap-passwd binary" >&2; exit 2; }
bin=$(realpath "$1")
cd "$(dirname "$0")/../.."

# stage NAME: prints NAME, and how long the previous stage took.
stage_started=$(date +%s)
stage_name=""
stage() {
  local now
  now=$(date +%s)
  [ -z "$stage_name" ] || echo "   ($stage_name: $((now - stage_started)) s)"
  stage_name=$1
  stage_started=$now
  [ -z "$1" ] || echo "== $1"
}

JARS=/usr/share/java
stage "legacy clients: php-cli php-soap default-jdk-headless libjaxws-java"
packages=()
if ! command -v php >/dev/null || ! php -r 'exit(class_exists("SoapClient") ? 0 : 1);'; then
  packages+=(php-cli php-soap)
fi
if ! command -v javac >/dev/null || ! command -v java >/dev/null \
  || [ "$(javac -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p')" -lt 11 ] 2>/dev/null; then
  packages+=(default-jdk-headless)
fi
[ -f "$JARS/jaxws-tools.jar" ] && [ -f "$JARS/jaxws-rt.jar" ] || packages+=(libjaxws-java)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing: ${packages[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "error: need root (or sudo) to run: apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  # The JDK's postinst links man pages there; slim images lack the directory.
  "${sudo[@]}" mkdir -p /usr/share/man/man1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
php -r 'echo "PHP ", PHP_VERSION, "\n";'
javac -version 2>&1
echo "libjaxws-java $(dpkg-query -W -f='${Version}' libjaxws-java 2>/dev/null || echo '(version unknown)')"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_server NAME: the binary with the demo directory on a fresh database, its stdout in
# $work/NAME.out; sets $endpoint once the whole "Try it" block is printed.
start_server() {
  local out="$work/$1.out"
  : >"$out"
  "$bin" serve --demo --db "$work/$1.db" --bind 127.0.0.1:0 >"$out" 2>"$work/$1.err" &
  local pid=$!
  pids+=("$pid")
  endpoint=""
  for _ in $(seq 1 300); do
    if grep -qx 'XML' "$out"; then
      endpoint=$(sed -n 's/^soap-passwd listening on \(http[^ ]*\).*/\1/p' "$out" | head -n 1)
      break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/$1.err"; echo "server $1 exited"; exit 1; }
    sleep 0.1
  done
  [ -n "$endpoint" ] || { cat "$out" "$work/$1.err"; echo "server $1 did not start"; exit 1; }
}

results=()

stage "legacy clients: PHP SoapClient (SOAP 1.1 and 1.2 ports, a fresh server each)"
start_server php11
php11=$endpoint
start_server php12
php12=$endpoint
php_rc=0
php tests/interop/php/client.php "$php11" "$php12" | tee "$work/php.log" || php_rc=$?
results+=("$(tail -n 1 "$work/php.log") (exit $php_rc)")

stage "legacy clients: wsimport from the live WSDL"
start_server java11
java11=$endpoint
start_server java12
java12=$endpoint
# wsimport SOURCE_DIR URL: generates the client classes (sources only) of the WSDL at URL.
wsimport() {
  mkdir -p "$1"
  java -jar "$JARS/jaxws-tools.jar" -keep -extension -Xnocompile -s "$1" -d "$1" "$2"
}
generated=""
for form in wsdl singleWsdl; do
  if wsimport "$work/gen-$form" "$java11?$form" >"$work/wsimport-$form.log" 2>&1 \
    && [ -n "$(find "$work/gen-$form" -name '*.java' -print -quit)" ]; then
    sed 's/^/   wsimport: /' "$work/wsimport-$form.log" | grep -v '^   wsimport: *$' || true
    echo "wsimport loaded ?$form"
    generated=$work/gen-$form
    break
  fi
  cat "$work/wsimport-$form.log"
  echo "FAIL wsimport could not load ?$form"
done
java_rc=0
if [ -z "$generated" ]; then
  java_rc=1
  results+=("JAX-WS wsimport: neither ?wsdl nor ?singleWsdl could be imported (exit 1)")
else
  if [ "$generated" != "$work/gen-wsdl" ]; then
    # ?wsdl (the form every integrator starts from) must import: a failure, even though the
    # client still runs on the classes of ?singleWsdl.
    java_rc=1
    results+=("JAX-WS wsimport: ?wsdl could not be imported, ?singleWsdl could (a failure)")
  else
    # The inlined-schema form must give the same classes (javadoc order and the
    # wsdlLocation aside).
    normalized() {
      (cd "$1" && find . -name '*.java' | sort | while read -r f; do
        echo "== $f"
        grep -vE '^\s*(/\*\*|\*)' "$f" | sed 's/?singleWsdl/?wsdl/g'
      done)
    }
    if wsimport "$work/gen-singleWsdl" "$java11?singleWsdl" >"$work/wsimport-singleWsdl.log" 2>&1 \
      && diff <(normalized "$work/gen-wsdl") <(normalized "$work/gen-singleWsdl") >"$work/single.diff"; then
      echo "wsimport of ?singleWsdl generates the same classes"
    else
      cat "$work/wsimport-singleWsdl.log"
      head -n 40 "$work/single.diff" 2>/dev/null || true
      echo "FAIL wsimport of ?singleWsdl failed or generated different classes"
      java_rc=1
    fi
  fi

  stage "legacy clients: javac (generated classes + tests/interop/java/Client.java)"
  mkdir -p "$work/classes"
  # jaxws-rt.jar's manifest Class-Path brings the JAX-WS, JAXB, SAAJ and javax.jws APIs and
  # implementations (JDK 11+ has none of them).
  cp="$JARS/jaxws-rt.jar"
  find "$generated" -name '*.java' >"$work/sources"
  echo tests/interop/java/Client.java >>"$work/sources"
  javac -nowarn -encoding UTF-8 -cp "$cp" -d "$work/classes" @"$work/sources"
  echo "compiled $(wc -l <"$work/sources") sources"

  stage "legacy clients: JAX-WS client (SOAP 1.1 and 1.2 ports, a fresh server each)"
  # Naming SAAJ's factory spares the "deprecated META-INF/services mechanism" warnings that
  # Debian's saaj-impl.jar otherwise causes on every SOAPMessage factory lookup.
  java -Djavax.xml.soap.SAAJMetaFactory=com.sun.xml.messaging.saaj.soap.SAAJMetaFactoryImpl \
    -cp "$work/classes:$cp" Client "$java11" "$java12" | tee "$work/java.log" || java_rc=$?
  results+=("$(tail -n 1 "$work/java.log") (exit $java_rc)")
fi
stage ""

echo "legacy clients:"
printf '  %s\n' "${results[@]}"
[ "$php_rc" -eq 0 ] && [ "$java_rc" -eq 0 ]
