#!/usr/bin/env bash
# Example: cargo real-build --release --bin kv-node --bin registry --bin chat-node && scripts/real-bench.sh target/real/release now
# Needs ab (apache2-utils), curl and python3. Prints KV POST/GET figures with node CPU per POST, and chat msg/s with node CPU per message.
# Usage: run.sh BINDIR LABEL  -> prints KV POST/GET ab figures and chat msg/s for that build.
set -u
BIN=$1; LABEL=$2
T=$(mktemp -d /dev/shm/bench.XXXX)
export HOME=$T/home; mkdir -p $HOME
P=$((20000 + RANDOM % 20000))
R=$P; N1=$((P+1)); N2=$((P+2)); N3=$((P+3))
$BIN/registry --port $R >/dev/null 2>&1 & pids="$!"
sleep 0.3
for i in 1 2 3; do $BIN/kv-node --port $((P+i)) --id node-$i --registry http://127.0.0.1:$R --registry-heartbeat 500ms >/dev/null 2>&1 & pids="$pids $!"; done
for _ in $(seq 50); do c=$(curl -s 127.0.0.1:$N1/peers | grep -o node- | wc -l); [ "$c" -ge 2 ] && break; sleep 0.2; done
echo '{"key":"bench","value":"v"}' > $T/body.json
cpu() { local t=0; for p in $pids; do read -r -a f < /proc/$p/stat; t=$((t + f[13] + f[14])); done; echo $t; }
c0=$(cpu)
post=$(ab -k -l -n 20000 -c 16 -p $T/body.json -T application/json http://127.0.0.1:$N1/data 2>/dev/null | awk '/Requests per second/{r=$4} / 50% /{p50=$2} / 99% /{p99=$2} END{print r, p50, p99}')
c1=$(cpu); postcpu=$(( (c1 - c0) * 10000000 / 20000 ))  # ticks (10 ms) -> ns per request
get=$(ab -k -l -n 50000 -c 16 http://127.0.0.1:$N1/data/bench 2>/dev/null | awk '/Requests per second/{r=$4} / 50% /{p50=$2} / 99% /{p99=$2} END{print r, p50, p99}')
kill $pids 2>/dev/null; wait 2>/dev/null
# chat: 3 nodes majority commit, 16 clients x 1000 sends to the leader
C=$((P+10)); cpids=""
for i in 1 2 3; do
  peers=$(for j in 1 2 3; do [ $j != $i ] && printf "%s=127.0.0.1:%s," $j $((C+j)); done | sed 's/,$//')
  $BIN/chat-node --id $i --listen 127.0.0.1:$((C+i)) --client-listen 127.0.0.1:$((C+10+i)) --peers $peers --data-dir $T/chat >/dev/null 2>&1 & cpids="$cpids $!"
done
sleep 1.5; cc0=$(pids="$cpids" cpu)
chat=$(python3 "$(dirname "$0")/chat-load.py" $((C+13)))
cc1=$(pids="$cpids" cpu); chatcpu=$(( (cc1 - cc0) * 10000000 / 16000 / 1000 ))
kill $cpids 2>/dev/null; wait 2>/dev/null
echo "$LABEL post-cpu-us=$((postcpu/1000)) post(rps p50 p99)=$post get=$get chat(msg/s p50ms p99ms)=$chat chat-cpu-us=$chatcpu"
rm -rf $T
