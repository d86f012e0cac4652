#!/usr/bin/env bash
# Builds casegate with profile-guided optimisation (PGO), the build the Performance section's
# latest figures are for (issue 7). The same source and the same release profile as
# `cargo build --release`; only the compiler's choices differ: which functions to inline, which
# branch to lay out as the fall-through, which code to keep together. Without a profile LLVM
# guesses them, and casegate's request path (futures nested several deep, generic over the
# connection's stream) is where it guesses worst: callgrind counts fewer instructions, fewer data
# writes and fewer instruction-cache misses per guest request with the profile (README).
#
# Three steps, each checked:
#   1. an instrumented build (-Cprofile-generate) in target/pgo-instrumented;
#   2. training: compare.sh's plain, TLS, HTTP/2 and new-connection rows (one short round each)
#      and a big_download.sh round run against it, so the profile is what a gateway in front of a
#      case app does (guests opening links, fetching pages, streaming video, over HTTP/1.1, TLS and
#      HTTP/2) and every answer is checked as in a measurement; the raw profiles are merged with
#      llvm-profdata into target/pgo-profiles/casegate-<digest of its contents>.profdata;
#   3. the optimised build (-Cprofile-use) in target/pgo: target/pgo/release/casegate.
# Paths the training does not take (the admin API, mail, Redis) are built as cold code: correct,
# laid out for size rather than speed.
#
# Needs the llvm-profdata of the toolchain's own LLVM version (`rustup component add llvm-tools`;
# LLVM_PROFDATA=path picks another of the same version) and what compare.sh and big_download.sh
# need. About 9 minutes on 2 cores.
#
# Usage: benches/load/pgo.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1:-} in
'') ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
*) die "unknown option $1 (see --help)" ;;
esac

require_tools cargo:cargo rustc:rustc nginx:nginx wrk:wrk h2load:nghttp2-client curl:curl \
    openssl:openssl python3:python3 sha256sum:coreutils
HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA=${LLVM_PROFDATA:-$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata}
[[ -x $PROFDATA ]] || die "no llvm-profdata for this toolchain's LLVM at $PROFDATA; install it with:
  rustup component add llvm-tools"

TARGET=${CARGO_TARGET_DIR:-$REPO_DIR/target}
PROFILES="$TARGET/pgo-profiles"
rm -rf "$PROFILES"
mkdir -p "$PROFILES/train"

# What `casegate --version`, its build_info metric and its log say the binaries are
# (src/build_info.rs): the commit they are built from, "-dirty" with uncommitted changes to
# tracked files.
COMMIT=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || true)
if [[ -n $COMMIT ]] && ! git -C "$REPO_DIR" diff --quiet HEAD -- 2>/dev/null; then
    COMMIT+=-dirty
fi

# build_pgo DIR FLAG KIND - the release build of casegate into $TARGET/DIR with one more rustc
# flag, naming itself a KIND build. Both builds go through here, so they differ in that flag and
# that name only: a profile matches only a build with the same settings, and a mismatch is silent
# (the profile is then not applied). The name is a constant's text, which the profile does not see.
build_pgo() {
    (cd "$REPO_DIR" && RUSTFLAGS="${RUSTFLAGS:-} $2" CARGO_TARGET_DIR="$TARGET/$1" \
        env CASEGATE_BUILD="$3" ${COMMIT:+CASEGATE_COMMIT="$COMMIT"} \
        cargo build --release --locked --quiet --bin casegate) || die "the build in $TARGET/$1 failed"
}

say "1/3 instrumented build (target/pgo-instrumented)..."
# Build scripts are instrumented too and write their own profiles while building; those go to
# build/, away from the training's.
build_pgo pgo-instrumented "-Cprofile-generate=$PROFILES/build" profile-instrumented

say "2/3 training: compare.sh rows plain,tls,h2,handshake and big_download.sh, one round each..."
# Every process of the instrumented binary (serve, mint, keygen, check) writes its own profile
# when it exits.
export LLVM_PROFILE_FILE="$PROFILES/train/casegate-%p-%m.profraw"
export CASEGATE_BIN="$TARGET/pgo-instrumented/release/casegate"
"$LOAD_DIR/compare.sh" --rows plain,tls,h2,handshake --rounds 1 --duration 4 >"$PROFILES/compare.log" 2>&1 ||
    die "training with compare.sh failed: $(tail -5 "$PROFILES/compare.log")"
"$LOAD_DIR/big_download.sh" --rounds 1 --size 256M >"$PROFILES/big_download.log" 2>&1 ||
    die "training with big_download.sh failed: $(tail -5 "$PROFILES/big_download.log")"
unset LLVM_PROFILE_FILE CASEGATE_BIN
shopt -s nullglob
RAW=("$PROFILES"/train/*.profraw)
((${#RAW[@]})) || die "the training left no profiles in $PROFILES/train"
"$PROFDATA" merge -o "$PROFILES/merged.profdata" "${RAW[@]}" ||
    die "llvm-profdata could not merge the profiles (is it the toolchain's LLVM version?)"
# Named by its contents: cargo sees only the flag, not the file behind it, and would keep crates
# built with an earlier training's profile under the same name. A new profile is a new flag, and
# everything is built with it.
PROFILE="$PROFILES/casegate-$(sha256sum "$PROFILES/merged.profdata" | cut -c1-16).profdata"
mv "$PROFILES/merged.profdata" "$PROFILE"

say "3/3 optimised build (target/pgo)..."
build_pgo pgo "-Cprofile-use=$PROFILE" profile-guided
say "built $TARGET/pgo/release/casegate, $("$TARGET/pgo/release/casegate" --version) (profile: ${#RAW[@]} processes, $PROFILE)"
