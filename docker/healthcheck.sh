#!/bin/bash
# HEALTHCHECK: exit 0 when GET /healthz answers 200. Bash's /dev/tcp does the
# HTTP/1.0 request, so the slim image needs neither curl nor wget.
listen=${EASYTORCH_LISTEN:-0.0.0.0:8080}
port=${listen##*:}
host=${listen%:*}
case $host in
"" | 0.0.0.0 | "*") host=127.0.0.1 ;;
"[::]" | "::") host=::1 ;;
"["*"]") host=${host#[}; host=${host%]} ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r status <&3 || exit 1
case $status in
"HTTP/1."?" 200"*) exit 0 ;;
esac
echo "healthz: ${status%$'\r'}" >&2
exit 1
