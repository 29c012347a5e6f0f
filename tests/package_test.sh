#!/usr/bin/env bash
# Packaging test: `cmake --install` and `cpack -G DEB` of a built tree, checked from the
# outside. Everything happens in a scratch directory under $TMPDIR, removed on exit; the
# maintainer scripts run only as copies whose system paths point into that directory, with
# PATH shims in place of adduser, useradd, groupadd, getent, systemctl and
# deb-systemd-invoke. Nothing outside the scratch directory and the build directory
# (install_manifest.txt, cpack's no-op preinstall build) is written. Then lintian checks
# the .deb.
#
# Usage: tests/package_test.sh BUILD_DIR SOURCE_DIR   (ctest -L package runs it)
set -euo pipefail

build=$(cd "${1:?usage: package_test.sh BUILD_DIR SOURCE_DIR}" && pwd)
source_dir=$(cd "${2:?usage: package_test.sh BUILD_DIR SOURCE_DIR}" && pwd)

# The files the package installs, relative to /. One per line; extend the list here.
expected_files=(
  usr/bin/heartbeatd
  etc/heartbeatd/heartbeatd.yaml
  lib/systemd/system/heartbeatd.service
  usr/share/doc/heartbeatd/README.md
  usr/share/doc/heartbeatd/NOTICE
  usr/share/doc/heartbeatd/copyright
  usr/share/doc/heartbeatd/changelog.Debian.gz
  usr/share/lintian/overrides/heartbeatd
  usr/share/man/man8/heartbeatd.8.gz
  usr/bin/heartbeatctl
  usr/share/man/man1/heartbeatctl.1.gz
)
for doc in "$source_dir"/docs/*.md; do
  expected_files+=("usr/share/doc/heartbeatd/$(basename "$doc")")
done
# Mode of each expected file: programs in usr/bin are 0755, everything else 0644.
expected_mode() {
  case "$1" in
    usr/bin/*) echo 755 ;;
    *) echo 644 ;;
  esac
}
conffiles=(/etc/heartbeatd/heartbeatd.yaml)
maintainer_scripts=(postinst prerm postrm)

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
step() { echo "== $*"; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/heartbeatd-package.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Compares the regular files under ROOT (and their modes) with expected_files.
check_tree() {
  local root=$1 what=$2 f mode
  local -a want=() have=()
  for f in "${expected_files[@]}"; do want+=("$f"); done
  mapfile -t have < <(cd "$root" && find . \( -type f -o -type l \) -printf '%P\n' | sort)
  local diff_out
  diff_out=$(diff <(printf '%s\n' "${want[@]}" | sort) <(printf '%s\n' "${have[@]}")) ||
    fail "$what: installed files differ from the expected list (< missing, > unexpected):"$'\n'"$diff_out"
  for f in "${want[@]}"; do
    [[ -f "$root/$f" && ! -L "$root/$f" ]] || continue
    mode=$(stat -c %a "$root/$f")
    [[ "$mode" == "$(expected_mode "$f")" ]] ||
      fail "$what: $f has mode $mode, expected $(expected_mode "$f")"
  done
}

# -------------------------------------------------------------------------------------------
step "cmake --install, prefix /usr, into DESTDIR"
destdir="$scratch/destdir"
DESTDIR="$destdir" cmake --install "$build" --prefix /usr >"$scratch/install-usr.log" 2>&1 ||
  { cat "$scratch/install-usr.log" >&2; fail "cmake --install --prefix /usr failed"; }
check_tree "$destdir" "DESTDIR install"
cmp -s "$destdir/lib/systemd/system/heartbeatd.service" \
  "$source_dir/examples/systemd/heartbeatd.service" ||
  fail "prefix /usr: the installed unit differs from examples/systemd/heartbeatd.service"

step "cmake --install, prefix inside the scratch directory"
local_prefix="$scratch/local"
cmake --install "$build" --prefix "$local_prefix" >"$scratch/install-local.log" 2>&1 ||
  { cat "$scratch/install-local.log" >&2; fail "cmake --install --prefix $local_prefix failed"; }
while read -r installed; do
  [[ "$installed" == "$local_prefix"/* ]] ||
    fail "--prefix $local_prefix installed $installed, outside the prefix"
done <"$build/install_manifest.txt"
for f in usr/bin/heartbeatd usr/share/doc/heartbeatd/README.md; do
  [[ -f "$local_prefix/${f#usr/}" ]] || fail "--prefix $local_prefix: ${f#usr/} missing"
done
for f in etc/heartbeatd/heartbeatd.yaml lib/systemd/system/heartbeatd.service; do
  [[ -f "$local_prefix/$f" ]] || fail "--prefix $local_prefix: $f missing"
done
if [[ -f "$local_prefix/lib/systemd/system/heartbeatd.service" ]]; then
  grep -qx "ExecStart=$local_prefix/bin/heartbeatd --config $local_prefix/etc/heartbeatd/heartbeatd.yaml" \
    "$local_prefix/lib/systemd/system/heartbeatd.service" ||
    fail "--prefix $local_prefix: the unit's ExecStart does not name the installed binary and config"
fi

# -------------------------------------------------------------------------------------------
step "cpack -G DEB"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$scratch/cpack" >"$scratch/cpack.log" 2>&1 ||
  { cat "$scratch/cpack.log" >&2; fail "cpack failed"; exit 1; }
debs=("$scratch"/cpack/heartbeatd_*.deb)
[[ ${#debs[@]} -eq 1 && -f "${debs[0]}" ]] || { fail "expected one heartbeatd_*.deb, got: ${debs[*]}"; exit 1; }
deb=${debs[0]}
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes"

field() { dpkg-deb -f "$deb" "$1"; }
version=$("$build/bin/heartbeatd" --version | awk '{print $2}')
[[ "$(field Package)" == heartbeatd ]] || fail "Package: is '$(field Package)'"
[[ "$(field Version)" == "$version"-* ]] || fail "Version: '$(field Version)' is not $version-N"
[[ "$(field Section)" == net ]] || fail "Section: is '$(field Section)'"
[[ "$(field Architecture)" == "$(dpkg --print-architecture)" ]] ||
  fail "Architecture: is '$(field Architecture)'"
[[ -n "$(field Maintainer)" ]] || fail "Maintainer: is empty"
[[ -n "$(field Description)" ]] || fail "Description: is empty"
depends=$(field Depends)
echo "Depends: $depends"
# dpkg-shlibdeps ran: the C library and the libraries linked are listed, with versions.
for lib in libc6 libstdc++6 librocksdb libyaml-cpp libsodium libsystemd0 libssl3; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends: lacks $lib (did dpkg-shlibdeps run?)"
done
[[ "$depends" == *"adduser | passwd"* ]] || fail "Depends: lacks 'adduser | passwd' (postinst)"

root="$scratch/root"
ctrl="$scratch/control"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$ctrl"
check_tree "$root" ".deb data"
# Owners and modes as dpkg will create them, from the archive itself; and every file's
# time SOURCE_DATE_EPOCH, by default the date of the changelog's newest entry (a
# reproducible package).
epoch=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$source_dir/packaging/debian/changelog" -S Timestamp)}
stamp=$(TZ=UTC date -d "@$epoch" '+%Y-%m-%d %H:%M')
while read -r perms owner _ day time path _; do
  [[ "$owner" == root/root ]] || fail ".deb: $path owned by $owner"
  [[ "$perms" == d* || "$perms" == -* ]] || fail ".deb: $path is neither a file nor a directory"
  [[ "$day $time" == "$stamp" ]] || fail ".deb: $path dated $day $time, not $stamp"
done < <(TZ=UTC dpkg-deb -c "$deb")

step "control: conffiles and maintainer scripts"
if [[ -f "$ctrl/conffiles" ]]; then
  for c in "${conffiles[@]}"; do
    grep -qx "$c" "$ctrl/conffiles" || fail "conffiles does not list $c"
  done
  while read -r c; do
    [[ -f "$root$c" ]] || fail "conffiles lists $c, which the package does not ship"
  done <"$ctrl/conffiles"
else
  fail "control has no conffiles"
fi
for s in "${maintainer_scripts[@]}"; do
  if [[ ! -f "$ctrl/$s" ]]; then fail "control has no $s"; continue; fi
  [[ "$(stat -c %a "$ctrl/$s")" == 755 ]] || fail "$s has mode $(stat -c %a "$ctrl/$s"), expected 755"
  [[ "$(head -n1 "$ctrl/$s")" == "#!/bin/sh" ]] || fail "$s does not start with #!/bin/sh"
  grep -qx 'set -e' "$ctrl/$s" || fail "$s does not set -e"
  sh -n "$ctrl/$s" || fail "$s: sh -n reports a syntax error"
  if command -v shellcheck >/dev/null; then
    shellcheck -s sh "$ctrl/$s" || fail "$s: shellcheck"
  fi
done

step "copyright, changelog and man pages"
doc="$root/usr/share/doc/heartbeatd"
# The copyright file is packaging/debian/copyright, in Debian's machine-readable format
# (DEP-5), every file under Apache-2.0, pointing to the licence's text on the system.
if [[ -f "$doc/copyright" ]]; then
  cmp -s "$doc/copyright" "$source_dir/packaging/debian/copyright" ||
    fail "copyright differs from packaging/debian/copyright"
  [[ "$(head -n1 "$doc/copyright")" == "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" ]] ||
    fail "copyright: the first line is not DEP-5's Format: field"
  grep -qx 'Files: \*' "$doc/copyright" || fail "copyright: no 'Files: *' paragraph"
  grep -qx 'License: Apache-2.0' "$doc/copyright" || fail "copyright: no 'License: Apache-2.0'"
  grep -qF '/usr/share/common-licenses/Apache-2.0' "$doc/copyright" ||
    fail "copyright: does not point to /usr/share/common-licenses/Apache-2.0"
  cmp -s "$source_dir/LICENSE" /usr/share/common-licenses/Apache-2.0 ||
    fail "LICENSE is not the text of /usr/share/common-licenses/Apache-2.0"
fi
# Gzipped files: what gzip -9n makes (no file name, no timestamp, best compression, so the
# same source gives the same bytes), and the source's exact text once decompressed.
check_gzipped() {
  local f=$1 source=$2 header
  [[ -f "$f" ]] || return 0  # reported by check_tree
  gzip -t "$f" || { fail "${f#"$root"/}: not a valid gzip file"; return; }
  # ID1 ID2 CM FLG MTIME(4) XFL OS: FLG 00 (no name), MTIME 0, XFL 02 (maximum compression).
  header=$(od -An -tx1 -N9 "$f" | tr -d ' \n')
  [[ "${header:6:2}" == 00 && "${header:8:8}" == 00000000 && "${header:16:2}" == 02 ]] ||
    fail "${f#"$root"/}: gzip header $header is not that of gzip -9n"
  cmp -s <(gzip -dc "$f") "$source" || fail "${f#"$root"/} is not ${source#"$source_dir"/}"
}
check_gzipped "$doc/changelog.Debian.gz" "$source_dir/packaging/debian/changelog"
check_gzipped "$root/usr/share/man/man8/heartbeatd.8.gz" "$source_dir/docs/heartbeatd.8"
check_gzipped "$root/usr/share/man/man1/heartbeatctl.1.gz" "$source_dir/docs/heartbeatctl.1"
# The changelog's newest entry is the package's version (configure checks the source too).
if [[ -f "$doc/changelog.Debian.gz" ]]; then
  gzip -dc "$doc/changelog.Debian.gz" >"$scratch/changelog"
  if entry=$(dpkg-parsechangelog -l "$scratch/changelog" -S Version 2>&1); then
    [[ "$entry" == "$(field Version)" ]] ||
      fail "changelog: the newest entry is $entry, the package is $(field Version)"
  else
    fail "dpkg-parsechangelog cannot read the changelog: $entry"
  fi
fi

step "the installed binary and configuration"
out=$("$root/usr/bin/heartbeatd" --version) || fail "heartbeatd --version exited $?"
[[ "$out" == "heartbeatd $version" ]] || fail "heartbeatd --version printed '$out'"
out=$("$root/usr/bin/heartbeatctl" --version) || fail "heartbeatctl --version exited $?"
[[ "$out" == "heartbeatctl $version" ]] || fail "heartbeatctl --version printed '$out'"
if out=$("$root/usr/bin/heartbeatd" --check-config "$root/etc/heartbeatd/heartbeatd.yaml" 2>&1); then
  [[ "$(head -n1 <<<"$out")" == *": valid" ]] || fail "--check-config printed: $out"
else
  fail "--check-config of the installed configuration failed: $out"
fi

step "systemd-analyze verify of the installed unit"
# verify --root resolves the unit's dependencies and commands inside the root: give it the
# host's targets (sysinit.target, network-online.target, ...) and kill(1), as on a Debian
# system. The package's own files are not touched.
unitdir="$root/lib/systemd/system"
for t in /lib/systemd/system/*.target; do
  [[ -e "$unitdir/$(basename "$t")" ]] || cp "$t" "$unitdir/"
done
mkdir -p "$root/bin"
cp /bin/kill "$root/bin/kill"
verify_out=$(systemd-analyze verify --root="$root" heartbeatd.service 2>&1) ||
  fail "systemd-analyze verify exited non-zero"
if [[ -n "$verify_out" ]]; then
  fail "systemd-analyze verify printed:"$'\n'"$verify_out"
else
  echo "systemd-analyze verify: no output"
fi
if security=$(systemd-analyze security --offline=yes --root="$root" heartbeatd.service 2>&1); then
  score=$(sed -n 's/.*Overall exposure level for heartbeatd.service: \([0-9.]*\).*/\1/p' <<<"$security")
  echo "systemd-analyze security: exposure $score"
  # 1.4 when written; a value past 2.0 means hardening was lost.
  awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' ||
    fail "systemd-analyze security: exposure '$score' above 2.0"$'\n'"$security"
else
  echo "systemd-analyze security --offline not available; skipped"
fi

# -------------------------------------------------------------------------------------------
step "maintainer scripts, run as sandboxed copies"
# Copies of the shipped scripts with every system path they touch moved into the scratch
# directory; the real paths must be gone from the copy before it may run.
sandbox="$scratch/sandbox"
mkdir -p "$sandbox/bin"
sandboxed() {
  local s=$1
  sed -e "s#/run/systemd/system#$sandbox/run/systemd/system#g" \
    -e "s#/var/lib/heartbeatd#$sandbox/var/lib/heartbeatd#g" \
    -e "s#/etc/systemd/system#$sandbox/etc/systemd/system#g" \
    "$ctrl/$s" >"$sandbox/$s"
  # Any /etc, /lib, /run or /var path left outside a comment is one the sandbox misses.
  if sed "s#$sandbox#SANDBOX#g" "$sandbox/$s" | grep -nP '(?<![\w.-])/(etc|lib|run|var)/' |
    grep -vP '^\d+:\s*#' >&2; then
    fail "$s uses system paths the sandbox does not redirect; not run"
    return 1
  fi
  chmod 755 "$sandbox/$s"
}
# Shims record each call in $calls (one script run) and $all_calls; getent answers from
# $accounts.
calls="$sandbox/calls"
all_calls="$sandbox/all_calls"
accounts="$sandbox/accounts"
for tool in adduser useradd groupadd systemctl deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" | tee -a "%s" >>"%s"\n' "$tool" "$all_calls" "$calls" \
    >"$sandbox/bin/$tool"
done
cat >"$sandbox/bin/getent" <<EOF
#!/bin/sh
grep "^\$1 \$2\$" "$accounts" >/dev/null
EOF
chmod 755 "$sandbox"/bin/*
# No /usr/sbin or /sbin: the real adduser, useradd and groupadd must be unreachable.
run_script() {
  : >"$calls"
  env -i PATH="$sandbox/bin:/usr/bin:/bin" "$sandbox/$1" "${@:2}"
}
expect_calls() {
  local what=$1 want
  want=$(printf '%s\n' "${@:2}")
  [[ "$(cat "$calls")" == "$want" ]] ||
    fail "$what: calls were"$'\n'"$(cat "$calls")"$'\n'"expected"$'\n'"$want"
}

if sandboxed postinst && sandboxed prerm && sandboxed postrm; then
  mkdir -p "$sandbox/run/systemd/system"
  : >"$accounts"
  run_script postinst configure "" || fail "postinst configure (first install) failed"
  expect_calls "postinst, first install" \
    "adduser --system --group --home $sandbox/var/lib/heartbeatd --no-create-home --quiet heartbeatd" \
    "systemctl daemon-reload"

  printf 'passwd heartbeatd\ngroup heartbeatd\n' >"$accounts"
  run_script postinst configure "$version-1" || fail "postinst configure (upgrade) failed"
  expect_calls "postinst, upgrade with the account present" \
    "systemctl daemon-reload" "deb-systemd-invoke try-restart heartbeatd.service"

  rmdir "$sandbox/run/systemd/system"
  : >"$accounts"
  rm "$sandbox/bin/adduser"
  run_script postinst configure "" || fail "postinst configure (no systemd, no adduser) failed"
  expect_calls "postinst without systemd or adduser" \
    "groupadd --system heartbeatd" \
    "useradd --system --gid heartbeatd --home-dir $sandbox/var/lib/heartbeatd --no-create-home --shell /usr/sbin/nologin --comment heartbeatd daemon heartbeatd"
  mkdir -p "$sandbox/run/systemd/system"

  run_script postinst bogus 2>/dev/null && fail "postinst accepted an unknown argument"

  run_script prerm remove || fail "prerm remove failed"
  expect_calls "prerm remove" "deb-systemd-invoke stop heartbeatd.service"
  run_script prerm upgrade "$version-2" || fail "prerm upgrade failed"
  expect_calls "prerm upgrade (keeps it running)"

  mkdir -p "$sandbox/var/lib/heartbeatd/db" "$sandbox/etc/systemd/system/multi-user.target.wants"
  ln -s /lib/systemd/system/heartbeatd.service \
    "$sandbox/etc/systemd/system/multi-user.target.wants/heartbeatd.service"
  run_script postrm remove || fail "postrm remove failed"
  expect_calls "postrm remove" "systemctl daemon-reload"
  [[ -d "$sandbox/var/lib/heartbeatd/db" ]] || fail "postrm remove deleted the state"
  run_script postrm purge || fail "postrm purge failed"
  expect_calls "postrm purge" "systemctl daemon-reload"
  [[ ! -e "$sandbox/var/lib/heartbeatd" ]] || fail "postrm purge kept the state"
  [[ ! -L "$sandbox/etc/systemd/system/multi-user.target.wants/heartbeatd.service" ]] ||
    fail "postrm purge kept the enablement link"

  # Whatever the case, no script enabled or started the service.
  if grep -E '^(systemctl|deb-systemd-invoke|deb-systemd-helper) .*(enable|start|restart|reenable|preset)' "$all_calls" |
    grep -vE '^(systemctl|deb-systemd-invoke) try-restart ' >&2; then
    fail "a maintainer script enabled or started the service"
  fi
fi

# -------------------------------------------------------------------------------------------
step "lintian"
# Fails on errors and warnings, the levels that Debian's archive and its reviewers act on.
# Info and pedantic tags are printed (--display-info --pedantic) but do not fail: several
# judge a Debian source package, which a .deb built by CPack does not have, and the one
# left (hardening-no-fortify-functions) needs new compiler flags for the whole build. The
# tags the package keeps on purpose are overridden in packaging/debian/lintian-overrides,
# each with its reason; packaging/README.md explains the choices.
if command -v lintian >/dev/null; then
  if lintian_out=$(lintian --fail-on error,warning --display-info --pedantic "$deb" 2>&1); then
    echo "${lintian_out:-lintian: no tags}"
  else
    fail "lintian --fail-on error,warning:"$'\n'"$lintian_out"
  fi
else
  echo "lintian is not installed (scripts/setup installs it); lintian skipped"
fi

if ((failures > 0)); then
  echo "package test: $failures failure(s)" >&2
  exit 1
fi
echo "package test: all checks passed"
