#!/usr/bin/env bash
# Make the base images debian:bookworm and debian:bookworm-slim available to the
# local docker engine without a registry: debootstrap a minbase rootfs (what the
# official images are built from, via debuerreotype) and `docker import` it.
#
# The rootfs tarballs are cached in $ET_DOCKER_CACHE (default
# /var/cache/easytorch-docker), so a rerun only imports them (seconds).
# With ET_DOCKER_PULL=1 a `docker pull` is tried first.
# Prints the tags it imported, one per line, on stdout.
set -euo pipefail

cache=${ET_DOCKER_CACHE:-/var/cache/easytorch-docker}
mirror=${ET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
full_tar=$cache/bookworm-minbase.tar
slim_tar=$cache/bookworm-minbase-slim.tar

have() { docker image inspect "$1" >/dev/null 2>&1; }
log() { echo "base_images: $*" >&2; }

if have debian:bookworm && have debian:bookworm-slim; then
    exit 0
fi
if [ "${ET_DOCKER_PULL:-0}" = 1 ]; then
    have debian:bookworm || docker pull debian:bookworm >&2 || true
    have debian:bookworm-slim || docker pull debian:bookworm-slim >&2 || true
    if have debian:bookworm && have debian:bookworm-slim; then exit 0; fi
fi

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9            # two runs must not debootstrap into the same cache at once

root=
unmount_and_remove() {
    [ -n "$root" ] && [ -d "$root" ] || return 0
    # debootstrap mounts /proc and /sys inside the target; never rm -rf across them.
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$root"
}
trap unmount_and_remove EXIT

if [ ! -s "$full_tar" ] || [ ! -s "$slim_tar" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    log "debootstrap --variant=minbase bookworm (a few minutes, once; log: $cache/debootstrap.log)"
    if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -n 20 "$cache/debootstrap.log" >&2
        exit 1
    fi
    # As in the official image: no package lists or caches, and the apt settings
    # debuerreotype adds so that `apt-get install` in a Dockerfile leaves no cache behind.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
           "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
    clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
    printf '%s\n' "DPkg::Post-Invoke { $clean };" "APT::Update::Post-Invoke { $clean };" \
        'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
        >"$root/etc/apt/apt.conf.d/docker-clean"
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' \
        >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    tar --numeric-owner -C "$root" -cf "$full_tar.tmp" . && mv "$full_tar.tmp" "$full_tar"

    # -slim, as debuerreotype's slimify does it: drop docs, man pages and
    # translations now, and tell dpkg to skip them in later installs too.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* \
           "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} +
    tar --numeric-owner -C "$root" -cf "$slim_tar.tmp" . && mv "$slim_tar.tmp" "$slim_tar"
    unmount_and_remove
    root=
fi

import() {  # import TARBALL TAG
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        -m "debootstrap --variant=minbase bookworm (easytorch tests/docker)" \
        "$1" "$2" >/dev/null
    log "imported $2 from $1"
    echo "$2"
}
have debian:bookworm || import "$full_tar" debian:bookworm
have debian:bookworm-slim || import "$slim_tar" debian:bookworm-slim
