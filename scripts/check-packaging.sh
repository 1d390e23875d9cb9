#!/bin/bash
# Checks what `cmake --install` lays out and that a plain C program builds and runs against it:
#   - headers, static and shared library, CMake package, pkg-config file are installed;
#   - the shared library needs only libc, libm, libpthread, libstdc++, libgcc_s (ldd) and
#     exports only slm_* symbols, all of those declared in slm.h (nm -D);
#   - examples/ builds out of tree via find_package(slm) (static and shared) and via pkg-config
#     (static and shared), and embed runs on a tiny random model.
# Usage: check-packaging.sh SOURCE_DIR BUILD_DIR SLM_MKMODEL   (a ctest test: check_packaging)
set -euo pipefail
# Pipes into grep read to the end (no grep -q): with pipefail, grep -q exiting at the first match
# can kill the writer with SIGPIPE and fail (or, in a negative check, pass) the pipeline.
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
mkmodel=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/slm-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "check-packaging: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "install into $prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
libdir=$(dirname "$(find "$prefix" -name libslm.a | head -1)")
[ -n "$libdir" ] && [ -f "$libdir/libslm.a" ] || fail "libslm.a not installed"
for f in "$prefix/include/slm/slm.h" "$prefix/include/slm/slm.hpp" "$libdir/libslm.so" "$libdir/pkgconfig/slm.pc" \
         "$libdir/cmake/slm/slmConfig.cmake" "$libdir/cmake/slm/slmConfigVersion.cmake" "$libdir/cmake/slm/slmTargets.cmake"; do
  [ -e "$f" ] || fail "not installed: ${f#$prefix/}"
done
# Only the C ABI headers: the C++ internals are not part of the installed interface.
extra=$(find "$prefix/include" -type f ! -name slm.h ! -name slm.hpp)
[ -z "$extra" ] || fail "unexpected installed headers: $extra"

# Dependencies a binary may have: the C and C++ runtimes and nothing else.
allowed='^(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|libstdc\+\+\.so|libgcc_s\.so|ld-linux[-a-z0-9_]*\.so|libdl\.so|librt\.so)'
check_ldd() {
  local bin=$1 what=$2 bad
  bad=$(ldd "$bin" | awk '{print $1}' | sed 's|.*/||' | grep -Ev "$allowed" | grep -v "^libslm\.so" || true)
  [ -z "$bad" ] || fail "$what depends on: $bad"
}
step "ldd libslm.so"
ldd "$libdir/libslm.so"
check_ldd "$libdir/libslm.so" libslm.so
if ldd "$libdir/libslm.so" | grep "libdl\|librt" >/dev/null; then fail "libslm.so needs libdl/librt"; fi

step "exported symbols (nm -D)"
exported=$(nm -D --defined-only "$libdir/libslm.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
nonapi=$(echo "$exported" | grep -v '^slm_' || true)
[ -z "$nonapi" ] || fail "libslm.so exports non-API symbols: $(echo "$nonapi" | head -20 | tr '\n' ' ')"
declared=$(grep -oE 'SLM_API [^(]*\b(slm_[a-z0-9_]+)\(' "$src/include/slm/slm.h" | grep -oE 'slm_[a-z0-9_]+\($' | tr -d '(' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
[ -z "$missing" ] || fail "declared in slm.h but not exported: $missing"
undeclared=$(comm -13 <(echo "$declared") <(echo "$exported"))
[ -z "$undeclared" ] || fail "exported but not declared in slm.h: $undeclared"
echo "$(echo "$exported" | wc -l) symbols, all slm_* and all declared in slm.h"

step "tiny model"
"$mkmodel" --arch qwen2 --preset tiny --type Q8_0 -o "$work/tiny.gguf" > /dev/null || fail "slm-mkmodel"

run_embed() {
  local bin=$1 what=$2 out
  out=$("$bin" "$work/tiny.gguf" "Hello there" 8 2> "$work/embed.err") || { cat "$work/embed.err"; fail "$what: embed failed"; }
  echo "$out" | grep "generated [1-9]" >/dev/null || { echo "$out"; fail "$what: embed generated nothing"; }
  grep -q "context: n_ctx 512" "$work/embed.err" || { cat "$work/embed.err"; fail "$what: no log line from the context"; }
  check_ldd "$bin" "$what"
  echo "$what: ok ($(echo "$out" | tail -1))"
}

step "examples via find_package(slm)"
cc_flags="-Wall -Wextra -Werror -std=c99 -pedantic"
for shared in OFF ON; do
  b=$work/examples-cmake-$shared
  cmake -S "$src/examples" -B "$b" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DSLM_EXAMPLE_SHARED=$shared \
        -DCMAKE_C_FLAGS="$cc_flags" -DCMAKE_BUILD_TYPE=Release > "$work/cfg.log" 2>&1 || { cat "$work/cfg.log"; fail "configure examples (shared=$shared)"; }
  cmake --build "$b" > "$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build examples (shared=$shared)"; }
  run_embed "$b/embed" "find_package, shared=$shared"
  if [ $shared = ON ]; then
    ldd "$b/embed" | grep "$libdir/libslm.so" >/dev/null || fail "embed (shared) does not use the installed libslm.so"
  else
    if ldd "$b/embed" | grep libslm >/dev/null; then fail "embed (static) needs libslm.so"; fi
  fi
done

step "examples via pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc=${CC:-cc}
[ "$(pkg-config --modversion slm)" = "$(sed -n 's/^Version: //p' "$libdir/pkgconfig/slm.pc")" ] || fail "pkg-config --modversion"
# shellcheck disable=SC2046
$cc $cc_flags "$src/examples/embed.c" -o "$work/embed-pc-shared" $(pkg-config --cflags --libs slm) -Wl,-rpath,"$libdir" \
  || fail "pkg-config shared build"
run_embed "$work/embed-pc-shared" "pkg-config, shared"
# Static: the archive by name, then what pkg-config --static lists besides -lslm.
# shellcheck disable=SC2046
$cc $cc_flags "$src/examples/embed.c" -o "$work/embed-pc-static" $(pkg-config --cflags slm) "$libdir/libslm.a" \
  $(pkg-config --static --libs-only-l slm | sed 's/-lslm\b//') || fail "pkg-config static build"
run_embed "$work/embed-pc-static" "pkg-config, static"
if ldd "$work/embed-pc-static" | grep libslm >/dev/null; then fail "static embed needs libslm.so"; fi

step "static libstdc++ (SLM_STATIC_LIBSTDCXX=ON builds): libslm.so then needs no libstdc++"
if grep -q "SLM_STATIC_LIBSTDCXX:BOOL=ON" "$build/CMakeCache.txt"; then
  if ldd "$libdir/libslm.so" | grep libstdc++ >/dev/null; then fail "SLM_STATIC_LIBSTDCXX=ON but libslm.so needs libstdc++"; fi
  echo "libslm.so has libstdc++ inside"
else
  echo "not this build (SLM_STATIC_LIBSTDCXX=OFF)"
fi
echo "check-packaging: OK"
