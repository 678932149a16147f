#!/usr/bin/env bash
# Stand-in base images for docker/'s Dockerfiles, built from Debian packages.
#
# An aid for CI and offline machines, where no container registry can be
# reached: docker/Dockerfile starts FROM python:3.11-slim and
# docker/nginx/Dockerfile FROM nginx:1.25.1, and a build that cannot pull them
# fails. A machine with Docker Hub never needs this script; it pulls the real
# images.
#
# Each stand-in is a debootstrap of Debian (bookworm, minbase) from the Debian
# mirror apt already uses, imported into the engine's image store under the
# name the FROM line uses (docker.io/library/python:3.11-slim, ...):
#   python:3.11-slim  python3 (3.11), pip, `python` and `pip` on PATH, pip free
#                     to install system-wide (as in the official image)
#   nginx:1.25.1      nginx-light (Debian's 1.22) and curl; conf.d/*.conf is
#                     the site, logs go to the container's stdout/stderr,
#                     CMD nginx -g 'daemon off;' (as in the official image)
# Both carry this machine's CA bundle, so that pip reaches PyPI during
# `podman build --network host` where TLS goes through a local CA.
#
# An image that already exists is left alone (a second run takes a second);
# --force rebuilds. Downloaded .debs are kept in $CACHE_DIR.
#
# Usage: scripts/build-base-images.sh [--engine podman|docker] [--force]
# Needs root (debootstrap), debootstrap, and podman or docker.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENGINE="${ENGINE:-}"
FORCE=0
SUITE="${SUITE:-bookworm}"
CACHE_DIR="${CACHE_DIR:-/var/cache/fishpredict-base-images}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

die() { echo "build-base-images: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --engine) [ $# -ge 2 ] || die "--engine needs a value"; ENGINE="$2"; shift 2 ;;
        --engine=*) ENGINE="${1#--engine=}"; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

if [ -z "$ENGINE" ]; then
    if command -v podman >/dev/null 2>&1; then ENGINE=podman
    elif command -v docker >/dev/null 2>&1; then ENGINE=docker
    else die "neither podman nor docker is installed"; fi
fi
case "$ENGINE" in podman|docker) ;; *) die "--engine must be podman or docker, got $ENGINE" ;; esac
command -v "$ENGINE" >/dev/null 2>&1 || die "$ENGINE is not installed"

# The images the Dockerfiles name (the last FROM of each that is not a stage).
from_image() { awk 'toupper($1) == "FROM" { img = $2 } END { print img }' "$1"; }
PYTHON_IMAGE="$(from_image "$ROOT/docker/Dockerfile")"
NGINX_IMAGE="$(from_image "$ROOT/docker/nginx/Dockerfile")"
case "$PYTHON_IMAGE" in python:3.11*) ;; *)
    die "docker/Dockerfile wants $PYTHON_IMAGE; Debian $SUITE's python3 is 3.11" ;; esac
case "$NGINX_IMAGE" in nginx:*) ;; *) die "docker/nginx/Dockerfile wants $NGINX_IMAGE" ;; esac

qualified() { case "$1" in */*) echo "$1" ;; *) echo "docker.io/library/$1" ;; esac; }
exists() { "$ENGINE" image inspect "$(qualified "$1")" >/dev/null 2>&1; }

# The Debian mirror apt uses: the first bookworm source that is not the security archive.
mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local found
    found="$(cat "${files[@]}" 2>/dev/null | awk -v suite="$SUITE" '
        /^deb / && $0 ~ " " suite "( |$)" && $0 !~ /security/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
        /^URIs:/ { uri = $2 }
        /^Suites:/ && uri != "" && uri !~ /security/ {
            for (i = 2; i <= NF; i++) if ($i == suite) { print uri; exit } }
        /^$/ { uri = "" }')"
    echo "${MIRROR:-${found:-http://deb.debian.org/debian}}"
}

# debootstrap ROOTFS PACKAGES: a minimal Debian with PACKAGES, apt's lists and docs removed.
bootstrap() {
    local rootfs="$1" packages="$2"
    mkdir -p "$CACHE_DIR"
    echo "build-base-images: debootstrap $SUITE ($packages) from $(mirror)"
    debootstrap --variant=minbase --include="$packages" --cache-dir="$CACHE_DIR" \
        "$SUITE" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (log $rootfs.log)"; }
    rm -f "$rootfs.log"
    [ -r "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
}

# import ROOTFS IMAGE CHANGE...: the folder as an image with Dockerfile-style changes.
import() {
    local rootfs="$1" image="$2"; shift 2
    local changes=()
    # podman's import takes a LABEL (it marks the stand-ins); docker's does not
    [ "$ENGINE" = podman ] && set -- "$@" "LABEL org.fishpredict.stand-in=debootstrap-$SUITE"
    for change in "$@"; do
        changes+=(--change "$change")
    done
    tar -C "$rootfs" --numeric-owner -c . \
        | "$ENGINE" import "${changes[@]}" - "$(qualified "$image")" >"$rootfs.log" 2>&1 \
        || { cat "$rootfs.log" >&2; die "$ENGINE import of $image failed"; }
    echo "build-base-images: $(qualified "$image") built"
}

WORK=""
cleanup() { [ -n "$WORK" ] && rm -rf "$WORK"; }
trap cleanup EXIT

build_python() {
    local rootfs="$WORK/python"
    bootstrap "$rootfs" "ca-certificates,python3,python3-pip,python3-venv,python-is-python3"
    # the official image's python lets pip install system-wide
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    [ -x "$rootfs/usr/bin/pip" ] || ln -s pip3 "$rootfs/usr/bin/pip"
    import "$rootfs" "$PYTHON_IMAGE" \
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "ENV LANG=C.UTF-8" 'CMD ["python3"]'
}

build_nginx() {
    local rootfs="$WORK/nginx"
    bootstrap "$rootfs" "ca-certificates,nginx-light,curl"
    # the official image: conf.d/default.conf is the only site; logs to the container's output
    rm -f "$rootfs"/etc/nginx/sites-enabled/*
    ln -sf /dev/stdout "$rootfs/var/log/nginx/access.log"
    ln -sf /dev/stderr "$rootfs/var/log/nginx/error.log"
    import "$rootfs" "$NGINX_IMAGE" "EXPOSE 80" 'CMD ["nginx", "-g", "daemon off;"]'
}

todo=()
for image in "$PYTHON_IMAGE" "$NGINX_IMAGE"; do
    if [ "$FORCE" = 0 ] && exists "$image"; then
        echo "build-base-images: $(qualified "$image") exists (--force rebuilds it)"
    else
        todo+=("$image")
    fi
done
[ ${#todo[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] \
    || die "debootstrap is not installed (apt-get install debootstrap)"
export PATH="$PATH:/usr/sbin:/sbin"
WORK="$(mktemp -d /var/tmp/fishpredict-base.XXXXXX)"
for image in "${todo[@]}"; do
    case "$image" in
        "$PYTHON_IMAGE") build_python ;;
        "$NGINX_IMAGE") build_nginx ;;
    esac
done
